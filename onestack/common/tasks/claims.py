"""How a task is claimed, correct under row locks and compare-and-set alone.

1. Read (no write, no lock): up to ``CANDIDATES`` runnable tasks for this
   worker, oldest first. Runnable: queued and due (``run_after`` passed), or
   running under an expired lease (its holder is presumed dead: the claim
   counts an attempt); and no other task of its resource key running, or
   older and unfinished. An idle poll ends here.
2. Write, per candidate: re-read it with its conditions (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL: a candidate another claimer holds is skipped);
   fail it if its attempts are used up, cancel it if its holder died after a
   stop was asked; re-check the resource key under a per-key transaction lock
   (``pg_try_advisory_xact_lock``, skipped when busy; SQLite's writer lock
   already serializes claims), then take it with a compare-and-set on its
   state and claim token, which increments the token.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, UNFINISHED, Task

if TYPE_CHECKING:
    from onestack.common.tasks.queue import TaskQueue

LOG = logging.getLogger(__name__)

CANDIDATES = 8  # tasks one claim round considers
MAX_OWNER = 255


def claim(
    queue: TaskQueue,
    owner: str,
    host: str | None,
    kinds: Iterable[str] | None,
    lease_seconds: float,
) -> Task | None:
    """Take the oldest runnable task of ``kinds`` (None: any) for ``host``
    (None: host-less tasks only; else that host's and host-less ones).
    Exactly one concurrent claimer wins a task; the returned detached row
    carries the new ``claim_token``."""
    if not owner or len(owner) > MAX_OWNER:
        raise ValueError(f"owner must be 1 to {MAX_OWNER} characters")
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    kind_list = sorted(set(kinds)) if kinds is not None else None
    if kind_list is not None and not kind_list:
        return None
    for _ in range(50):
        with queue.db.read() as session:
            found = list(session.execute(candidates(queue, host, kind_list)).scalars())
        if not found:
            return None
        with queue.db.write() as session:
            for task_id in found:
                task = take(queue, session, task_id, owner, host, kind_list, lease_seconds)
                if task is not None:
                    session.flush()
                    session.expunge(task)
                    return task
        # Every candidate went to someone else (or was given up): look again.
    return None


def runnable(queue: TaskQueue) -> ColumnElement[bool]:
    now = queue.now()
    return or_(
        and_(Task.state == QUEUED, Task.run_after <= now),
        and_(Task.state == RUNNING, Task.lease_expires_at < now),
    )


def for_worker(stmt: Any, host: str | None, kinds: list[str] | None) -> Any:
    if kinds is not None:
        stmt = stmt.where(Task.kind.in_(kinds))
    if host is None:
        return stmt.where(Task.target_host.is_(None))
    return stmt.where(or_(Task.target_host.is_(None), Task.target_host == host))


def blocker(task: Any) -> ColumnElement[bool]:
    """Another task of ``task``'s resource key runs, or is older and unfinished
    (``task``: the mapped class, correlated, or one row)."""
    other = aliased(Task)
    return exists().where(
        other.resource_key == task.resource_key,
        other.id != task.id,
        other.state.in_(UNFINISHED),
        or_(
            other.state == RUNNING,
            other.seq < task.seq,
            and_(other.seq == task.seq, other.id < task.id),
        ),
    )


def candidates(queue: TaskQueue, host: str | None, kinds: list[str] | None,
               limit: int = CANDIDATES) -> Any:
    stmt = for_worker(select(Task.id).where(runnable(queue)), host, kinds)
    stmt = stmt.where(or_(Task.resource_key.is_(None), ~blocker(Task)))
    return stmt.order_by(Task.seq, Task.id).limit(limit)


def key_lock_id(key: str) -> int:
    """A signed 64-bit number for a resource key's advisory lock."""
    digest = hashlib.blake2b(b"onestack-task-key\0" + key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def take(
    queue: TaskQueue,
    session: Session,
    task_id: str,
    owner: str,
    host: str | None,
    kinds: list[str] | None,
    lease_seconds: float,
) -> Task | None:
    """Step 2 for one candidate, in the caller's write transaction."""
    db = queue.db
    stmt = for_worker(select(Task).where(Task.id == task_id, runnable(queue)), host, kinds)
    stmt = stmt.execution_options(populate_existing=True)
    if not db.is_sqlite:
        stmt = stmt.with_for_update(skip_locked=True)
    task = session.execute(stmt).scalars().first()
    if task is None:
        return None  # taken, finished or locked by another claimer meanwhile
    if task.state == RUNNING:  # its holder's lease expired
        if task.cancel_requested:
            queue._finish(session, task, CANCELLED, reason=task.reason or "Cancelled on request.")
            return None
        if task.attempts >= task.max_attempts:
            _give_up_expired(queue, session, task)
            return None
    if task.resource_key is not None:
        if not db.is_sqlite:
            # Serialize claims of one resource key (released at commit); a
            # busy key is skipped, like a locked row.
            got = session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                                  {"id": key_lock_id(task.resource_key)}).scalar()
            if not got:
                return None
        if session.execute(select(blocker(task))).scalar():
            return None
    won = session.execute(
        update(Task)
        .where(Task.id == task.id, Task.state == task.state,
               Task.claim_token == task.claim_token)
        .values(
            state=RUNNING,
            attempts=Task.attempts + 1,
            claim_token=Task.claim_token + 1,
            lease_owner=owner,
            lease_expires_at=queue.now(lease_seconds),
            updated_at=queue.now(),
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(won, "rowcount", 0) != 1:
        return None
    session.refresh(task)
    if task.attempts > 1:
        LOG.info("task %s (%s): attempt %d by %s", task.id, task.kind, task.attempts, owner)
    return task


def _give_up_expired(queue: TaskQueue, session: Session, task: Task) -> None:
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
    kind_list = sorted(set(kinds)) if kinds is not None else None
    due = for_worker(
        select(func.min(Task.run_after)).where(Task.state == QUEUED), host, kind_list
    ).scalar_subquery()
    expiry = for_worker(
        select(func.min(Task.lease_expires_at)).where(Task.state == RUNNING), host, kind_list
    ).scalar_subquery()
    with queue.db.read() as session:
        row = session.execute(select(due, expiry, queue.now())).one()
    now = row[2]
    times = [t for t in row[:2] if t is not None]
    if not times:
        return None
    return max((min(times) - now).total_seconds(), 0.0)
