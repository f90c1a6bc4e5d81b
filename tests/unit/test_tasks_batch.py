"""Batched kinds: several due tasks of one kind claimed in one write unit, run
by one call of the handler's ``batch`` and recorded together, each keeping
its own lease, fencing token, order per key and retries.

Each test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from onestack.common.models import QUEUED, RUNNING, SUCCEEDED
from onestack.common.tasks.errors import TaskFailed
from onestack.common.tasks.queue import TaskQueue
from onestack.common.tasks.wakeups import Hub
from onestack.common.tasks.worker import Batched, Outcome, TaskContext, Worker
from tests.unit.tasks_support import add, wait_for

KINDS = ["net", "other"]


def test_claim_many_takes_due_tasks_of_the_kind_each_with_its_own_lease(queue: TaskQueue) -> None:
    ids = [add(queue, "net", payload={"n": i}, resource_key=f"network:{i}") for i in range(5)]
    later = add(queue, "net", payload={"n": 0}, resource_key="network:0")  # same key: waits
    other = add(queue, "other", payload={}, resource_key="router:1")
    taken = queue.claim_many("w/0", "h1", KINDS, 60.0, 4, ["net"])
    assert [t.id for t in taken] == ids[:4]  # oldest first, up to the limit
    assert all(t.state == RUNNING and t.claim_token == 1 and t.attempts == 1 for t in taken)
    assert {t.lease_owner for t in taken} == {"w/0"}
    rest = queue.claim_many("w/1", "h1", KINDS, 60.0, 4, ["net"])
    # ids[4] is the oldest left; the key's second task waits for the first; a
    # task of another kind is not part of a batch of "net"
    assert [t.id for t in rest] == [ids[4]]
    assert queue.get(later).state == QUEUED  # type: ignore[union-attr]
    assert queue.get(other).state == QUEUED  # type: ignore[union-attr]
    alone = queue.claim_many("w/2", "h1", KINDS, 60.0, 4, ["net"])
    assert [t.id for t in alone] == [other]


def test_claim_many_of_a_kind_not_batched_takes_one(queue: TaskQueue) -> None:
    ids = [add(queue, "net", payload={"n": i}, resource_key=f"network:{i}") for i in range(3)]
    taken = queue.claim_many("w/0", "h1", KINDS, 60.0, 8, ["other"])
    assert [t.id for t in taken] == ids[:1]
    assert [t.id for t in queue.claim_many("w/0", "h1", KINDS, 60.0, 8, ())] == ids[1:2]


def test_complete_many_refuses_a_stale_claim_and_records_the_others(queue: TaskQueue) -> None:
    for i in range(3):
        add(queue, "net", payload={"n": i}, resource_key=f"network:{i}")
    a, b, c = queue.claim_many("w/0", "h1", KINDS, 60.0, 3, ["net"])
    assert queue.release(b.id, b.claim_token, "w/0")  # b went back, and is claimed again
    (b2,) = queue.claim_many("w/1", "h1", KINDS, 60.0, 3, ["net"])
    assert b2.id == b.id and b2.claim_token == b.claim_token + 1
    recorded = queue.complete_many(
        [(a.id, a.claim_token, {"n": 0}), (b.id, b.claim_token, {"n": 1}), (c.id, c.claim_token, None)],
        "w/0")
    assert recorded == [True, False, True]
    got = {t: queue.get(t) for t in (a.id, b.id, c.id)}
    assert got[a.id].state == SUCCEEDED and got[a.id].result == {"n": 0}  # type: ignore[union-attr]
    assert got[c.id].state == SUCCEEDED  # type: ignore[union-attr]
    # the stale outcome changed nothing: b runs under its new holder's lease
    assert got[b.id].state == RUNNING and got[b.id].lease_owner == "w/1"  # type: ignore[union-attr]
    assert got[b.id].claim_token == b2.claim_token and got[b.id].result is None  # type: ignore[union-attr]


def test_worker_runs_due_tasks_in_one_batch_and_a_failure_fails_only_its_task(queue: TaskQueue) -> None:
    batches: list[list[int]] = []
    singles: list[int] = []

    async def single(ctx: TaskContext) -> Mapping[str, Any]:
        singles.append(ctx.payload["n"])
        return {"alone": ctx.payload["n"]}

    async def batch(ctxs: list[TaskContext]) -> list[Outcome]:
        batches.append([c.payload["n"] for c in ctxs])
        out: list[Outcome] = []
        for c in ctxs:
            if c.payload["n"] == 2 and c.attempt == 1:
                out.append(TaskFailed("bridge busy", retry=True))
            else:
                out.append({"n": c.payload["n"], "attempt": c.attempt})
        return out

    ids = run_until_all_succeeded(queue, 5, Batched(single, batch, limit=8), poll_interval=30)
    assert batches[0] == [0, 1, 2, 3, 4]  # all five claimed and run together
    assert singles == [2]  # its retry was alone
    tasks = [queue.get(i) for i in ids]
    assert [t.result for t in tasks] == [  # type: ignore[union-attr]
        {"n": 0, "attempt": 1}, {"n": 1, "attempt": 1}, {"alone": 2},
        {"n": 3, "attempt": 1}, {"n": 4, "attempt": 1}]
    assert [t.attempts for t in tasks] == [1, 1, 2, 1, 1]  # type: ignore[union-attr]
    assert tasks[2].error == "bridge busy"  # type: ignore[union-attr]


def test_a_batch_handler_that_raises_fails_every_task_of_the_batch_for_a_retry(queue: TaskQueue) -> None:
    calls: list[int] = []

    async def single(ctx: TaskContext) -> None:
        return None

    async def batch(ctxs: list[TaskContext]) -> list[Outcome]:
        calls.append(len(ctxs))
        if len(calls) == 1:
            raise OSError("netlink went away")
        return [None for _ in ctxs]

    ids = run_until_all_succeeded(queue, 3, Batched(single, batch), poll_interval=0.2)
    assert calls[0] == 3
    for task_id in ids:
        task = queue.get(task_id)
        assert task is not None
        assert task.attempts == 2 and task.error == "OSError: netlink went away"


def test_a_window_makes_one_wake_up_for_a_stream_of_tasks_and_none_for_a_lone_one() -> None:
    hub = Hub()
    hub.windows["net"] = 0.1
    woken: list[float] = []

    async def main() -> None:
        listener = hub.listen(["net"])
        began = time.monotonic()
        hub.notify_later("net", 0.0)  # a lone task: woken when due
        hub.notify_later("net", 0.01)  # a stream: woken a window after it is due...
        hub.notify_later("net", 0.05)  # ...with the tasks due by then: no wake-up of its own
        hub.notify_later("net", 0.1)
        for _ in range(2):
            assert await listener.wait(1.0)
            woken.append(time.monotonic() - began)
        assert not await listener.wait(0.2)  # nothing else was planned
        began = time.monotonic()
        hub.notify_later("net", 0.05)  # long after the last one: alone again
        assert await listener.wait(1.0)
        woken.append(time.monotonic() - began)
        listener.close()

    asyncio.run(main())
    assert woken[0] < 0.05
    assert 0.105 <= woken[1] < 0.2
    assert 0.045 <= woken[2] < 0.1


def run_until_all_succeeded(queue: TaskQueue, count: int, handler: Batched,
                            poll_interval: float) -> list[str]:
    """``count`` tasks of kind ``net`` (one network each), run by a worker with
    ``handler`` until every one succeeded; their ids."""
    async def main() -> list[str]:
        ids = [add(queue, "net", payload={"n": i}, resource_key=f"network:{i}")
               for i in range(count)]
        worker = Worker(queue, "h1", {"net": handler}, poll_interval=poll_interval)
        await worker.start()
        try:
            await wait_for(lambda: all(queue.get(i).state == SUCCEEDED for i in ids))  # type: ignore[union-attr]
        finally:
            await worker.stop()
        return ids

    return asyncio.run(main())
