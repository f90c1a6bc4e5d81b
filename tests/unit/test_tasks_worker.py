"""The worker: handlers, heartbeats, cancellation, lost leases, stopping.

Each test runs on SQLite and on PostgreSQL (see conftest.py), through the
in-process broker; tests/api/test_internal_tasks.py runs workers through the
HTTP broker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from onestack.common.tasks.broker import Claim, LocalBroker
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.errors import TaskCancelled, TaskFailed
from onestack.common.tasks.kinds import KindRegistry, KindRule
from onestack.common.tasks.queue import TaskQueue
from onestack.common.tasks.worker import TaskContext, Worker
from tests.unit.tasks_support import add, wait_for


def state(queue: TaskQueue, task_id: str) -> str:
    task = queue.get(task_id)
    assert task is not None
    return task.state


def test_worker_runs_tasks_and_records_outcomes(queue: TaskQueue) -> None:
    seen: list[dict[str, Any]] = []

    async def boot(ctx: TaskContext) -> dict[str, Any]:
        seen.append(ctx.payload)
        return {"booted": ctx.payload["n"]}

    def sync_delete(ctx: TaskContext) -> None:  # plain functions run in a thread
        assert threading.current_thread() is not threading.main_thread()
        ctx.check()

    async def broken(ctx: TaskContext) -> None:
        raise TaskFailed("no such image")

    async def main() -> None:
        worker = Worker(
            queue, "h1", {"boot": boot, "delete": sync_delete, "broken": broken},
            poll_interval=30,  # only wake-ups can make this test pass in time
        )
        await worker.start()
        try:
            await asyncio.sleep(0.05)
            ids = [add(queue, "boot", payload={"n": i}) for i in range(3)]
            ids.append(add(queue, "delete"))
            ids.append(add(queue, "broken", max_attempts=3))
            await wait_for(lambda: all(queue.get(i).done for i in ids))  # type: ignore[union-attr]
        finally:
            await worker.stop()
        tasks = [queue.get(i) for i in ids]
        assert [t.state for t in tasks] == [SUCCEEDED] * 4 + [FAILED]  # type: ignore[union-attr]
        assert [t.result for t in tasks[:3]] == [{"booted": i} for i in range(3)]  # type: ignore[union-attr]
        assert tasks[4].reason == "no such image" and tasks[4].attempts == 1  # type: ignore[union-attr]
        assert worker.processed == 5 and not worker.running

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 10


def test_each_loop_has_its_own_owner(queue: TaskQueue) -> None:
    owners: set[str] = set()
    release = asyncio.Event()

    async def hold(ctx: TaskContext) -> None:
        task = await asyncio.to_thread(queue.get, ctx.task_id)
        assert task is not None and task.lease_owner == ctx.claim.owner
        owners.add(ctx.claim.owner)
        await release.wait()

    async def main() -> None:
        worker = Worker(queue, "h1", {"hold": hold}, concurrency=3, poll_interval=0.05)
        for _ in range(3):
            add(queue, "hold")
        await worker.start()
        try:
            await wait_for(lambda: len(owners) == 3)
            release.set()
        finally:
            await worker.stop()
        assert owners == set(worker.owners) and len(owners) == 3

    asyncio.run(main())


def test_worker_retries_unexpected_errors_after_a_backoff(
    queue: TaskQueue, kinds: KindRegistry
) -> None:
    kinds.register("flaky", KindRule(max_attempts=3, backoff_base=0.3))
    calls: list[tuple[int, float]] = []

    async def flaky(ctx: TaskContext) -> dict[str, int]:
        calls.append((ctx.attempt, time.monotonic()))
        if ctx.attempt < 3:
            raise OSError("transient")
        return {"ok": ctx.attempt}

    async def main() -> None:
        worker = Worker(queue, "h1", {"flaky": flaky}, poll_interval=30)
        task_id = add(queue, "flaky")
        await worker.start()
        try:
            await wait_for(lambda: queue.get(task_id).done)  # type: ignore[union-attr]
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None
        assert (task.state, task.result) == (SUCCEEDED, {"ok": 3})
        assert task.error == "OSError: transient"
        assert [attempt for attempt, _ in calls] == [1, 2, 3]
        gaps = [b[1] - a[1] for a, b in zip(calls, calls[1:], strict=False)]
        assert 0.25 < gaps[0] < 5 and 0.55 < gaps[1] < 5  # 0.3 s, then 0.6 s

    asyncio.run(main())


def test_worker_heartbeats_during_long_handlers(queue: TaskQueue) -> None:
    async def slow(ctx: TaskContext) -> dict[str, bool]:
        await asyncio.sleep(3.0)
        return {"done": True}

    async def main() -> None:
        worker = Worker(queue, "h1", {"slow": slow}, lease_seconds=1.5, poll_interval=0.05)
        task_id = add(queue, "slow")
        await worker.start()
        try:
            await wait_for(lambda: state(queue, task_id) == RUNNING)
            stolen = 0
            for _ in range(25):  # without heartbeats the 1.5 s lease would expire
                await asyncio.sleep(0.1)
                if await asyncio.to_thread(queue.claim, "thief", "h1", ["slow"]):
                    stolen += 1
            await wait_for(lambda: queue.get(task_id).done)  # type: ignore[union-attr]
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert stolen == 0
        assert task is not None and (task.state, task.attempts) == (SUCCEEDED, 1)

    asyncio.run(main())


def test_a_claim_made_after_a_long_wait_keeps_its_lease(queue: TaskQueue) -> None:
    """The worker's lease deadline starts at the claim, not at the start of
    the wait that preceded it (a claim waits up to poll_interval)."""
    async def slow(ctx: TaskContext) -> dict[str, bool]:
        await asyncio.sleep(1.5)
        return {"done": True}

    async def main() -> None:
        worker = Worker(queue, "h1", {"slow": slow}, lease_seconds=1.2,
                        heartbeat_interval=0.3, poll_interval=10)
        await worker.start()
        try:
            await asyncio.sleep(2.0)  # the claim has waited longer than the lease by now
            task_id = add(queue, "slow")
            await wait_for(lambda: queue.get(task_id).done)  # type: ignore[union-attr]
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None and (task.state, task.attempts) == (SUCCEEDED, 1)

    asyncio.run(main())


def test_a_handler_whose_lease_was_lost_is_cancelled_and_cannot_write(
    queue: TaskQueue, clock: DbClock
) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        worker = Worker(queue, "h1", {"forever": forever}, lease_seconds=5,
                        heartbeat_interval=0.05, poll_interval=0.05)
        task_id = add(queue, "forever", max_attempts=5)
        await worker.start()
        try:
            await wait_for(started.is_set)
            clock.advance(1000)  # the worker's lease is long gone
            thief = await asyncio.to_thread(queue.claim, "thief", "h1", ["forever"], 1e6)
            assert thief is not None
            await wait_for(cancelled.is_set)
            await asyncio.sleep(0.1)
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None and task.lease_owner == "thief" and task.state == RUNNING

    asyncio.run(main())


def test_a_thread_handler_stops_at_its_next_check_once_the_lease_is_lost(
    queue: TaskQueue, clock: DbClock
) -> None:
    """The thread cannot be killed; its ``check()`` raises and its fenced
    write is refused, so the new holder's state stays."""
    step_one = threading.Event()
    go_on = threading.Event()
    outcome: dict[str, Any] = {}

    def two_steps(ctx: TaskContext) -> None:
        step_one.set()
        go_on.wait(10)
        try:
            ctx.check()
            outcome["check"] = "passed"
        except TaskCancelled as exc:
            outcome["check"] = str(exc)
        try:
            with ctx.fenced_write() as session:
                session.execute(text("UPDATE task SET payload = '{\"stale\": 1}' WHERE id = :i"),
                                {"i": ctx.task_id})
            outcome["write"] = "accepted"
        except TaskCancelled:
            outcome["write"] = "refused"

    async def main() -> None:
        worker = Worker(queue, "h1", {"two": two_steps}, lease_seconds=5,
                        heartbeat_interval=0.05, poll_interval=0.05)
        task_id = add(queue, "two", max_attempts=5, payload={"n": 1})
        await worker.start()
        try:
            await wait_for(step_one.is_set)
            clock.advance(1000)
            assert await asyncio.to_thread(queue.claim, "thief", "h1", ["two"], 1e6)
            await asyncio.sleep(0.3)  # a heartbeat or two: the worker learns it lost the lease
            go_on.set()
            await wait_for(lambda: "write" in outcome)
        finally:
            await worker.stop()
        assert outcome == {"check": "The task's lease was lost; another holder may run it.",
                           "write": "refused"}
        task = queue.get(task_id)
        assert task is not None and task.payload == {"n": 1} and task.lease_owner == "thief"

    asyncio.run(main())


class FlakyBroker(LocalBroker):
    """A broker whose heartbeats fail (the API unreachable) after ``failing``,
    or hang (a network black hole) with ``hanging``."""

    failing = False
    hanging = False
    last_good_sent = 0.0

    async def heartbeat(self, claim: Claim, lease_seconds: float) -> bool:
        if self.hanging:
            await asyncio.sleep(3600)
        if self.failing:
            raise OSError("connection refused")
        sent = time.monotonic()
        stop = await super().heartbeat(claim, lease_seconds)
        self.last_good_sent = sent
        return stop


@pytest.mark.parametrize("how", ["failing", "hanging"])
def test_failing_heartbeats_stop_the_handler_before_the_lease_runs_out(
    queue: TaskQueue, how: str
) -> None:
    started = threading.Event()
    cancelled_at: list[float] = []

    async def forever(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled_at.append(time.monotonic())
            raise

    async def main() -> None:
        broker = FlakyBroker(queue)
        worker = Worker(broker, "h1", {"forever": forever}, lease_seconds=3.0,
                        heartbeat_interval=0.3, poll_interval=0.05)
        task_id = add(queue, "forever")
        await worker.start()
        try:
            await wait_for(started.is_set)
            await wait_for(lambda: broker.last_good_sent > 0)
            setattr(broker, how, True)
            await wait_for(lambda: bool(cancelled_at))
            # stopped before the lease (3 s after the last good heartbeat) ran out
            assert cancelled_at[0] - broker.last_good_sent < 3.0
        finally:
            await worker.stop()
            await broker.close()
        task = queue.get(task_id)
        # never completed: left to expire and be retried (perhaps by this worker again)
        assert task is not None and task.state in (RUNNING, QUEUED) and task.result is None

    asyncio.run(main())


@pytest.mark.parametrize("threaded", [False, True])
def test_cancelling_a_running_task_stops_its_handler(queue: TaskQueue, threaded: bool) -> None:
    started = threading.Event()
    stopped: list[str] = []

    async def async_handler(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append("cancelled")
            raise

    def thread_handler(ctx: TaskContext) -> None:
        started.set()
        while True:
            try:
                ctx.check()
            except TaskCancelled:
                stopped.append("checked")
                raise
            ctx.cancel_event.wait(0.05)

    async def main() -> None:
        handler = thread_handler if threaded else async_handler
        worker = Worker(queue, "h1", {"long": handler}, lease_seconds=3,
                        heartbeat_interval=0.05, poll_interval=0.05)
        task_id = add(queue, "long")
        await worker.start()
        try:
            await wait_for(started.is_set)
            assert await asyncio.to_thread(queue.cancel, task_id, "The user deleted it.") == RUNNING
            await wait_for(lambda: state(queue, task_id) == CANCELLED)
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None and task.reason == "The user deleted it."
        assert stopped == ["checked" if threaded else "cancelled"]

    asyncio.run(main())


def test_a_handler_writes_its_resource_under_the_fence(queue: TaskQueue) -> None:
    async def boot(ctx: TaskContext) -> dict[str, str]:
        def write() -> None:
            with ctx.fenced_write() as session:
                session.execute(text("UPDATE task SET payload = :p WHERE id = :i"),
                                {"p": '{"vm": "ACTIVE"}', "i": ctx.task_id})
        await asyncio.to_thread(write)
        await ctx.progress({"step": "networking"})
        return {"ok": "yes"}

    async def main() -> None:
        worker = Worker(queue, "h1", {"boot": boot}, poll_interval=0.05)
        task_id = add(queue, "boot")
        await worker.start()
        try:
            await wait_for(lambda: queue.get(task_id).done)  # type: ignore[union-attr]
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None
        assert (task.state, task.payload, task.progress, task.result) == (
            SUCCEEDED, {"vm": "ACTIVE"}, {"step": "networking"}, {"ok": "yes"})

    asyncio.run(main())


def test_worker_stops_cleanly_when_idle_and_busy(queue: TaskQueue) -> None:
    async def stuck(ctx: TaskContext) -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        idle = Worker(queue, "h1", {"other": stuck}, poll_interval=30)
        await idle.start()
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await idle.stop()
        assert time.monotonic() - start < 1 and not idle.running

        busy = Worker(queue, "h1", {"stuck": stuck}, poll_interval=0.05, stop_timeout=0.2)
        task_id = add(queue, "stuck")
        await busy.start()
        await wait_for(lambda: state(queue, task_id) == RUNNING)
        start = time.monotonic()
        await busy.stop()
        assert time.monotonic() - start < 2 and not busy.running
        task = queue.get(task_id)
        # the interrupted task went back to the queue, its attempt not counted
        assert task is not None and (task.state, task.attempts, task.lease_owner) == (
            QUEUED, 0, None)

    asyncio.run(main())


def test_a_worker_needs_handlers() -> None:
    with pytest.raises(ValueError, match="at least one handler"):
        Worker(object(), "h1", {})


def test_a_thread_handler_stops_at_its_next_check_when_the_worker_stops(queue: TaskQueue) -> None:
    """Stopping the worker gives a running task back; a handler in a thread is
    told (its cancel flag) and stops at its next check instead of running on."""
    steps: list[int] = []
    stopped = threading.Event()

    def long_job(ctx: TaskContext) -> None:
        for i in range(1000):
            try:
                ctx.check()
            except TaskCancelled:
                stopped.set()
                raise
            steps.append(i)
            time.sleep(0.01)

    async def main() -> None:
        worker = Worker(queue, "h1", {"long": long_job}, poll_interval=0.05, stop_timeout=0.2)
        task_id = add(queue, "long")
        await worker.start()
        await wait_for(lambda: len(steps) > 3)
        await worker.stop()
        assert await asyncio.to_thread(stopped.wait, 2)
        done = len(steps)
        await asyncio.sleep(0.1)
        assert len(steps) == done < 1000  # it stopped, well before its end
        task = queue.get(task_id)
        assert task is not None and (task.state, task.attempts, task.lease_owner) == (QUEUED, 0, None)

    asyncio.run(main())
