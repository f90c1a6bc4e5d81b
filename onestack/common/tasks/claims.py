"""How a task is claimed, correct under row locks and compare-and-set alone.

1. Read (no write, no lock): up to ``CANDIDATES`` runnable tasks for this
   worker, oldest first. Runnable: queued and due (``run_after`` passed), or
   running under an expired lease (its holder is presumed dead: the claim
   counts an attempt); and no other task of its resource key running, or
   older and unfinished. An idle poll ends here.
2. Write, per candidate, one ``UPDATE ... RETURNING`` that takes it only if
   all of that still holds: a compare-and-set that increments the claim
   token. On PostgreSQL the row is first locked ``FOR UPDATE SKIP LOCKED`` in
   the same statement (a candidate another claimer holds is skipped), and a
   candidate with a resource key is taken only under that key's transaction
   lock (``pg_try_advisory_xact_lock``, skipped when busy) so that the
   one-per-key check sees every committed claim; SQLite's single writer
   already serializes claims.
3. An expired task whose attempts are used up is failed instead, and one
   whose holder died after a stop was asked is cancelled (both through the
   queue, with the kind's hooks).

The statements are built once per worker signature (host, kinds, lease) and
reused: the clock's offset and the ids are bind parameters.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    exists,
    func,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from onestack.common.db import Database
from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, UNFINISHED, Task


class TaskQueue(Protocol):
    """What a claim needs of the queue (``queue.TaskQueue`` is one)."""

    db: Database
    _claim_plans: dict[Any, Any]

    def now(self, plus: float = 0.0) -> ColumnElement[datetime]: ...

    def _finish(self, session: Session, task: Task, state: str, *,
                reason: str | None = None, result: Any = None) -> None: ...

LOG = logging.getLogger(__name__)

CANDIDATES = 8  # tasks one claim round considers
MAX_OWNER = 255
_TABLE = cast(Table, Task.__table__)
_PLANS_MAX = 256


def claim(
    queue: TaskQueue,
    owner: str,
    host: str | None,
    kinds: Iterable[str] | None,
    lease_seconds: float,
) -> Task | None:
    """Take the oldest runnable task of ``kinds`` (None: any) for ``host``
    (None: host-less tasks only; else that host's and host-less ones).
    Exactly one concurrent claimer wins a task; the returned row (detached)
    carries the new ``claim_token``."""
    taken = claim_many(queue, owner, host, kinds, lease_seconds, 1, ())
    return taken[0] if taken else None


def claim_many(
    queue: TaskQueue,
    owner: str,
    host: str | None,
    kinds: Iterable[str] | None,
    lease_seconds: float,
    limit: int,
    batched: Iterable[str],
) -> list[Task]:
    """:func:`claim`, and when the task taken is of a kind of ``batched``, up
    to ``limit - 1`` more queued runnable tasks of that kind, oldest first, in
    the same write unit: each taken by the same compare-and-set as alone (its
    own claim token, lease and attempt; one task per resource key at a time).
    Returns what was taken (empty: nothing runnable)."""
    if not owner or len(owner) > MAX_OWNER:
        raise ValueError(f"owner must be 1 to {MAX_OWNER} characters")
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    kind_list = tuple(sorted(set(kinds))) if kinds is not None else None
    if kind_list is not None and not kind_list:
        return []
    limit = max(int(limit), 1)
    together = frozenset(batched) if limit > 1 else frozenset()
    plan = _plan(queue, host, kind_list, float(lease_seconds), max(CANDIDATES, limit))
    for round_ in range(50):
        with queue.db.read() as session:
            found = list(session.execute(plan.candidates).all())
        if not found:
            return []
        # Oldest first; but a claimer that lost every candidate to others
        # (they read the same ones) starts at a place of its own among them
        # next time, so that they do not all race for the first again (a
        # resource's tasks keep their order: one of them at most is a
        # candidate at a time).
        start = zlib.crc32(owner.encode()) % len(found) if round_ else 0
        # The claim locks what it takes itself (SKIP LOCKED, compare-and-set).
        taken: list[Task] = []
        with queue.db.write(auto_lock=False) as session:
            order = found[start:] + found[:start]
            for i, row in enumerate(order):
                if taken:  # more of the first one's kind, if it is batched
                    if (len(taken) >= limit or row.kind != taken[0].kind
                            or row.state != QUEUED):
                        continue
                elif row.state == RUNNING and (row.attempts >= row.max_attempts
                                               or row.cancel_requested):
                    _end_expired(queue, session, row.id)
                    continue
                task = _take(queue, session, plan, row.id, row.resource_key, owner)
                if task is not None:
                    taken.append(task)
                    if task.kind not in together:
                        break
                    if plan.take_many is not None:
                        taken += _take_many(session, plan, order[i + 1:], task.kind, owner,
                                            limit - 1)
                        break
        if taken:
            return taken
        # Every candidate went to someone else (or was ended): look again.
    return []


@dataclass(frozen=True)
class _Plan:
    candidates: Any
    take: Any
    take_many: Any = None


_PLANS_LOCK = threading.Lock()


def _plan(queue: TaskQueue, host: str | None, kinds: tuple[str, ...] | None,
          lease: float, size: int = CANDIDATES) -> _Plan:
    key = (host, kinds, lease, size)
    plans: dict[Any, _Plan] = queue._claim_plans
    plan = plans.get(key)
    if plan is not None:
        return plan
    t = _TABLE
    ready = and_(runnable(queue, t), for_worker(t, host, kinds))
    free = or_(t.c.resource_key.is_(None), ~blocker(t))
    candidates = (
        select(t.c.id, t.c.state, t.c.attempts, t.c.max_attempts, t.c.cancel_requested,
               t.c.resource_key, t.c.kind)
        .where(ready, free)
        .order_by(t.c.seq, t.c.id)
        .limit(size)
    )
    conditions = [
        t.c.id == bindparam("tid"),
        ready,
        free,
        # used-up or stop-requested expired tasks are ended, not claimed
        not_(and_(t.c.state == RUNNING,
                  or_(t.c.attempts >= t.c.max_attempts, t.c.cancel_requested))),
    ]
    if not queue.db.is_sqlite:
        locked = t.alias("locked")
        conditions.append(t.c.id == (
            select(locked.c.id).where(locked.c.id == bindparam("tid"))
            .with_for_update(skip_locked=True).scalar_subquery()))
    taken = {
        "state": RUNNING,
        "attempts": t.c.attempts + 1,
        "claim_token": t.c.claim_token + 1,
        "lease_owner": bindparam("owner"),
        "lease_expires_at": queue.now(lease),
        "updated_at": queue.now(),
    }
    take = update(t).where(*conditions).values(taken).returning(*t.c)
    take_many = None
    if queue.db.is_sqlite:
        # A batch's further tasks in one statement: SQLite's single writer
        # serializes claims, and a batch's tasks are of different keys (taking
        # one changes nothing of another's check).
        take_many = (
            update(t)
            .where(t.c.id.in_(bindparam("tids", expanding=True)), t.c.state == QUEUED,
                   t.c.kind == bindparam("of_kind"), ready, free)
            .values(taken)
            .returning(*t.c)
        )
    plan = _Plan(candidates=candidates, take=take, take_many=take_many)
    with _PLANS_LOCK:
        if len(plans) >= _PLANS_MAX:
            plans.clear()
        plans[key] = plan
    return plan


def runnable(queue: TaskQueue, t: Any = _TABLE) -> ColumnElement[bool]:
    now = queue.now()
    return or_(
        and_(t.c.state == QUEUED, t.c.run_after <= now),
        and_(t.c.state == RUNNING, t.c.lease_expires_at < now),
    )


def for_worker(t: Any, host: str | None, kinds: Iterable[str] | None) -> ColumnElement[bool]:
    clauses = []
    if kinds is not None:
        clauses.append(t.c.kind.in_(list(kinds)))
    if host is None:
        clauses.append(t.c.target_host.is_(None))
    else:
        clauses.append(or_(t.c.target_host.is_(None), t.c.target_host == host))
    return and_(*clauses)


def blocker(t: Any) -> ColumnElement[bool]:
    """Another task of the row's resource key runs, or is older and
    unfinished (correlated to the table ``t`` of the enclosing statement)."""
    other = _TABLE.alias("other")
    return exists().where(
        other.c.resource_key == t.c.resource_key,
        other.c.id != t.c.id,
        other.c.state.in_(UNFINISHED),
        or_(
            other.c.state == RUNNING,
            other.c.seq < t.c.seq,
            and_(other.c.seq == t.c.seq, other.c.id < t.c.id),
        ),
    )


def candidates(queue: TaskQueue, host: str | None, kinds: list[str] | None) -> Any:
    """The statement of step 1 (ids only), for tests and tools."""
    plan = _plan(queue, host, tuple(kinds) if kinds is not None else None, 60.0)
    return select(plan.candidates.subquery().c.id)


def key_lock_id(key: str) -> int:
    """A signed 64-bit number for a resource key's advisory lock."""
    digest = hashlib.blake2b(b"onestack-task-key\0" + key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def take(queue: TaskQueue, session: Session, task_id: str, owner: str, host: str | None,
         kinds: list[str] | None, lease_seconds: float) -> Task | None:
    """Step 2 for one task (its key looked up), in the caller's transaction."""
    key = session.execute(select(Task.resource_key).where(Task.id == task_id)).scalar()
    plan = _plan(queue, host, tuple(kinds) if kinds is not None else None, lease_seconds)
    return _take(queue, session, plan, task_id, key, owner)


def _take(queue: TaskQueue, session: Session, plan: _Plan, task_id: str,
          resource_key: str | None, owner: str) -> Task | None:
    if resource_key is not None and not queue.db.is_sqlite:
        got = session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                              {"id": key_lock_id(resource_key)}).scalar()
        if not got:
            return None  # another claimer is deciding about this key now
    row = session.connection().execute(plan.take, {"tid": task_id, "owner": owner}).first()
    if row is None:
        return None  # taken, finished, blocked or locked meanwhile
    task = Task(**row._mapping)
    if task.attempts > 1:
        LOG.info("task %s (%s): attempt %d by %s", task.id, task.kind, task.attempts, owner)
    return task


def _take_many(session: Session, plan: _Plan, rows: list[Any], kind: str, owner: str,
               limit: int) -> list[Task]:
    """Step 2 for a batch's further queued tasks of ``kind`` (SQLite), in one
    statement; in the candidates' order."""
    ids = [row.id for row in rows if row.kind == kind and row.state == QUEUED][:limit]
    if not ids:
        return []
    got = {row.id: row for row in session.connection().execute(
        plan.take_many, {"tids": ids, "of_kind": kind, "owner": owner})}
    return [Task(**got[i]._mapping) for i in ids if i in got]


def _end_expired(queue: TaskQueue, session: Session, task_id: str) -> None:
    """An expired task that must not run again: cancelled if a stop was
    asked, else failed (its attempts are used up)."""
    stmt = (select(Task)
            .where(Task.id == task_id, Task.state == RUNNING,
                   Task.lease_expires_at < queue.now())
            .execution_options(populate_existing=True))
    if not queue.db.is_sqlite:
        stmt = stmt.with_for_update(skip_locked=True)
    task = session.execute(stmt).scalars().first()
    if task is None:
        return
    if task.cancel_requested:
        queue._finish(session, task, CANCELLED, reason=task.reason or "Cancelled on request.")
        return
    if task.attempts < task.max_attempts:
        return
    reason = (
        f"Task {task.kind} {task.id} failed: its lease expired during attempt "
        f"{task.attempts} of {task.max_attempts} (owner {task.lease_owner or 'unknown'}) "
        "and no attempts are left."
    )
    if task.error:
        reason += f" Last error: {task.error}"
    queue._finish(session, task, FAILED, reason=reason)
    LOG.error("%s", reason)


def seconds_until_due(queue: TaskQueue, host: str | None,
                      kinds: Iterable[str] | None) -> float | None:
    """Seconds until a task of these kinds for this host becomes runnable by
    time alone (a backoff ends, a lease expires); None if none will."""
    t = _TABLE
    kind_list = tuple(sorted(set(kinds))) if kinds is not None else None
    key = ("due", host, kind_list)
    stmt = queue._claim_plans.get(key)
    if stmt is None:
        mine = for_worker(t, host, kind_list)
        due = select(func.min(t.c.run_after)).where(t.c.state == QUEUED, mine).scalar_subquery()
        expiry = select(func.min(t.c.lease_expires_at)).where(
            t.c.state == RUNNING, mine).scalar_subquery()
        stmt = select(due, expiry, queue.now())
        with _PLANS_LOCK:
            queue._claim_plans[key] = stmt
    with queue.db.read() as session:
        row = session.execute(stmt).one()
    now = row[2]
    times = [value for value in row[:2] if value is not None]
    if not times:
        return None
    return max((min(times) - now).total_seconds(), 0.0)
