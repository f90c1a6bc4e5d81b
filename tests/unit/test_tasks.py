"""The durable task queue: claims, leases, retries, wake-ups and the worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from onestack.common.db import Base, Database
from onestack.common.ids import utcnow
from onestack.common.models import Task
from onestack.common.tasks import (
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TaskFailed,
    TaskQueue,
    Worker,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = utcnow()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(microseconds=1)  # strictly increasing, like time
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """Each test on SQLite and on PostgreSQL (claims use FOR UPDATE SKIP LOCKED there)."""
    database = Database(database_url)
    Base.metadata.create_all(database.engine, tables=[Base.metadata.tables["task"]])
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Database, clock: Clock) -> TaskQueue:
    return TaskQueue(db, clock=clock)


def add(queue: TaskQueue, kind: str = "boot", **kw: Any) -> str:
    with queue.db.write() as s:
        return queue.enqueue(s, kind, kw.pop("payload", {"n": 1}), **kw).id


# ------------------------------------------------------------------ enqueue / claim


def test_enqueue_joins_the_callers_transaction(queue: TaskQueue) -> None:
    with pytest.raises(RuntimeError):
        with queue.db.write() as s:
            task_id = queue.enqueue(s, "boot", {"server": "x"}, resource_id="x").id
            raise RuntimeError("the resource write failed")
    assert queue.get(task_id) is None
    assert queue.claim("a", "h1", ["boot"]) is None


def test_enqueue_and_get(queue: TaskQueue) -> None:
    task_id = add(queue, payload={"server": "s1"}, resource_id="s1", host="h1", max_attempts=5)
    task = queue.get(task_id)
    assert task is not None
    assert (task.kind, task.state, task.attempts, task.max_attempts) == ("boot", QUEUED, 0, 5)
    assert task.payload == {"server": "s1"} and task.resource_id == "s1"
    assert task.target_host == "h1" and task.lease_owner is None
    assert queue.find(resource_id="s1")[0].id == task_id
    assert queue.find(resource_id="s1", states=[RUNNING]) == []


def test_enqueue_rejects_zero_attempts(queue: TaskQueue) -> None:
    with queue.db.write() as s, pytest.raises(ValueError):
        queue.enqueue(s, "boot", {}, max_attempts=0)


def test_claim_takes_the_oldest_once(queue: TaskQueue) -> None:
    first = add(queue)
    second = add(queue)
    task = queue.claim("agent-a", "h1", ["boot"], lease_seconds=30)
    assert task is not None and task.id == first
    assert (task.state, task.attempts, task.lease_owner) == (RUNNING, 1, "agent-a")
    assert task.lease_expires_at is not None
    again = queue.claim("agent-b", "h1", ["boot"])
    assert again is not None and again.id == second
    assert queue.claim("agent-c", "h1", ["boot"]) is None


def test_claim_filters_kinds(queue: TaskQueue) -> None:
    add(queue, "delete")
    assert queue.claim("a", "h1", ["boot"]) is None
    assert queue.claim("a", "h1", []) is None
    task = queue.claim("a", "h1", ["boot", "delete"])
    assert task is not None and task.kind == "delete"


def test_claim_any_kind(queue: TaskQueue) -> None:
    add(queue, "x")
    task = queue.claim("a", None, None)
    assert task is not None and task.kind == "x"


def test_claim_respects_target_host(queue: TaskQueue) -> None:
    pinned = add(queue, host="h2")
    assert queue.claim("a", "h1", ["boot"]) is None
    assert queue.claim("a", None, ["boot"]) is None  # a host-less worker takes only host-less
    task = queue.claim("b", "h2", ["boot"])
    assert task is not None and task.id == pinned
    anywhere = add(queue)
    task = queue.claim("a", "h1", ["boot"])
    assert task is not None and task.id == anywhere


# ------------------------------------------------------------------ leases


def test_heartbeat_extends_the_lease(queue: TaskQueue, clock: Clock) -> None:
    add(queue)
    task = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert task is not None and task.lease_expires_at is not None
    clock.advance(8)
    assert queue.heartbeat(task.id, "a", lease_seconds=10)
    clock.advance(8)  # 16 s after the claim, but only 8 s after the heartbeat
    assert queue.claim("b", "h1", ["boot"]) is None
    assert not queue.heartbeat(task.id, "b")  # not b's lease
    assert not queue.heartbeat("no-such-task", "a")


def test_expired_lease_is_claimed_again_and_counts_an_attempt(
    queue: TaskQueue, clock: Clock
) -> None:
    task_id = add(queue)
    first = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert first is not None and first.attempts == 1
    clock.advance(5)
    assert queue.claim("b", "h1", ["boot"]) is None  # lease still valid
    clock.advance(6)
    second = queue.claim("b", "h1", ["boot"], lease_seconds=10)
    assert second is not None and second.id == task_id
    assert (second.attempts, second.lease_owner) == (2, "b")
    # the old holder has lost it: nothing it reports counts
    assert not queue.heartbeat(task_id, "a")
    assert not queue.complete(task_id, "a", {"by": "a"})
    assert not queue.fail(task_id, "a", "boom")
    assert queue.complete(task_id, "b", {"by": "b"})
    done = queue.get(task_id)
    assert done is not None
    assert (done.state, done.result, done.lease_owner) == (SUCCEEDED, {"by": "b"}, None)
    assert done.done


def test_holder_may_still_finish_after_expiry_if_nobody_took_over(
    queue: TaskQueue, clock: Clock
) -> None:
    task_id = add(queue)
    assert queue.claim("a", "h1", ["boot"], lease_seconds=1) is not None
    clock.advance(5)
    assert queue.complete(task_id, "a")
    task = queue.get(task_id)
    assert task is not None and task.state == SUCCEEDED and task.result is None


def test_past_max_attempts_the_task_fails(queue: TaskQueue, clock: Clock) -> None:
    task_id = add(queue, max_attempts=2)
    assert queue.claim("a", "h1", ["boot"], lease_seconds=1) is not None
    clock.advance(2)
    assert queue.claim("b", "h1", ["boot"], lease_seconds=1) is not None
    clock.advance(2)
    later = add(queue)
    claimed = queue.claim("c", "h1", ["boot"], lease_seconds=1)
    assert claimed is not None and claimed.id == later  # the used-up task is skipped
    task = queue.get(task_id)
    assert task is not None
    assert task.state == FAILED and task.attempts == 2 and task.lease_owner is None
    assert task.error is not None
    assert "lease expired during attempt 2 of 2" in task.error
    assert "no attempts are left" in task.error and "owner b" in task.error


# ------------------------------------------------------------------ outcomes


def test_fail_with_retry_requeues_until_attempts_run_out(queue: TaskQueue) -> None:
    task_id = add(queue, max_attempts=2)
    assert queue.claim("a", "h1", ["boot"]) is not None
    assert queue.fail(task_id, "a", "disk full", retry=True)
    task = queue.get(task_id)
    assert task is not None
    assert (task.state, task.attempts, task.error, task.lease_owner) == (
        QUEUED,
        1,
        "disk full",
        None,
    )
    again = queue.claim("a", "h1", ["boot"])
    assert again is not None and again.attempts == 2
    assert queue.fail(task_id, "a", "disk still full", retry=True)
    task = queue.get(task_id)
    assert task is not None and task.state == FAILED
    assert task.error == "disk still full (gave up after 2 of 2 attempts)"
    assert queue.claim("a", "h1", ["boot"]) is None


def test_fail_without_retry(queue: TaskQueue) -> None:
    task_id = add(queue)
    assert queue.claim("a", "h1", ["boot"]) is not None
    assert queue.fail(task_id, "a", "image not found")
    task = queue.get(task_id)
    assert task is not None and (task.state, task.error) == (FAILED, "image not found")
    assert not queue.complete(task_id, "a")  # finished tasks stay finished


def test_release_gives_the_task_back_uncounted(queue: TaskQueue) -> None:
    task_id = add(queue)
    assert queue.claim("a", "h1", ["boot"]) is not None
    assert queue.release(task_id, "a")
    task = queue.get(task_id)
    assert task is not None and (task.state, task.attempts) == (QUEUED, 0)
    assert not queue.release(task_id, "a")


def test_purge_finished(queue: TaskQueue, clock: Clock) -> None:
    done = add(queue)
    add(queue)
    assert queue.claim("a", "h1", ["boot"]) is not None
    assert queue.complete(done, "a")
    assert queue.purge(timedelta(hours=1)) == 0
    clock.advance(7200)
    assert queue.purge(timedelta(hours=1)) == 1
    assert queue.get(done) is None
    assert len(queue.find()) == 1


# ------------------------------------------------------------------ concurrency


def test_concurrent_claims_have_one_winner(db: Database) -> None:
    queue = TaskQueue(db)
    add(queue)
    barrier = threading.Barrier(16)
    winners: list[str] = []
    errors: list[BaseException] = []

    def claimer(i: int) -> None:
        try:
            barrier.wait()
            task = queue.claim(f"agent-{i}", "h1", ["boot"])
            if task is not None:
                winners.append(task.lease_owner or "")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(winners) == 1


def test_claims_from_separate_database_handles_have_one_winner(db: Database) -> None:
    """Like separate processes: no shared writer lock, only SQLite's own locking."""
    handles = [Database(db.url) for _ in range(4)]
    try:
        queues = [TaskQueue(h) for h in handles]

        def one_round(round_: int) -> list[str]:
            add(queues[0], payload={"round": round_})
            barrier = threading.Barrier(12)
            winners: list[str] = []
            errors: list[BaseException] = []

            def claimer(i: int) -> None:
                try:
                    barrier.wait()
                    task = queues[i % 4].claim(f"agent-{i}", "h1", ["boot"])
                    if task is not None:
                        winners.append(task.id)
                        queues[i % 4].complete(task.id, f"agent-{i}")
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=claimer, args=(i,)) for i in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            return winners

        for round_ in range(5):
            assert len(one_round(round_)) == 1
    finally:
        for h in handles:
            h.dispose()


def test_concurrent_claimers_take_each_task_exactly_once(db: Database) -> None:
    queue = TaskQueue(db)
    ids = {add(queue, payload={"i": i}) for i in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(i: int) -> None:
        while (task := queue.claim(f"agent-{i}", "h1", ["boot"])) is not None:
            with lock:
                claimed.append(task.id)
            assert queue.complete(task.id, f"agent-{i}", {"by": i})

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    assert all(t.state == SUCCEEDED for t in queue.find())


# ------------------------------------------------------------------ wake-ups


def test_wait_times_out(queue: TaskQueue) -> None:
    async def main() -> tuple[bool, float]:
        start = time.monotonic()
        woke = await queue.wait(["boot"], timeout=0.2)
        return woke, time.monotonic() - start

    woke, elapsed = asyncio.run(main())
    assert not woke and elapsed >= 0.18


def test_enqueue_from_a_thread_wakes_the_waiter_after_commit(queue: TaskQueue) -> None:
    committed = threading.Event()

    def producer() -> None:
        time.sleep(0.1)
        with queue.db.write() as s:
            queue.enqueue(s, "boot", {})
            time.sleep(0.2)  # no wake-up yet: the task is not committed
            committed.set()

    async def main() -> tuple[bool, bool, float]:
        start = time.monotonic()
        thread = threading.Thread(target=producer)
        thread.start()
        woke = await queue.wait(["boot"], timeout=5)
        seen_committed = committed.is_set()
        elapsed = time.monotonic() - start
        await asyncio.to_thread(thread.join)
        return woke, seen_committed, elapsed

    woke, seen_committed, elapsed = asyncio.run(main())
    assert woke and seen_committed and elapsed < 2


def test_queues_on_one_database_share_wake_ups(db: Database) -> None:
    api_side, agent_side = TaskQueue(db), TaskQueue(db)
    other_db = Database(db.url)

    async def main() -> tuple[bool, bool]:
        with agent_side.listen(["boot"]) as listener, TaskQueue(other_db).listen() as stranger:
            await asyncio.to_thread(add, api_side)
            return await listener.wait(timeout=2), await stranger.wait(timeout=0.1)

    try:
        assert asyncio.run(main()) == (True, False)
    finally:
        other_db.dispose()


def test_notify_other_kind_does_not_wake(queue: TaskQueue) -> None:
    async def main() -> bool:
        asyncio.get_running_loop().call_later(0.05, queue.notify, "delete")
        return await queue.wait(["boot"], timeout=0.3)

    assert asyncio.run(main()) is False


def test_listener_remembers_a_notification_made_before_waiting(queue: TaskQueue) -> None:
    async def main() -> bool:
        with queue.listen(["boot"]) as listener:
            await asyncio.to_thread(queue.notify, "boot")
            await asyncio.sleep(0.01)
            return await listener.wait(timeout=0.1)

    assert asyncio.run(main()) is True


def test_rolled_back_enqueue_does_not_wake(queue: TaskQueue) -> None:
    def producer() -> None:
        try:
            with queue.db.write() as s:
                queue.enqueue(s, "boot", {})
                raise RuntimeError
        except RuntimeError:
            pass

    async def main() -> bool:
        with queue.listen(["boot"]) as listener:
            await asyncio.to_thread(producer)
            return await listener.wait(timeout=0.2)

    assert asyncio.run(main()) is False


# ------------------------------------------------------------------ worker


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    async def poll() -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.02)

    return poll()


def test_worker_runs_tasks_and_records_outcomes(db: Database) -> None:
    queue = TaskQueue(db)
    seen: list[dict[str, Any]] = []

    async def boot(task: Task) -> dict[str, Any]:
        seen.append(task.payload)
        return {"booted": task.payload["n"]}

    def sync_delete(task: Task) -> None:  # plain functions run in a thread
        assert threading.current_thread() is not threading.main_thread()

    async def broken(task: Task) -> None:
        raise TaskFailed("no such image")

    async def main() -> None:
        worker = Worker(
            queue,
            "agent-1",
            "h1",
            {"boot": boot, "delete": sync_delete, "broken": broken},
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
        assert tasks[4].error == "no such image" and tasks[4].attempts == 1  # type: ignore[union-attr]
        assert worker.processed == 5 and not worker.running

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 10


def test_worker_retries_unexpected_errors(db: Database) -> None:
    queue = TaskQueue(db)
    calls: list[int] = []

    async def flaky(task: Task) -> dict[str, int]:
        calls.append(task.attempts)
        if task.attempts < 3:
            raise OSError("transient")
        return {"ok": task.attempts}

    async def main() -> None:
        worker = Worker(queue, "w", "h1", {"flaky": flaky}, poll_interval=0.05)
        task_id = add(queue, "flaky", max_attempts=3)
        await worker.start()
        try:
            await wait_for(lambda: queue.get(task_id).done)  # type: ignore[union-attr]
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None
        assert (task.state, task.result, calls) == (SUCCEEDED, {"ok": 3}, [1, 2, 3])

    asyncio.run(main())


def test_worker_heartbeats_during_long_handlers(db: Database) -> None:
    queue = TaskQueue(db)

    async def slow(task: Task) -> dict[str, bool]:
        await asyncio.sleep(1.2)
        return {"done": True}

    async def main() -> None:
        worker = Worker(queue, "w", "h1", {"slow": slow}, lease_seconds=0.4, poll_interval=0.05)
        task_id = add(queue, "slow")
        await worker.start()
        try:
            await wait_for(lambda: queue.get(task_id).state == RUNNING)  # type: ignore[union-attr]
            stolen = 0
            for _ in range(10):  # without heartbeats the 0.4 s lease would expire
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


def test_worker_cancels_a_handler_whose_lease_was_lost(db: Database, clock: Clock) -> None:
    queue = TaskQueue(db, clock=clock)
    started = threading.Event()
    cancelled = threading.Event()

    async def forever(task: Task) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        worker = Worker(
            queue,
            "w",
            "h1",
            {"forever": forever},
            lease_seconds=5,
            heartbeat_interval=0.05,
            poll_interval=0.05,
        )
        task_id = add(queue, "forever", max_attempts=5)
        await worker.start()
        try:
            await wait_for(started.is_set)
            thief = None
            for _ in range(50):
                clock.advance(1000)  # the worker's lease is long gone
                thief = await asyncio.to_thread(queue.claim, "thief", "h1", ["forever"], 1e6)
                if thief is not None:
                    break
            assert thief is not None
            await wait_for(cancelled.is_set)
            await asyncio.sleep(0.1)
        finally:
            await worker.stop()
        task = queue.get(task_id)
        assert task is not None and task.lease_owner == "thief" and task.state == RUNNING

    asyncio.run(main())


def test_worker_stops_cleanly_when_idle_and_busy(db: Database) -> None:
    queue = TaskQueue(db)

    async def stuck(task: Task) -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        idle = Worker(queue, "idle", "h1", {"other": stuck}, poll_interval=30)
        await idle.start()
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await idle.stop()
        assert time.monotonic() - start < 1 and not idle.running

        busy = Worker(queue, "busy", "h1", {"stuck": stuck}, poll_interval=0.05, stop_timeout=0.2)
        task_id = add(queue, "stuck")
        await busy.start()
        await wait_for(lambda: queue.get(task_id).state == RUNNING)  # type: ignore[union-attr]
        start = time.monotonic()
        await busy.stop()
        assert time.monotonic() - start < 2 and not busy.running
        task = queue.get(task_id)
        # the interrupted task went back to the queue, its attempt not counted
        assert task is not None and (task.state, task.attempts, task.lease_owner) == (
            QUEUED,
            0,
            None,
        )

    asyncio.run(main())
