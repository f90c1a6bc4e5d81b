"""The worker: claims tasks through a broker, runs their handlers, keeps
their leases alive and reports the outcome.

A handler gets a :class:`TaskContext`: the claimed task (payload, attempt,
claim token), ``check()`` that raises :class:`TaskCancelled` once the task
was cancelled or its lease lost, a ``cancel_event`` a thread can watch,
``fenced_write()`` (a database transaction that commits only while the lease
holds; where the broker has a database) and ``progress()``. Async handlers
run on the loop (they must not block it); plain functions run in a thread
and call ``ctx.check()`` between their steps.

A handler returns its result (a mapping or None); raises
:class:`TaskFailed` to fail the task (``retry=True`` to try again after the
kind's backoff); any other exception fails the attempt and the kind's rule
decides on a retry. While a handler runs, the worker heartbeats:

* a stop request (``cancel``) sets the cancel flag and cancels an async
  handler; a thread handler stops at its next ``check()``; the task is then
  recorded cancelled;
* a lost lease (heartbeat refused, or not confirmed before the lease would
  run out - heartbeat errors are not swallowed) sets the flag and abandons
  the handler: nothing it writes afterwards is accepted.

Each concurrent loop of a worker has an owner identity of its own. This
module imports no database code, so an agent without one can use it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from onestack.common.tasks.broker import Broker, Claim, LocalBroker
from onestack.common.tasks.errors import BrokerError, LeaseLost, TaskCancelled, TaskFailed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LOG = logging.getLogger(__name__)

__all__ = ["Batched", "Handler", "TaskCancelled", "TaskContext", "TaskFailed", "Worker"]

LEASE_LOST = "The task's lease was lost; another holder may run it."
LEASE_RAN_OUT = "Heartbeats failed until the lease ran out; the task may run elsewhere."


class TaskContext:
    """What a running handler knows and may do."""

    def __init__(self, claim: Claim, broker: Broker, loop: asyncio.AbstractEventLoop) -> None:
        self.claim = claim
        self.cancel_event = threading.Event()
        self.cancel_reason: str | None = None
        self.lease_lost = False
        self._broker = broker
        self._loop = loop

    @property
    def task_id(self) -> str:
        return self.claim.id

    @property
    def kind(self) -> str:
        return self.claim.kind

    @property
    def payload(self) -> dict[str, Any]:
        return self.claim.payload

    @property
    def attempt(self) -> int:
        return self.claim.attempts

    @property
    def claim_token(self) -> int:
        return self.claim.claim_token

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`TaskCancelled` if the task must stop (any thread)."""
        if self.cancel_event.is_set():
            raise TaskCancelled(self.cancel_reason or "cancelled")

    @contextmanager
    def fenced_write(self) -> Iterator[Session]:
        """A database write transaction that starts by verifying (and locking)
        the lease: the resource changes made in it and the lease check are one
        transaction. Raises :class:`TaskCancelled` if the lease is not held."""
        self.check()
        try:
            with self._broker.fenced(self.claim) as session:
                yield session
        except LeaseLost:
            self._lose()
            raise TaskCancelled(LEASE_LOST) from None

    async def progress(self, progress: Mapping[str, Any]) -> None:
        """Record progress (fenced; the kind's ``on_progress`` hook runs with it).
        Raises :class:`TaskCancelled` if the task was cancelled or the lease lost."""
        self.check()
        try:
            stop = await self._broker.progress(self.claim, progress)
        except LeaseLost:
            self._lose()
            raise TaskCancelled(LEASE_LOST) from None
        if stop:
            self._request_stop("Cancelled on request.")
            self.check()

    def progress_sync(self, progress: Mapping[str, Any]) -> None:
        """:meth:`progress` for a handler running in a thread."""
        asyncio.run_coroutine_threadsafe(self.progress(progress), self._loop).result()

    def _request_stop(self, reason: str) -> None:
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()

    def _lose(self, reason: str = LEASE_LOST) -> None:
        self.lease_lost = True
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()


Handler = Callable[[TaskContext], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]
Outcome = Mapping[str, Any] | None | BaseException


class Batched:
    """A handler of a kind whose due tasks a worker may run several at once.

    Called with one context, it is ``single`` (an async handler). When a claim
    finds several runnable tasks of the kind (of different resource keys: one
    task per key runs at a time), the worker takes up to ``limit`` of them in
    one write unit and awaits ``batch(contexts)``, which returns one outcome per
    context, in order: its result (a mapping or None), or the exception that
    failed it (``TaskFailed``, ``TaskCancelled`` or any other, as a handler
    would raise it). Their successes are recorded in one write unit too, each
    fenced by its own lease; each task keeps its lease, heartbeat, attempts and
    retries, and a failure of one does not fail the others.

    ``window`` (a LocalBroker's worker): in a stream of delayed tasks of the
    kind, each is woken up to that long after it is due, by one wake-up for
    all those due by then (``Hub.windows``), and the kind is claimed at most
    once per window, so that the stream runs in batches.
    """

    def __init__(self, single: Callable[[TaskContext], Awaitable[Mapping[str, Any] | None]],
                 batch: Callable[[list[TaskContext]], Awaitable[list[Outcome]]],
                 limit: int = 32, window: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window < 0:
            raise ValueError("window must not be negative")
        self.single = single
        self.batch = batch
        self.limit = limit
        self.window = window  # a delayed task is woken up to this much after it is due

    async def __call__(self, ctx: TaskContext) -> Mapping[str, Any] | None:
        return await self.single(ctx)


def _not_a_result(result: Any) -> str | None:
    """Why a handler's return value cannot be recorded, or None if it can."""
    if result is None:
        return None
    if not isinstance(result, Mapping):
        return f"The handler returned a value of type {type(result).__name__}, not a mapping or None."
    try:
        json.dumps(dict(result))
    except (TypeError, ValueError) as exc:
        return f"The handler's result is not JSON: {exc}"
    return None


class Worker:
    """Runs tasks of the handled kinds for one host: claim, run, heartbeat, record.

    ``broker`` is a :class:`Broker` (a ``TaskQueue`` is wrapped in a
    :class:`LocalBroker`). ``poll_interval`` bounds how long a claim waits for
    a wake-up before looking again (the fallback when no wake-up comes).
    """

    def __init__(
        self,
        broker: Any,
        host: str | None,
        handlers: Mapping[str, Handler],
        *,
        name: str | None = None,
        lease_seconds: float = 60.0,
        heartbeat_interval: float | None = None,
        poll_interval: float = 5.0,
        concurrency: int = 1,
        stop_timeout: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        self._own_broker = False
        if not hasattr(broker, "claim") or not inspect.iscoroutinefunction(broker.claim):
            broker = LocalBroker(broker, poll_interval=poll_interval)
            self._own_broker = True
        self.broker: Broker = broker
        self.host = host
        self.handlers = dict(handlers)
        self.name = name or f"{host or 'any'}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.owners = [f"{self.name}/{i}" for i in range(concurrency)]
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = heartbeat_interval or max(lease_seconds / 3, 0.05)
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.processed = 0
        self.fatal: BaseException | None = None  # why the worker gave up (a refused credential)
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        # the kinds whose tasks may be claimed and run several at once (where
        # the broker can: a LocalBroker)
        self._batched = {kind: h for kind, h in self.handlers.items() if isinstance(h, Batched)}
        if not hasattr(self.broker, "claim_batch"):
            self._batched = {}
        self._batch_limit = max((h.limit for h in self._batched.values()), default=1)
        for kind, batched in self._batched.items():
            if batched.window > 0 and hasattr(self.broker, "set_window"):
                self.broker.set_window(kind, batched.window)

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._loops)

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = asyncio.Event()
        self.fatal = None
        self._loops = [
            asyncio.create_task(self._loop(owner), name=f"worker-{owner}") for owner in self.owners
        ]

    async def stop(self) -> None:
        """Stop claiming; let running handlers finish (up to ``stop_timeout``),
        then cancel them and give their tasks back."""
        self._stopping.set()

        async def interrupt(owner: str) -> None:
            try:
                await asyncio.wait_for(self.broker.interrupt(owner), 5)
            except Exception as exc:  # the claim will return at its own timeout
                LOG.debug("worker %s: interrupt failed: %s", owner, exc)

        await asyncio.gather(*(interrupt(owner) for owner in self.owners))
        if self._loops:
            _done, pending = await asyncio.wait(self._loops, timeout=self.stop_timeout)
            for loop_task in pending:
                loop_task.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        if self._own_broker:
            await self.broker.close()

    async def wait_stopped(self) -> None:
        """Return when every loop has ended (after ``stop()`` or a fatal error)."""
        if self._loops:
            await asyncio.gather(*self._loops, return_exceptions=True)

    async def _loop(self, owner: str) -> None:
        delay = 0.1
        kinds = sorted(self.handlers)
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            asked = loop.time()
            try:
                claims = await self._claim(owner, kinds)
            except asyncio.CancelledError:
                raise
            except BrokerError as exc:
                if exc.status in (401, 403):  # refused: retrying will not help
                    LOG.error("worker %s: the broker refused us: %s", owner, exc)
                    self.fatal = exc
                    self._stopping.set()
                    return
                LOG.warning("worker %s: claiming failed: %s", owner, exc)
                await self._pause(delay)
                delay = min(delay * 2, self.poll_interval)
                continue
            except Exception:  # the database hiccuped; try again shortly
                LOG.exception("worker %s: claiming failed", owner)
                await self._pause(delay)
                delay = min(delay * 2, self.poll_interval)
                continue
            delay = 0.1
            if not claims:
                continue
            if self._stopping.is_set():
                for claim in claims:
                    await self._report(self.broker.release, claim)
                return
            if len(claims) == 1:
                await self._run(claims[0], asked)
            else:
                await self._run_batch(claims, asked)
            self.processed += len(claims)

    async def _claim(self, owner: str, kinds: list[str]) -> list[Claim]:
        if self._batched:
            found: list[Claim] = await self.broker.claim_batch(  # type: ignore[attr-defined]
                owner, self.host, kinds, self.lease_seconds, self.poll_interval,
                self._batch_limit, sorted(self._batched))
            return found
        claim = await self.broker.claim(owner, self.host, kinds, self.lease_seconds,
                                        self.poll_interval)
        return [claim] if claim is not None else []

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def run_once(self, owner: str | None = None) -> bool:
        """Claim and run one task if one is runnable now; False if none was."""
        owner = owner or self.owners[0]
        asked = asyncio.get_running_loop().time()
        claim = await self.broker.claim(owner, self.host, sorted(self.handlers),
                                        self.lease_seconds, 0)
        if claim is None:
            return False
        await self._run(claim, asked)
        self.processed += 1
        return True

    async def _run_batch(self, claims: list[Claim], claimed: float) -> None:
        """Several tasks of one batched kind: one call of its ``batch``, each
        task with its own context and heartbeat, the successes recorded in one
        write unit and each failure as a task alone would be."""
        handler = self._batched[claims[0].kind]
        loop = asyncio.get_running_loop()
        ctxs = [TaskContext(claim, self.broker, loop) for claim in claims]
        # each task's lease: cancelled by its heartbeat when lost or stopped
        leases: list[asyncio.Future[None]] = [loop.create_future() for _ in ctxs]
        beats = [asyncio.create_task(self._heartbeat(ctx, lease, False, claimed + ctx.claim.waited))
                 for ctx, lease in zip(ctxs, leases, strict=True)]
        outcomes: list[Outcome]
        try:
            outcomes = list(await handler.batch(ctxs))
            if len(outcomes) != len(ctxs):
                raise TypeError(f"the batch handler returned {len(outcomes)} outcomes "
                                f"for {len(ctxs)} tasks")
        except asyncio.CancelledError:  # the worker is stopping: give every task back
            for ctx in ctxs:
                ctx._request_stop("The worker is stopping.")
            await asyncio.shield(asyncio.gather(
                *(self._report(self.broker.release, claim) for claim in claims)))
            raise
        except Exception as exc:
            LOG.exception("tasks %s (%s) raised", [c.id for c in claims], claims[0].kind)
            outcomes = [exc] * len(ctxs)
        finally:
            for beat in beats:
                beat.cancel()
            for lease in leases:
                if not lease.done():
                    lease.set_result(None)
        done: list[tuple[Claim, Mapping[str, Any] | None]] = []
        for ctx, outcome in zip(ctxs, outcomes, strict=True):
            claim = ctx.claim
            if ctx.cancel_event.is_set() or isinstance(outcome, TaskCancelled):
                if isinstance(outcome, TaskCancelled) and not ctx.cancel_event.is_set():
                    ctx._request_stop(str(outcome))
                await self._cancelled(ctx)
            elif isinstance(outcome, TaskFailed):
                await self._report(self.broker.fail, claim, str(outcome), outcome.retry)
            elif isinstance(outcome, BaseException):
                LOG.error("task %s (%s) raised: %r", claim.id, claim.kind, outcome)
                await self._report(self.broker.fail, claim,
                                   f"{type(outcome).__name__}: {outcome}", None)
            elif (problem := _not_a_result(outcome)) is not None:
                LOG.error("task %s (%s): %s", claim.id, claim.kind, problem)
                await self._report(self.broker.fail, claim, problem, False)
            else:
                done.append((claim, dict(outcome) if outcome is not None else None))
        if done:
            await self._report(self.broker.complete_batch, done)  # type: ignore[attr-defined]

    async def _run(self, claim: Claim, claimed: float) -> None:
        handler = self.handlers[claim.kind]
        ctx = TaskContext(claim, self.broker, asyncio.get_running_loop())
        threaded = not (inspect.iscoroutinefunction(handler) or isinstance(handler, Batched))
        work: asyncio.Future[Any] = asyncio.ensure_future(self._call(handler, ctx, threaded))
        # The lease began no earlier than the claim request plus the broker's wait.
        beat = asyncio.create_task(
            self._heartbeat(ctx, work, threaded, claimed + claim.waited))
        try:
            result = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if ctx.cancel_event.is_set() and (current is None or not current.cancelling()):
                await self._cancelled(ctx)
                return
            # The worker itself is being cancelled (shutdown): give the task back,
            # and a handler running in a thread stops at its next check().
            ctx._request_stop("The worker is stopping.")
            work.cancel()
            await asyncio.shield(self._report(self.broker.release, claim))
            raise
        except TaskCancelled:
            await self._cancelled(ctx)
        except TaskFailed as exc:
            await self._report(self.broker.fail, claim, str(exc), exc.retry)
        except Exception as exc:
            LOG.exception("task %s (%s) raised", claim.id, claim.kind)
            await self._report(self.broker.fail, claim, f"{type(exc).__name__}: {exc}", None)
        else:
            problem = _not_a_result(result)
            if problem is not None:
                LOG.error("task %s (%s): %s", claim.id, claim.kind, problem)
                await self._report(self.broker.fail, claim, problem, False)
            else:
                outcome = dict(result) if result is not None else None
                await self._report(self.broker.complete, claim, outcome)
        finally:
            beat.cancel()

    async def _call(self, handler: Handler, ctx: TaskContext, threaded: bool) -> Any:
        if threaded:
            result = await asyncio.to_thread(handler, ctx)
        else:
            result = handler(ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _cancelled(self, ctx: TaskContext) -> None:
        claim = ctx.claim
        if ctx.lease_lost:
            LOG.warning("task %s (%s): %s Its handler was stopped.", claim.id, claim.kind,
                        ctx.cancel_reason)
            return
        await self._report(self.broker.fail, claim, ctx.cancel_reason or "Cancelled.", False)

    async def _report(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Report an outcome, retrying a few times if the broker is unreachable
        (the lease then runs out and the task is retried - never lost)."""
        for attempt in range(3):
            try:
                return await call(*args)
            except LeaseLost:
                return False
            except Exception as exc:
                LOG.warning("task report %s failed (try %d): %s",
                            getattr(call, "__name__", call), attempt + 1, exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        return False

    async def _heartbeat(self, ctx: TaskContext, work: asyncio.Future[Any], threaded: bool,
                         claimed: float) -> None:
        """Extend the lease every ``heartbeat_interval``. A deadline timer,
        re-armed by each confirmed heartbeat, stops the handler a margin
        before the lease would run out - also while a heartbeat call hangs
        (errors are not swallowed: an unconfirmed lease is a lost one)."""
        loop = asyncio.get_running_loop()
        margin = min(self.heartbeat_interval, self.lease_seconds / 10)
        deadline: asyncio.TimerHandle | None = None

        def expire() -> None:
            if not work.done():
                LOG.warning("task %s: its lease could not be renewed in time", ctx.task_id)
                ctx._lose(LEASE_RAN_OUT)
                work.cancel()

        def arm(sent: float) -> None:
            nonlocal deadline
            if deadline is not None:
                deadline.cancel()
            deadline = loop.call_at(sent + self.lease_seconds - margin, expire)

        arm(claimed)  # the lease runs from (no earlier than) the claim's request
        try:
            while not work.done():
                await asyncio.sleep(self.heartbeat_interval)
                if work.done():
                    return
                sent = loop.time()
                try:
                    stop = await self.broker.heartbeat(ctx.claim, self.lease_seconds)
                except LeaseLost:
                    ctx._lose()
                    work.cancel()
                    return
                except Exception as exc:
                    LOG.warning("task %s: heartbeat failed: %s", ctx.task_id, exc)
                    continue
                arm(sent)
                if stop and not ctx.cancel_event.is_set():
                    ctx._request_stop("Cancelled on request.")
                    if not threaded:
                        work.cancel()
        finally:
            if deadline is not None:
                deadline.cancel()
