"""The task queue: enqueue, claims, fencing, database clock, outcomes, backoff.

Each test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from onestack.common import ids
from onestack.common.db import Database
from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Task
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.errors import LeaseLost
from onestack.common.tasks.kinds import KindRegistry, KindRule
from onestack.common.tasks.queue import TaskQueue
from tests.unit.tasks_support import add, db_now

# ------------------------------------------------------------------ enqueue


def test_enqueue_joins_the_callers_transaction(queue: TaskQueue) -> None:
    with pytest.raises(RuntimeError):
        with queue.db.write() as s:
            task_id = queue.enqueue(s, "boot", {"server": "x"}, resource_key="server:x").id
            raise RuntimeError("the resource write failed")
    assert queue.get(task_id) is None
    assert queue.claim("a", "h1", ["boot"]) is None


def test_enqueue_and_get(queue: TaskQueue) -> None:
    before = db_now(queue)
    task_id = add(queue, payload={"server": "s1"}, resource_key="server:s1", host="h1",
                  max_attempts=5)
    task = queue.get(task_id)
    assert task is not None
    assert (task.kind, task.state, task.attempts, task.max_attempts) == ("boot", QUEUED, 0, 5)
    assert task.payload == {"server": "s1"} and task.resource_key == "server:s1"
    assert task.target_host == "h1" and task.lease_owner is None and task.claim_token == 0
    assert task.cancel_requested is False and task.reason is None
    assert before <= task.created_at == task.run_after <= db_now(queue)
    assert queue.find(resource_key="server:s1")[0].id == task_id
    assert queue.find(resource_key="server:s1", states=[RUNNING]) == []


def test_enqueue_order_within_one_transaction(queue: TaskQueue) -> None:
    with queue.db.write() as s:
        ids_ = [queue.enqueue(s, "boot", {"i": i}).id for i in range(5)]
    tasks = queue.find()
    assert [t.id for t in tasks] == ids_
    assert [t.seq for t in tasks] == sorted({t.seq for t in tasks})
    claimed = [queue.claim("a", None, ["boot"]) for _ in range(5)]
    assert [t.id for t in claimed if t is not None] == ids_


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"host": "h" * 256}, "host must be 1 to 255 characters"),
        ({"resource_key": ""}, "resource_key must be 1 to 255 characters"),
        ({"idempotency_key": "k" * 256}, "idempotency_key must be 1 to 255 characters"),
        ({"supersedes": ["boot"]}, "supersedes needs a resource_key"),
        ({"delay": -1}, "delay cannot be negative"),
    ],
)
def test_enqueue_rejects_bad_arguments(queue: TaskQueue, kw: dict[str, Any], message: str) -> None:
    with queue.db.write() as s, pytest.raises(ValueError, match=message):
        queue.enqueue(s, "boot", {}, **kw)
    assert queue.find() == []


def test_max_attempts_defaults_to_the_kinds_rule(queue: TaskQueue, kinds: KindRegistry) -> None:
    kinds.register("boot", KindRule(max_attempts=7))
    task = queue.get(add(queue))
    other = queue.get(add(queue, "other"))
    assert task is not None and task.max_attempts == 7
    assert other is not None and other.max_attempts == 3


# ------------------------------------------------------------------ deduplication


def test_the_same_idempotency_key_yields_one_task(queue: TaskQueue) -> None:
    first = add(queue, idempotency_key="boot-server-1", payload={"try": 1})
    second = add(queue, idempotency_key="boot-server-1", payload={"try": 2})
    other = add(queue, idempotency_key="boot-server-2")
    assert first == second != other
    task = queue.get(first)
    assert task is not None and task.payload == {"try": 1}
    assert len(queue.find(idempotency_key="boot-server-1")) == 1
    claimed = queue.claim("a", None, ["boot"])
    assert claimed is not None and queue.complete(claimed.id, claimed.claim_token)
    # a finished task still holds its key (until purged)
    assert add(queue, idempotency_key="boot-server-1") == first
    assert len(queue.find()) == 2


def test_concurrent_enqueues_of_one_key_make_one_task(db: Database) -> None:
    handles = [type(db)(db.url) for _ in range(4)]  # like separate processes
    try:
        barrier = threading.Barrier(8)
        got: list[str] = []
        errors: list[BaseException] = []

        def enqueuer(i: int) -> None:
            queue = TaskQueue(handles[i % 4])
            try:
                barrier.wait()
                with queue.db.write() as s:
                    got.append(queue.enqueue(s, "boot", {"i": i}, idempotency_key="k").id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=enqueuer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(got)) == 1 and len(got) == 8
        assert len(TaskQueue(db).find()) == 1
    finally:
        for h in handles:
            h.dispose()


# ------------------------------------------------------------------ claims


def test_claim_takes_the_oldest_once(queue: TaskQueue) -> None:
    first = add(queue)
    second = add(queue)
    task = queue.claim("agent-a", "h1", ["boot"], lease_seconds=30)
    assert task is not None and task.id == first
    assert (task.state, task.attempts, task.lease_owner, task.claim_token) == (
        RUNNING, 1, "agent-a", 1)
    assert task.lease_expires_at is not None
    again = queue.claim("agent-b", "h1", ["boot"])
    assert again is not None and again.id == second
    assert queue.claim("agent-c", "h1", ["boot"]) is None


def test_claim_filters_kinds_and_hosts(queue: TaskQueue) -> None:
    add(queue, "delete")
    assert queue.claim("a", "h1", ["boot"]) is None
    assert queue.claim("a", "h1", []) is None
    task = queue.claim("a", "h1", ["boot", "delete"])
    assert task is not None and task.kind == "delete"
    add(queue, "x")
    task = queue.claim("a", None, None)
    assert task is not None and task.kind == "x"
    pinned = add(queue, host="h2")
    assert queue.claim("a", "h1", ["boot"]) is None
    assert queue.claim("a", None, ["boot"]) is None  # a host-less worker takes only host-less
    task = queue.claim("b", "h2", ["boot"])
    assert task is not None and task.id == pinned


def test_an_idle_claim_writes_nothing(queue: TaskQueue) -> None:
    """With nothing to do, a claim only reads: it returns at once even while
    another connection holds the table's write lock."""
    add(queue, "other")
    with queue.db.write_engine.connect() as conn:
        if queue.db.is_sqlite:
            conn.exec_driver_sql("SELECT 1")  # this engine begins with BEGIN IMMEDIATE
        else:
            conn.exec_driver_sql("LOCK TABLE task IN EXCLUSIVE MODE")  # readers only
        start = time.monotonic()
        assert queue.claim("a", "h1", ["boot"]) is None
        assert time.monotonic() - start < 2
        conn.rollback()


def test_claim_rejects_bad_arguments(queue: TaskQueue) -> None:
    with pytest.raises(ValueError, match="owner must be 1 to 255 characters"):
        queue.claim("", "h1", ["boot"])
    with pytest.raises(ValueError, match="lease_seconds must be positive"):
        queue.claim("a", "h1", ["boot"], lease_seconds=0)


# ------------------------------------------------------------------ fencing


def test_a_stale_holder_of_the_same_name_is_refused(queue: TaskQueue, clock: DbClock) -> None:
    """Issue 7: after a lease expired and the same owner re-claimed the task,
    the first attempt's writes must be refused."""
    task_id = add(queue, max_attempts=5)
    first = queue.claim("worker", "h1", ["boot"], lease_seconds=10)
    assert first is not None and first.claim_token == 1
    clock.advance(11)
    second = queue.claim("worker", "h1", ["boot"], lease_seconds=10)
    assert second is not None and second.id == task_id
    assert (second.claim_token, second.attempts, second.lease_owner) == (2, 2, "worker")
    with pytest.raises(LeaseLost):
        queue.heartbeat(task_id, first.claim_token)
    with pytest.raises(LeaseLost):
        queue.progress(task_id, first.claim_token, {"step": 1})
    with pytest.raises(LeaseLost), queue.fenced(task_id, first.claim_token):
        raise AssertionError("a stale holder got a fenced write")
    assert not queue.complete(task_id, first.claim_token, {"by": "first"})
    assert not queue.fail(task_id, first.claim_token, "boom")
    assert not queue.release(task_id, first.claim_token)
    assert queue.complete(task_id, second.claim_token, {"by": "second"})
    done = queue.get(task_id)
    assert done is not None
    assert (done.state, done.result, done.lease_owner) == (SUCCEEDED, {"by": "second"}, None)


def test_an_expired_lease_is_lost_even_if_nobody_took_over(
    queue: TaskQueue, clock: DbClock
) -> None:
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert claim is not None
    clock.advance(11)
    with pytest.raises(LeaseLost):
        queue.heartbeat(task_id, claim.claim_token)
    assert not queue.complete(task_id, claim.claim_token)
    again = queue.claim("a", "h1", ["boot"])
    assert again is not None and (again.attempts, again.claim_token) == (2, 2)


def test_heartbeat_extends_the_lease(queue: TaskQueue, clock: DbClock) -> None:
    add(queue)
    task = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert task is not None and task.lease_expires_at is not None
    clock.advance(8)
    assert queue.heartbeat(task.id, task.claim_token, lease_seconds=10) is False
    clock.advance(8)  # 16 s after the claim, but only 8 s after the heartbeat
    assert queue.claim("b", "h1", ["boot"]) is None
    with pytest.raises(LeaseLost):
        queue.heartbeat(task.id, task.claim_token, owner="b")  # not b's lease
    with pytest.raises(LeaseLost):
        queue.heartbeat("no-such-task", 1)


def test_a_fenced_write_commits_with_the_lease(queue: TaskQueue, clock: DbClock) -> None:
    task_id = add(queue, payload={"n": 1})
    claim = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert claim is not None
    with queue.fenced(task_id, claim.claim_token) as session:
        session.execute(text("UPDATE task SET payload = :p WHERE id = :id"),
                        {"p": '{"n": 2}', "id": task_id})
    task = queue.get(task_id)
    assert task is not None and task.payload == {"n": 2}
    clock.advance(11)
    with pytest.raises(LeaseLost), queue.fenced(task_id, claim.claim_token) as session:
        session.execute(text("UPDATE task SET payload = '{}' WHERE id = :id"), {"id": task_id})
    task = queue.get(task_id)
    assert task is not None and task.payload == {"n": 2}


def test_a_claim_cannot_overtake_an_open_fenced_write(queue: TaskQueue, clock: DbClock) -> None:
    """While a holder's fenced transaction is open, nobody takes the task over
    (row lock / the writer lock); a claim after it commits may."""
    task_id = add(queue, max_attempts=5)
    claim = queue.claim("a", "h1", ["boot"], lease_seconds=10)
    assert claim is not None
    committed = threading.Event()
    outcome: dict[str, Any] = {}

    def thief() -> None:
        clock.advance(11)  # the lease has expired by now
        stolen = queue.claim("thief", "h1", ["boot"], lease_seconds=10)
        outcome["stolen"] = stolen is not None
        outcome["after_commit"] = committed.is_set()

    with queue.fenced(task_id, claim.claim_token) as session:
        session.execute(text("UPDATE task SET payload = '{\"by\": \"a\"}' WHERE id = :id"),
                        {"id": task_id})
        thread = threading.Thread(target=thief)
        thread.start()
        time.sleep(0.3)
        committed.set()
    thread.join()
    assert not outcome["stolen"] or outcome["after_commit"]
    task = queue.get(task_id)
    assert task is not None and task.payload == {"by": "a"}


# ------------------------------------------------------------------ database clock


def test_times_come_from_the_database_clock(
    queue: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host's clock is far off: nothing in the queue may use it.
    monkeypatch.setattr(ids, "utcnow", lambda: datetime(1990, 1, 1))
    task_id = add(queue)
    before = db_now(queue)
    claim = queue.claim("a", "h1", ["boot"], lease_seconds=120)
    after = db_now(queue)
    assert claim is not None and claim.lease_expires_at is not None
    assert before + timedelta(seconds=120) <= claim.lease_expires_at
    assert claim.lease_expires_at <= after + timedelta(seconds=120)
    task = queue.get(task_id)
    assert task is not None and task.created_at.year > 2000


def test_the_test_clock_moves_the_database_time(queue: TaskQueue, clock: DbClock) -> None:
    start = db_now(queue)
    clock.advance(3600)
    assert timedelta(seconds=3599) < db_now(queue) - start < timedelta(seconds=3700)


# ------------------------------------------------------------------ outcomes


def test_fail_with_retry_waits_an_exponential_capped_backoff(
    queue: TaskQueue, clock: DbClock, kinds: KindRegistry
) -> None:
    kinds.register("boot", KindRule(max_attempts=4, backoff_base=10, backoff_cap=25))
    task_id = add(queue)
    waits = []
    for attempt in (1, 2, 3):
        claim = queue.claim("a", "h1", ["boot"])
        assert claim is not None and claim.attempts == attempt
        assert queue.fail(task_id, claim.claim_token, f"disk full {attempt}", retry=True)
        task = queue.get(task_id)
        assert task is not None and (task.state, task.error) == (QUEUED, f"disk full {attempt}")
        waits.append(round((task.run_after - task.updated_at).total_seconds()))
        due = queue.seconds_until_due("h1", ["boot"])
        assert due is not None and waits[-1] - 1 < due <= waits[-1]
        assert queue.claim("a", "h1", ["boot"]) is None  # not before the backoff ends
        clock.advance(waits[-1] - 1)
        assert queue.claim("a", "h1", ["boot"]) is None
        clock.advance(1.5)
    assert waits == [10, 20, 25]
    last = queue.claim("a", "h1", ["boot"])
    assert last is not None and last.attempts == 4
    assert queue.fail(task_id, last.claim_token, "disk still full", retry=True)
    task = queue.get(task_id)
    assert task is not None and task.state == FAILED
    assert task.reason == "disk still full (gave up after 4 of 4 attempts)"
    assert queue.claim("a", "h1", ["boot"]) is None


def test_the_kind_rule_decides_on_unexpected_errors(
    queue: TaskQueue, kinds: KindRegistry
) -> None:
    kinds.register("careful", KindRule(retry_unexpected=False))
    retried, final = add(queue, "boot"), add(queue, "careful")
    for task_id in (retried, final):
        claim = queue.claim("a", "h1", None)
        assert claim is not None and claim.id == task_id
        assert queue.fail(task_id, claim.claim_token, "OSError: boom", retry=None)
    states = [(t.state, t.reason) for t in (queue.get(retried), queue.get(final)) if t]
    assert states == [(QUEUED, None), (FAILED, "OSError: boom")]


def test_giving_up_runs_the_hook_in_the_same_transaction(
    queue: TaskQueue, kinds: KindRegistry
) -> None:
    seen: list[tuple[str, str | None]] = []
    broken = {"on": True}

    def on_give_up(session: Any, task: Task) -> None:
        seen.append((task.state, task.reason))
        if broken["on"]:
            raise RuntimeError("the resource write failed")

    kinds.register("boot", KindRule(on_give_up=on_give_up))
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None
    with pytest.raises(RuntimeError):
        queue.fail(task_id, claim.claim_token, "no such image", retry=False)
    task = queue.get(task_id)
    assert task is not None and task.state == RUNNING  # rolled back with the hook
    broken["on"] = False
    assert queue.fail(task_id, claim.claim_token, "no such image", retry=False)
    assert seen == [(FAILED, "no such image")] * 2
    task = queue.get(task_id)
    assert task is not None and (task.state, task.reason) == (FAILED, "no such image")


def test_complete_and_progress_hooks(queue: TaskQueue, kinds: KindRegistry) -> None:
    calls: list[Any] = []
    kinds.register("boot", KindRule(
        on_complete=lambda s, t, r: calls.append(("complete", t.state, r)),
        on_progress=lambda s, t, p: calls.append(("progress", t.progress, p)),
    ))
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None
    assert queue.progress(task_id, claim.claim_token, {"step": "disk"}) is False
    assert queue.complete(task_id, claim.claim_token, {"ok": True})
    assert calls == [("progress", {"step": "disk"}, {"step": "disk"}),
                     ("complete", SUCCEEDED, {"ok": True})]
    task = queue.get(task_id)
    assert task is not None and task.progress == {"step": "disk"} and task.result == {"ok": True}


def test_used_up_attempts_after_expired_leases_fail_the_task(
    queue: TaskQueue, clock: DbClock, kinds: KindRegistry
) -> None:
    given_up: list[str | None] = []
    kinds.register("boot", KindRule(on_give_up=lambda s, t: given_up.append(t.reason)))
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
    assert task.reason is not None and given_up == [task.reason]
    assert "lease expired during attempt 2 of 2" in task.reason
    assert "no attempts are left" in task.reason and "owner b" in task.reason


def test_release_gives_the_task_back_uncounted(queue: TaskQueue) -> None:
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None
    assert queue.release(task_id, claim.claim_token)
    task = queue.get(task_id)
    assert task is not None and (task.state, task.attempts) == (QUEUED, 0)
    assert not queue.release(task_id, claim.claim_token)
    again = queue.claim("a", "h1", ["boot"])
    assert again is not None and (again.attempts, again.claim_token) == (1, 2)


def test_purge_finished(queue: TaskQueue, clock: DbClock) -> None:
    done = add(queue)
    add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None and queue.complete(done, claim.claim_token)
    assert queue.purge(3600) == 0
    clock.advance(7200)
    assert queue.purge(3600) == 1
    assert queue.get(done) is None
    assert len(queue.find()) == 1


# ------------------------------------------------------------------ cancel


def test_cancel_a_queued_task_at_once(queue: TaskQueue, kinds: KindRegistry) -> None:
    cancelled: list[Any] = []
    kinds.register("boot", KindRule(on_cancel=lambda s, t: cancelled.append((t.id, t.reason))))
    task_id = add(queue)
    assert queue.cancel(task_id, "Deleted by the user.") == CANCELLED
    task = queue.get(task_id)
    assert task is not None and (task.state, task.reason) == (CANCELLED, "Deleted by the user.")
    assert cancelled == [(task_id, "Deleted by the user.")]
    assert queue.claim("a", "h1", ["boot"]) is None
    assert queue.cancel(task_id) == CANCELLED  # already finished: unchanged
    assert queue.cancel("no-such-task") is None


def test_cancel_a_running_task_asks_its_holder_to_stop(queue: TaskQueue) -> None:
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None
    assert queue.heartbeat(task_id, claim.claim_token) is False
    assert queue.cancel(task_id, "Stop it.") == RUNNING
    assert queue.heartbeat(task_id, claim.claim_token) is True
    assert queue.fail(task_id, claim.claim_token, "stopped", retry=True)
    task = queue.get(task_id)
    assert task is not None and (task.state, task.reason, task.error) == (
        CANCELLED, "Stop it.", "stopped")


def test_a_cancelled_task_whose_holder_died_ends_cancelled(
    queue: TaskQueue, clock: DbClock
) -> None:
    task_id = add(queue)
    assert queue.claim("a", "h1", ["boot"], lease_seconds=5) is not None
    queue.cancel(task_id)
    clock.advance(6)
    assert queue.claim("b", "h1", ["boot"]) is None
    task = queue.get(task_id)
    assert task is not None and (task.state, task.reason) == (CANCELLED, "Cancelled on request.")


def test_a_task_completed_despite_a_late_cancel_succeeds(queue: TaskQueue) -> None:
    task_id = add(queue)
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None
    queue.cancel(task_id)
    assert queue.complete(task_id, claim.claim_token, {"ok": 1})
    task = queue.get(task_id)
    assert task is not None and (task.state, task.reason, task.cancel_requested) == (
        SUCCEEDED, None, False)
