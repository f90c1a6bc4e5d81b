"""The broker seam between workers and the task table.

A worker claims, heartbeats and reports through a :class:`Broker`:

* :class:`LocalBroker` calls the queue in-process (the all-in-one cloud, and
  any process that has the database): blocking calls go to threads, a claim
  that finds nothing waits for an in-process or LISTEN/NOTIFY wake-up.
* :class:`~onestack.common.tasks.http_broker.HttpBroker` speaks the internal
  HTTP API of an API process, so an agent on another host holds no database
  credentials; the server long-polls claims, so it reacts as fast.

Both hand the worker a :class:`Claim`, a plain snapshot of the claimed task
that travels as JSON. This module imports no database code.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from onestack.common.tasks.errors import BrokerError, LeaseLost

__all__ = ["BrokerError", "Broker", "Claim", "LeaseLost", "LocalBroker"]

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.models import Task
    from onestack.common.tasks.hosts import HostRegistry
    from onestack.common.tasks.queue import TaskQueue
    from onestack.common.tasks.wakeups import Listener


@dataclass(frozen=True)
class Claim:
    """A claimed task, as its holder sees it."""

    id: str
    kind: str
    claim_token: int
    owner: str
    attempts: int
    max_attempts: int
    payload: dict[str, Any] = field(default_factory=dict)
    resource_key: str | None = None
    target_host: str | None = None
    # Seconds the broker waited for work before this claim was made: the
    # lease began no earlier than the claim request's start plus this.
    waited: float = 0.0

    @classmethod
    def from_task(cls, task: Task, owner: str, waited: float = 0.0) -> Claim:
        return cls(
            id=task.id,
            kind=task.kind,
            claim_token=task.claim_token,
            owner=owner,
            attempts=task.attempts,
            max_attempts=task.max_attempts,
            payload=dict(task.payload or {}),
            resource_key=task.resource_key,
            target_host=task.target_host,
            waited=waited,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Claim:
        return cls(
            id=str(body["id"]),
            kind=str(body["kind"]),
            claim_token=int(body["claim_token"]),
            owner=str(body["owner"]),
            attempts=int(body["attempts"]),
            max_attempts=int(body["max_attempts"]),
            payload=dict(body.get("payload") or {}),
            resource_key=body.get("resource_key"),
            target_host=body.get("target_host"),
            waited=max(float(body.get("waited") or 0.0), 0.0),
        )


class Broker(Protocol):
    """What a worker needs from the task table (every method is a coroutine
    that does not block the event loop)."""

    async def claim(
        self, owner: str, host: str | None, kinds: Iterable[str], lease_seconds: float,
        wait: float,
    ) -> Claim | None:
        """A task for ``owner``, waiting up to ``wait`` seconds for one."""
        ...

    async def heartbeat(self, claim: Claim, lease_seconds: float) -> bool:
        """Extend the lease; True if a stop was requested. Raises LeaseLost."""
        ...

    async def progress(self, claim: Claim, progress: Mapping[str, Any]) -> bool:
        """Record progress (fenced); True if a stop was requested. Raises LeaseLost."""
        ...

    async def complete(self, claim: Claim, result: Mapping[str, Any] | None) -> bool:
        """Record success; False if the lease was not held (nothing changed)."""
        ...

    async def fail(self, claim: Claim, error: str, retry: bool | None) -> bool:
        """Record a failed attempt (None: the kind's rule decides on a retry)."""
        ...

    async def release(self, claim: Claim) -> bool:
        """Give the task back unrun."""
        ...

    async def host_heartbeat(self, host: str, binary: str, **info: Any) -> None:
        """Report ``binary`` on ``host`` alive."""
        ...

    async def interrupt(self, owner: str) -> None:
        """Make ``owner``'s waiting claim return now (a stopping worker)."""
        ...

    def fenced(self, claim: Claim) -> AbstractContextManager[Session]:
        """A database write checked against the lease (where there is a database)."""
        ...

    async def close(self) -> None: ...


async def shielded_claim(call: Any, release: Any) -> Any:
    """Await a blocking claim running in a thread, such that a cancellation
    of the caller does not lose a task the thread claimed meanwhile: it is
    released (from a thread of its own) when the claim returns."""
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        def give_back(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            claimed = done.result()
            if claimed:  # a task, or a non-empty list of tasks
                threading.Thread(target=release, args=(claimed,), daemon=True).start()

        future.add_done_callback(give_back)
        raise


class LocalBroker:
    """The broker of a process that has the database.

    A waiting claim looks again when woken, when a backoff or lease ends, and
    at least every ``poll_interval`` (the fallback for tasks written by
    another process without a wake-up: SQLite, or a lost LISTEN connection).
    """

    def __init__(
        self, queue: TaskQueue, hosts: HostRegistry | None = None, *, poll_interval: float = 5.0
    ) -> None:
        self.queue = queue
        self.hosts = hosts
        self.poll_interval = poll_interval
        self._waiting: dict[str, Listener] = {}
        self._interrupted: set[str] = set()
        self._lock = threading.Lock()
        self._remote = False  # holding the process's LISTEN connection (PostgreSQL)
        self._held: dict[str, float] = {}  # batched kind -> not claimed before (loop time)
        self._hold_waiter: str | None = None

    async def claim(
        self, owner: str, host: str | None, kinds: Iterable[str], lease_seconds: float,
        wait: float,
    ) -> Claim | None:
        claims = await self.claim_batch(owner, host, kinds, lease_seconds, wait, 1, ())
        return claims[0] if claims else None

    async def claim_batch(
        self, owner: str, host: str | None, kinds: Iterable[str], lease_seconds: float,
        wait: float, limit: int, batched: Iterable[str],
    ) -> list[Claim]:
        """:meth:`claim`, with up to ``limit`` tasks when the first is of a kind
        of ``batched`` (``TaskQueue.claim_many``; empty: none within ``wait``)."""
        loop = asyncio.get_running_loop()
        together = tuple(batched)
        windows = self.queue.hub.windows
        kind_list = sorted(set(kinds))
        deadline = loop.time() + max(wait, 0.0)
        if not self._remote:
            self._remote = True
            self.queue.hub.retain_remote(self.queue.db)  # wake-ups from other processes
        # Listen before the first look, so a wake-up in between is kept.
        listener = self.queue.listen(kind_list)
        with self._lock:
            self._waiting[owner] = listener
        begun = loop.time()
        try:
            while True:
                attempt = loop.time()
                # A batched kind with a window is claimed at most once per window
                # (by any claimer here): its tasks due meanwhile come along then.
                # Meanwhile nothing is claimed (other kinds wait up to a window).
                held = max((t - attempt for k in together if (t := self._held.get(k, 0.0)) > attempt),
                           default=0.0)
                if held > 0:
                    remaining = deadline - attempt
                    if remaining <= 0 or self._take_interrupt(owner):
                        return []
                    with self._lock:  # one claimer waits for the window's end; the
                        first = self._hold_waiter in (None, owner)  # others for a wake-up
                        if first:
                            self._hold_waiter = owner
                    try:
                        await listener.wait(min(remaining, held if first else self.poll_interval))
                    finally:
                        with self._lock:
                            if self._hold_waiter == owner:
                                self._hold_waiter = None
                    continue
                tasks = await shielded_claim(
                    lambda: self.queue.claim_many(owner, host, kind_list, lease_seconds,
                                                  limit, together),
                    lambda taken: [self.queue.release(t.id, t.claim_token, owner) for t in taken],
                )
                if tasks:
                    if windows.get(tasks[0].kind, 0.0) > 0 and tasks[0].kind in together:
                        self._held[tasks[0].kind] = loop.time() + windows[tasks[0].kind]
                    return [Claim.from_task(t, owner, waited=attempt - begun) for t in tasks]
                remaining = deadline - loop.time()
                if remaining <= 0 or self._take_interrupt(owner):
                    return []
                due = await asyncio.to_thread(self.queue.seconds_until_due, host, kind_list)
                if due is not None:  # batched kinds: the tasks due meanwhile come along
                    remaining = min(remaining, due + max([0.01, *(windows.get(k, 0.0) for k in together)]))
                await listener.wait(min(remaining, self.poll_interval))
                if self._take_interrupt(owner):
                    return []
        finally:
            with self._lock:
                if self._waiting.get(owner) is listener:
                    del self._waiting[owner]
            listener.close()

    def _take_interrupt(self, owner: str) -> bool:
        with self._lock:
            if owner in self._interrupted:
                self._interrupted.discard(owner)
                return True
            return False

    async def interrupt(self, owner: str) -> None:
        """Make ``owner``'s claim return now - or its next one, if it is not
        waiting yet (a stop racing the loop's next claim is not lost)."""
        with self._lock:
            if len(self._interrupted) > 10000:  # owners of workers long gone
                self._interrupted.clear()
            self._interrupted.add(owner)
            listener = self._waiting.get(owner)
        if listener is not None:
            listener.wake()

    def interrupt_all(self) -> None:
        """End every waiting claim now (any thread; e.g. at shutdown)."""
        with self._lock:
            waiting = list(self._waiting.items())
            self._interrupted.update(owner for owner, _ in waiting)
        for _, listener in waiting:
            listener.wake()

    async def heartbeat(self, claim: Claim, lease_seconds: float) -> bool:
        return await asyncio.to_thread(
            self.queue.heartbeat, claim.id, claim.claim_token, lease_seconds, claim.owner
        )

    async def progress(self, claim: Claim, progress: Mapping[str, Any]) -> bool:
        return await asyncio.to_thread(
            self.queue.progress, claim.id, claim.claim_token, progress, claim.owner
        )

    async def complete(self, claim: Claim, result: Mapping[str, Any] | None) -> bool:
        return await asyncio.to_thread(
            self.queue.complete, claim.id, claim.claim_token, result, claim.owner
        )

    def set_window(self, kind: str, seconds: float) -> None:
        """The wake-ups of ``kind``'s delayed tasks come ``seconds`` after they are
        due, one for all those due by then (``Hub.windows``: a batched kind)."""
        self.queue.hub.windows[kind] = seconds

    async def complete_batch(self, done: list[tuple[Claim, Mapping[str, Any] | None]]) -> list[bool]:
        """:meth:`complete` of claims of one owner, in one write unit (each fenced)."""
        owners = {claim.owner for claim, _ in done}
        if len(owners) != 1:
            raise ValueError("a batch's claims have one owner")
        items = [(claim.id, claim.claim_token, result) for claim, result in done]
        return await asyncio.to_thread(self.queue.complete_many, items, owners.pop())

    async def fail(self, claim: Claim, error: str, retry: bool | None) -> bool:
        return await asyncio.to_thread(
            self.queue.fail, claim.id, claim.claim_token, error, retry, claim.owner
        )

    async def release(self, claim: Claim) -> bool:
        return await asyncio.to_thread(
            self.queue.release, claim.id, claim.claim_token, claim.owner
        )

    async def host_heartbeat(self, host: str, binary: str, **info: Any) -> None:
        if self.hosts is None:
            raise BrokerError("this broker has no host registry")
        await asyncio.to_thread(lambda: self.hosts.heartbeat(host, binary, **info))  # type: ignore[union-attr]

    def fenced(self, claim: Claim) -> AbstractContextManager[Session]:
        return self.queue.fenced(claim.id, claim.claim_token, claim.owner)

    async def close(self) -> None:
        if self._remote:
            self._remote = False
            self.queue.hub.release_remote()
