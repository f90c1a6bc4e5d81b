"""One task at a time per resource, in order; supersede; concurrent claimers.

Each test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

from onestack.common.db import Database
from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from onestack.common.tasks import claims
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.kinds import KindRegistry, KindRule
from onestack.common.tasks.queue import TaskQueue
from tests.unit.tasks_support import add

# ------------------------------------------------------------------ per resource


def test_a_delete_queued_behind_a_boot_waits_for_it(queue: TaskQueue) -> None:
    boot = add(queue, "boot", resource_key="server:1")
    delete = add(queue, "delete", resource_key="server:1")
    other = add(queue, "boot", resource_key="server:2")
    first = queue.claim("a", "h1", ["boot", "delete"])
    assert first is not None and first.id == boot
    second = queue.claim("b", "h1", ["boot", "delete"])
    assert second is not None and second.id == other  # another resource is not held up
    assert queue.claim("c", "h1", ["delete"]) is None  # server:1 is busy
    assert queue.complete(boot, first.claim_token)
    third = queue.claim("c", "h1", ["delete"])
    assert third is not None and third.id == delete


def test_a_resources_tasks_run_in_order_through_retries(
    queue: TaskQueue, clock: DbClock, kinds: KindRegistry
) -> None:
    kinds.register("boot", KindRule(backoff_base=30))
    boot = add(queue, "boot", resource_key="server:1")
    delete = add(queue, "delete", resource_key="server:1")
    claim = queue.claim("a", "h1", None)
    assert claim is not None and claim.id == boot
    assert queue.fail(boot, claim.claim_token, "transient", retry=True)
    # the boot waits out its backoff, and the delete waits for the boot
    assert queue.claim("a", "h1", None) is None
    clock.advance(31)
    again = queue.claim("a", "h1", None)
    assert again is not None and again.id == boot and again.attempts == 2
    assert queue.fail(boot, again.claim_token, "broken", retry=False)
    last = queue.claim("a", "h1", None)
    assert last is not None and last.id == delete


def test_an_expired_holder_keeps_its_place_in_line(queue: TaskQueue, clock: DbClock) -> None:
    boot = add(queue, "boot", resource_key="server:1")
    add(queue, "delete", resource_key="server:1")
    assert queue.claim("a", "h1", None, lease_seconds=5) is not None
    clock.advance(6)
    again = queue.claim("b", "h1", None)
    assert again is not None and again.id == boot


def test_supersede_cancels_the_queued_tasks_of_those_kinds(
    queue: TaskQueue, kinds: KindRegistry
) -> None:
    cancelled: list[str | None] = []
    kinds.register("boot", KindRule(on_cancel=lambda s, t: cancelled.append(t.reason)))
    boot = add(queue, "boot", resource_key="server:1")
    resize = add(queue, "resize", resource_key="server:1")
    untouched = add(queue, "boot", resource_key="server:2")
    delete = add(queue, "delete", resource_key="server:1", supersedes={"boot", "resize"})
    states = {t.id: (t.state, t.reason) for t in queue.find()}
    reason = f"Superseded by a later delete task ({delete})."
    assert states[boot] == states[resize] == (CANCELLED, reason)
    assert states[untouched] == (QUEUED, None) and states[delete] == (QUEUED, None)
    assert cancelled == [reason]
    claim = queue.claim("a", "h1", ["delete"])
    assert claim is not None and claim.id == delete


def test_supersede_leaves_a_running_task_unless_told_to_interrupt(queue: TaskQueue) -> None:
    boot = add(queue, "boot", resource_key="server:1")
    running = queue.claim("a", "h1", ["boot"])
    assert running is not None
    add(queue, "delete", resource_key="server:1", supersedes={"boot"})
    assert queue.heartbeat(boot, running.claim_token) is False
    task = queue.get(boot)
    assert task is not None and task.state == RUNNING
    add(queue, "delete", resource_key="server:1", supersedes={"boot"}, interrupt=True)
    assert queue.heartbeat(boot, running.claim_token) is True  # asked to stop
    assert queue.claim("b", "h1", ["delete"]) is None  # the boot still runs
    assert queue.fail(boot, running.claim_token, "stopped")
    task = queue.get(boot)
    assert task is not None and task.state == CANCELLED
    nxt = queue.claim("b", "h1", ["delete"])
    assert nxt is not None


def test_a_task_enqueued_late_never_runs_beside_a_running_one(queue: TaskQueue) -> None:
    """Two transactions enqueue for one key; the later-numbered one may
    already run when an earlier-numbered one appears: it must wait."""
    running_id = add(queue, "boot", resource_key="k")
    running = queue.claim("a", "h1", None)
    assert running is not None
    with queue.db.write() as s:  # pretend an older task for the key shows up now
        late = queue.enqueue(s, "delete", {}, resource_key="k")
        late.seq = 0
    assert queue.claim("b", "h1", None) is None
    assert queue.complete(running_id, running.claim_token)
    nxt = queue.claim("b", "h1", None)
    assert nxt is not None and nxt.id == late.id


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


def test_claimers_on_separate_handles_take_each_task_once_and_keep_resource_order(
    db: Database,
) -> None:
    """Like separate processes (no shared writer lock): 60 tasks over 6
    resource keys; no task is run twice, no two tasks of one key ever run at
    once, and each key's tasks run in enqueue order."""
    handles = [type(db)(db.url) for _ in range(4)]
    try:
        queues = [TaskQueue(h) for h in handles]
        expected: dict[str, list[str]] = defaultdict(list)
        with db.write() as s:
            for i in range(60):
                key = f"server:{i % 6}"
                expected[key].append(queues[0].enqueue(s, "op", {"i": i}, resource_key=key).id)
        lock = threading.Lock()
        running: dict[str, int] = defaultdict(int)
        order: dict[str, list[str]] = defaultdict(list)
        overlaps: list[str] = []
        errors: list[BaseException] = []

        def claimer(i: int) -> None:
            queue = queues[i % 4]
            rng = random.Random(i)
            idle = 0
            try:
                while idle < 3:
                    task = queue.claim(f"agent-{i}", "h1", ["op"])
                    if task is None:
                        idle += 1
                        time.sleep(0.05)
                        continue
                    idle = 0
                    key = task.resource_key or ""
                    with lock:
                        running[key] += 1
                        if running[key] > 1:
                            overlaps.append(key)
                        order[key].append(task.id)
                    time.sleep(rng.random() * 0.003)
                    with lock:
                        running[key] -= 1
                    assert queue.complete(task.id, task.claim_token)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert overlaps == []
        assert dict(order) == dict(expected)
        assert all(t.state == SUCCEEDED for t in queues[0].find())
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
            assert queue.complete(task.id, task.claim_token, {"by": i})

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    assert all(t.state == SUCCEEDED for t in queue.find())


def test_a_stale_holder_racing_the_new_one_never_wins(db: Database) -> None:
    """Many rounds: the lease expires, a new holder claims, and the old and
    new holders report at the same moment: only the new holder's outcome counts."""
    clock = DbClock()
    queue = TaskQueue(db, clock=clock)
    for round_ in range(10):
        task_id = add(queue, payload={"round": round_}, max_attempts=5)
        old = queue.claim("w", "h1", ["boot"], lease_seconds=5)
        assert old is not None
        clock.advance(6)
        new = queue.claim("w", "h1", ["boot"], lease_seconds=60)
        assert new is not None and new.claim_token == old.claim_token + 1
        barrier = threading.Barrier(2)
        results: dict[str, bool] = {}

        def report(name: str, token: int, tid: str = task_id,
                   barrier: threading.Barrier = barrier,
                   results: dict[str, bool] = results) -> None:
            barrier.wait()
            if name == "old":
                results[name] = queue.fail(tid, token, "old holder", retry=False)
            else:
                results[name] = queue.complete(tid, token, {"by": name})

        threads = [threading.Thread(target=report, args=("old", old.claim_token)),
                   threading.Thread(target=report, args=("new", new.claim_token))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {"old": False, "new": True}
        task = queue.get(task_id)
        assert task is not None and (task.state, task.result) == (SUCCEEDED, {"by": "new"})
    assert not any(t.state == FAILED for t in queue.find())


def test_a_claim_rechecks_the_resource_after_its_read(queue: TaskQueue) -> None:
    """The race the write phase closes: a claimer read task A as the key's
    only runnable task; before it writes, another claimer starts task B of
    the same key (enqueued concurrently, numbered before A). Taking A now
    must be refused."""
    a = add(queue, "op", resource_key="k")
    with queue.db.read() as s:
        seen = list(s.execute(claims.candidates(queue, "h1", ["op"])).scalars())
    assert seen == [a]
    with queue.db.write() as s:
        b = queue.enqueue(s, "op", {}, resource_key="k")
        b.seq = 0
    other = queue.claim("y", "h1", ["op"])
    assert other is not None and other.id == b.id
    with queue.db.write() as s:
        assert claims.take(queue, s, a, "x", "h1", ["op"], 60) is None
    task = queue.get(a)
    assert task is not None and task.state == QUEUED
