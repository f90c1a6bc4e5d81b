"""The durable task queue: long operations as rows with a lease and retries.

A service writes its resource and a task in one transaction
(``queue.enqueue(session, "boot", {...}, host=...)`` inside ``db.write()``);
an agent's :class:`Worker` claims it, runs the handler for its kind, heartbeats
while the handler runs and records the outcome. An agent that dies leaves its
lease to expire; the task is then claimed again (counting an attempt) until
``max_attempts``, after which it is failed with an error saying so - a task is
never lost.

Claims are atomic: on SQLite the claim runs under the process-wide writer lock
with ``BEGIN IMMEDIATE``; on PostgreSQL candidates are read ``FOR UPDATE SKIP
LOCKED``; and the state change is a compare-and-set ``UPDATE`` in either case,
so exactly one claimer wins.

Wake-ups are in-process: ``enqueue`` notifies the task's kind once the
caller's transaction commits, and ``await queue.wait(kinds, timeout)`` (or a
:meth:`TaskQueue.listen` listener) returns early. ``notify`` is safe from any
thread, and every ``TaskQueue`` on the same ``Database`` shares the listeners.
Workers still poll, so tasks written by another process are found.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from onestack.common.db import Database
from onestack.common.ids import new_uuid, utcnow
from onestack.common.models import FAILED, QUEUED, RUNNING, SUCCEEDED, Task

LOG = logging.getLogger(__name__)

__all__ = [
    "FAILED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "Listener",
    "Task",
    "TaskFailed",
    "TaskQueue",
    "Worker",
]

Clock = Callable[[], datetime]
_PENDING_KEY = "onestack.tasks.pending_kinds"


class Listener:
    """A registration for wake-ups of some task kinds (all kinds if ``None``).

    Notifications that arrive between waits are remembered, so a worker that
    listens before it claims never misses one.
    """

    def __init__(self, queue: TaskQueue, kinds: Iterable[str] | None) -> None:
        self._queue = queue
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.closed = False

    def wants(self, kind: str | None) -> bool:
        return kind is None or self.kinds is None or kind in self.kinds

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop is closed
            pass

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a notification; True if one came, False on timeout."""
        try:
            if timeout is None:
                await self._event.wait()
            else:
                await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self.closed = True
        self._queue._unregister(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Hub:
    """The listeners of one database's queues."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listeners: set[Listener] = set()


_HUBS: weakref.WeakKeyDictionary[Database, _Hub] = weakref.WeakKeyDictionary()
_HUBS_LOCK = threading.Lock()


def _hub_for(db: Database) -> _Hub:
    with _HUBS_LOCK:
        hub = _HUBS.get(db)
        if hub is None:
            hub = _HUBS[db] = _Hub()
        return hub


class TaskQueue:
    """The task table's operations (thread-safe; methods block - call via ``run``)."""

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock
        # Every queue on the same database shares one set of listeners, so an
        # API's queue wakes the workers an agent built with its own queue.
        self._hub = _hub_for(db)

    # ------------------------------------------------------------------ writing

    def enqueue(
        self,
        session: Session,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        host: str | None = None,
        resource_id: str | None = None,
        max_attempts: int = 3,
    ) -> Task:
        """Add a queued task in the caller's write transaction.

        Workers for ``kind`` are woken once that transaction commits.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = self.clock()
        task = Task(
            id=new_uuid(),
            kind=kind,
            resource_id=resource_id,
            target_host=host,
            payload=dict(payload or {}),
            state=QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            lease_owner=None,
            lease_expires_at=None,
            result=None,
            error=None,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.flush()
        self._notify_after_commit(session, kind)
        return task

    def _notify_after_commit(self, session: Session, kind: str) -> None:
        from sqlalchemy import event

        pending: set[str] | None = session.info.get(_PENDING_KEY)
        if pending is not None:
            pending.add(kind)
            return
        pending = {kind}
        session.info[_PENDING_KEY] = pending

        def after_commit(sess: Session) -> None:
            kinds = sess.info.pop(_PENDING_KEY, set())
            for k in kinds:
                self.notify(k)

        def after_rollback(sess: Session, _transaction: Any) -> None:
            sess.info.pop(_PENDING_KEY, None)

        event.listen(session, "after_commit", after_commit, once=True)
        event.listen(session, "after_soft_rollback", after_rollback, once=True)

    def claim(
        self,
        owner: str,
        host: str | None,
        kinds: Iterable[str] | None,
        lease_seconds: float = 60.0,
    ) -> Task | None:
        """Take the oldest runnable task of these kinds for this host, or None.

        Runnable: queued, or running with an expired lease (its holder is
        presumed dead; this counts an attempt). A task whose attempts are used
        up is failed instead of claimed. Exactly one concurrent claimer wins.
        """
        kind_list = sorted(set(kinds)) if kinds is not None else None
        if kind_list is not None and not kind_list:
            return None
        with self.db.write() as session:
            for _ in range(100):
                now = self.clock()
                task = self._next_candidate(session, host, kind_list, now)
                if task is None:
                    return None
                if task.attempts >= task.max_attempts:
                    self._give_up(session, task, now)
                    continue
                expires = now + timedelta(seconds=lease_seconds)
                won = session.execute(
                    update(Task)
                    .where(
                        Task.id == task.id,
                        Task.state == task.state,
                        Task.attempts == task.attempts,
                    )
                    .values(
                        state=RUNNING,
                        attempts=Task.attempts + 1,
                        lease_owner=owner,
                        lease_expires_at=expires,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(won, "rowcount", 0) != 1:
                    continue  # someone else took it; look again
                session.refresh(task)
                if task.attempts > 1:
                    LOG.info(
                        "task %s (%s): attempt %d by %s", task.id, task.kind, task.attempts, owner
                    )
                return task
        return None

    def _next_candidate(
        self, session: Session, host: str | None, kinds: list[str] | None, now: datetime
    ) -> Task | None:
        runnable = or_(
            Task.state == QUEUED,
            and_(Task.state == RUNNING, Task.lease_expires_at < now),
        )
        stmt = select(Task).where(runnable)
        if kinds is not None:
            stmt = stmt.where(Task.kind.in_(kinds))
        if host is None:
            stmt = stmt.where(Task.target_host.is_(None))
        else:
            stmt = stmt.where(or_(Task.target_host.is_(None), Task.target_host == host))
        stmt = (
            stmt.order_by(Task.created_at, Task.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        return session.execute(stmt).scalars().first()

    def _give_up(self, session: Session, task: Task, now: datetime) -> None:
        message = (
            f"Task {task.kind} {task.id} failed: its lease expired during attempt "
            f"{task.attempts} of {task.max_attempts} (owner {task.lease_owner or 'unknown'}) "
            "and no attempts are left."
        )
        if task.error:
            message += f" Last error: {task.error}"
        session.execute(
            update(Task)
            .where(Task.id == task.id, Task.state == task.state)
            .values(
                state=FAILED, lease_owner=None, lease_expires_at=None, error=message, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        session.expire(task)
        LOG.error("%s", message)

    def _held(self, session: Session, task_id: str, owner: str) -> Task | None:
        stmt = select(Task).where(Task.id == task_id)
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        task = session.execute(stmt).scalars().first()
        if task is None or task.state != RUNNING or task.lease_owner != owner:
            return None
        return task

    def heartbeat(self, task_id: str, owner: str, lease_seconds: float = 60.0) -> bool:
        """Extend the lease; False if ``owner`` no longer holds it."""
        with self.db.write() as session:
            task = self._held(session, task_id, owner)
            if task is None:
                return False
            now = self.clock()
            task.lease_expires_at = now + timedelta(seconds=lease_seconds)
            task.updated_at = now
            return True

    def complete(self, task_id: str, owner: str, result: Mapping[str, Any] | None = None) -> bool:
        """Record success; False (nothing changed) if ``owner`` lost the lease."""
        with self.db.write() as session:
            task = self._held(session, task_id, owner)
            if task is None:
                LOG.warning("task %s: %s completed it without holding its lease", task_id, owner)
                return False
            task.state = SUCCEEDED
            task.result = dict(result) if result is not None else None
            task.lease_owner = None
            task.lease_expires_at = None
            task.updated_at = self.clock()
            return True

    def fail(self, task_id: str, owner: str, error: str, retry: bool = False) -> bool:
        """Record a failed attempt: queued again if ``retry`` and attempts are left,
        else failed. False (nothing changed) if ``owner`` lost the lease."""
        with self.db.write() as session:
            task = self._held(session, task_id, owner)
            if task is None:
                LOG.warning("task %s: %s failed it without holding its lease", task_id, owner)
                return False
            requeue = retry and task.attempts < task.max_attempts
            task.error = error
            task.lease_owner = None
            task.lease_expires_at = None
            task.updated_at = self.clock()
            if requeue:
                task.state = QUEUED
            else:
                task.state = FAILED
                if retry:
                    task.error = (
                        f"{error} (gave up after {task.attempts} of {task.max_attempts} attempts)"
                    )
            kind = task.kind
        if requeue:
            self.notify(kind)
        return True

    def release(self, task_id: str, owner: str) -> bool:
        """Give a claimed task back unrun (e.g. on shutdown); the attempt is not counted."""
        with self.db.write() as session:
            task = self._held(session, task_id, owner)
            if task is None:
                return False
            task.state = QUEUED
            task.attempts = max(task.attempts - 1, 0)
            task.lease_owner = None
            task.lease_expires_at = None
            task.updated_at = self.clock()
            kind = task.kind
        self.notify(kind)
        return True

    # ------------------------------------------------------------------ reading

    def get(self, task_id: str) -> Task | None:
        with self.db.read() as session:
            task = session.get(Task, task_id)
            if task is not None:
                session.expunge(task)  # keep it loaded past the read's rollback
            return task

    def find(
        self,
        *,
        kind: str | None = None,
        resource_id: str | None = None,
        states: Sequence[str] | None = None,
        host: str | None = None,
    ) -> list[Task]:
        """Tasks matching all the given criteria, oldest first."""
        stmt = select(Task)
        if kind is not None:
            stmt = stmt.where(Task.kind == kind)
        if resource_id is not None:
            stmt = stmt.where(Task.resource_id == resource_id)
        if states is not None:
            stmt = stmt.where(Task.state.in_(list(states)))
        if host is not None:
            stmt = stmt.where(Task.target_host == host)
        with self.db.read() as session:
            tasks = list(session.execute(stmt.order_by(Task.created_at, Task.id)).scalars())
            session.expunge_all()
            return tasks

    def purge(self, older_than: timedelta) -> int:
        """Delete finished tasks last updated more than ``older_than`` ago."""
        cutoff = self.clock() - older_than
        with self.db.write() as session:
            outcome = session.execute(
                delete(Task)
                .where(Task.state.in_([SUCCEEDED, FAILED]), Task.updated_at < cutoff)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(outcome, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ wake-ups

    def listen(self, kinds: Iterable[str] | None = None) -> Listener:
        """Register for wake-ups (call from the event loop that will wait)."""
        listener = Listener(self, kinds)
        with self._hub.lock:
            self._hub.listeners.add(listener)
        return listener

    def _unregister(self, listener: Listener) -> None:
        with self._hub.lock:
            self._hub.listeners.discard(listener)

    def notify(self, kind: str | None = None) -> None:
        """Wake the waiters for ``kind`` (all waiters if None); any thread may call it."""
        with self._hub.lock:
            listeners = [item for item in self._hub.listeners if item.wants(kind)]
        for listener in listeners:
            listener._wake()

    async def wait(self, kinds: Iterable[str] | None = None, timeout: float | None = None) -> bool:
        """Wait for a notification of one of ``kinds``; False on timeout."""
        with self.listen(kinds) as listener:
            return await listener.wait(timeout)


class TaskFailed(Exception):
    """Raised by a handler to fail its task with this message (``retry`` to try again)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


Handler = Callable[[Task], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]


class Worker:
    """Runs tasks of the handled kinds for one host: claim, run, heartbeat, record.

    ``handlers`` maps a kind to a handler taking the claimed :class:`Task` and
    returning its result (a mapping or None). Async handlers run on the loop
    (they must not block it); plain functions run in a thread. A handler raises
    :class:`TaskFailed` to fail its task; any other exception fails the
    attempt and is retried while attempts remain (``retry_unexpected``).
    If the lease is lost while a handler runs, the handler is cancelled.
    """

    def __init__(
        self,
        queue: TaskQueue,
        owner: str,
        host: str | None,
        handlers: Mapping[str, Handler],
        *,
        lease_seconds: float = 60.0,
        heartbeat_interval: float | None = None,
        poll_interval: float = 5.0,
        concurrency: int = 1,
        retry_unexpected: bool = True,
        stop_timeout: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.owner = owner
        self.host = host
        self.handlers = dict(handlers)
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = heartbeat_interval or max(lease_seconds / 3, 0.05)
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.retry_unexpected = retry_unexpected
        self.stop_timeout = stop_timeout
        self._loops: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._stopping = asyncio.Event()
        self.processed = 0

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._loops)

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._listener = self.queue.listen(self.handlers)
        self._loops = [
            asyncio.create_task(self._loop(), name=f"worker-{self.owner}-{i}")
            for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Stop claiming; let running handlers finish (up to ``stop_timeout``)."""
        self._stopping.set()
        self.queue.notify(None)
        if self._loops:
            done, pending = await asyncio.wait(self._loops, timeout=self.stop_timeout)
            for loop_task in pending:
                loop_task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def _loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database hiccuped; try again later
                LOG.exception("worker %s: claiming failed", self.owner)
                worked = False
            if worked or self._stopping.is_set():
                continue
            await listener.wait(self.poll_interval)
            if self._stopping.is_set():
                return

    async def run_once(self) -> bool:
        """Claim and run one task; False if there was nothing to do."""
        task = await asyncio.to_thread(
            self.queue.claim, self.owner, self.host, list(self.handlers), self.lease_seconds
        )
        if task is None:
            return False
        await self._run(task)
        self.processed += 1
        return True

    async def _run(self, task: Task) -> None:
        handler = self.handlers[task.kind]
        work: asyncio.Task[Any] = asyncio.ensure_future(self._call(handler, task))
        beat = asyncio.create_task(self._heartbeat(task, work))
        try:
            result = await work
        except asyncio.CancelledError:
            if beat.done() and not beat.cancelled() and beat.result() is False:
                LOG.warning("task %s (%s): lease lost, handler cancelled", task.id, task.kind)
                return
            # The worker itself is being cancelled (shutdown): give the task back.
            await asyncio.shield(asyncio.to_thread(self.queue.release, task.id, self.owner))
            raise
        except TaskFailed as exc:
            await asyncio.to_thread(self.queue.fail, task.id, self.owner, str(exc), exc.retry)
            return
        except Exception as exc:
            LOG.exception("task %s (%s) raised", task.id, task.kind)
            error = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(
                self.queue.fail, task.id, self.owner, error, self.retry_unexpected
            )
            return
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await asyncio.to_thread(
            self.queue.complete, task.id, self.owner, dict(result) if result else None
        )

    @staticmethod
    async def _call(handler: Handler, task: Task) -> Mapping[str, Any] | None:
        if inspect.iscoroutinefunction(handler):
            return await handler(task)  # type: ignore[no-any-return]
        outcome = await asyncio.to_thread(handler, task)
        if inspect.isawaitable(outcome):
            return await outcome  # type: ignore[no-any-return]
        return outcome

    async def _heartbeat(self, task: Task, work: asyncio.Task[Any]) -> bool:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                held = await asyncio.to_thread(
                    self.queue.heartbeat, task.id, self.owner, self.lease_seconds
                )
            except Exception:
                LOG.exception("task %s: heartbeat failed", task.id)
                continue
            if not held:
                work.cancel()
                return False
