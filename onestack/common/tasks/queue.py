"""The durable task queue: long operations as rows with a fenced lease.

A service writes its resource and a task in one transaction
(``queue.enqueue(session, "boot", {...}, host=..., resource_key=...)`` inside
``db.write()``); an agent's worker claims it through a broker, runs the
handler for its kind, heartbeats while it runs and records the outcome.

* **Fencing.** A claim returns the task with a new ``claim_token`` (the lease
  generation). Heartbeat, complete, fail, release, progress and a handler's
  fenced write all name that token and succeed only while the task is
  running under it with an unexpired lease, so a holder whose lease expired
  (or was taken over, even by an owner of the same name) cannot write.
* **Database clock.** Leases, ``run_after``, heartbeats and every stored time
  are computed in SQL from the database's clock (:mod:`.dbclock`).
* **Retries.** A failed attempt is queued again after an exponential, capped
  backoff while the kind's rule allows it; the final failure records a
  ``reason`` and calls the kind's ``on_give_up`` hook in the same transaction,
  so the owning service can put it on its resource (a server's fault). A
  holder that dies leaves its lease to expire; the next claim counts an
  attempt, and a task whose attempts are used up is failed, never lost.
* **One task at a time per resource.** Tasks with the same ``resource_key``
  run in enqueue order, one at a time; ``enqueue(..., supersedes={"boot"})``
  cancels queued tasks of those kinds for the key.
* **Deduplication.** An ``idempotency_key`` is unique: enqueueing it again
  returns the task that has it.
* **Cancellation.** ``cancel`` cancels a queued task at once and asks a
  running one to stop (its holder learns it from its next heartbeat).

Concurrency needs nothing but row locks and compare-and-set (it does not rely
on the database layer serializing writers): claims are in :mod:`.claims`; the
holder's operations lock the task row (``FOR UPDATE`` on PostgreSQL) with the
token, state and lease in the ``WHERE`` clause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from onestack.common.db import Database
from onestack.common.ids import new_uuid
from onestack.common.models import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    UNFINISHED,
    Task,
)
from onestack.common.tasks import claims
from onestack.common.tasks.dbclock import DbClock, dialect_insert, seconds_modifier
from onestack.common.tasks.errors import LeaseLost
from onestack.common.tasks.kinds import KindRegistry
from onestack.common.tasks.wakeups import Hub, Listener, hub_for, notify_on_commit

LOG = logging.getLogger(__name__)

MAX_KEY = 255
_TABLE = cast(Table, Task.__table__)
MAX_ERROR = 16384  # characters of an error message kept


class EnqueueOptions(TypedDict, total=False):
    """``TaskQueue.enqueue``'s keywords: those of ``TaskQueue.add``."""

    host: str | None
    resource_key: str | None
    idempotency_key: str | None
    max_attempts: int | None
    delay: float
    supersedes: Iterable[str]
    interrupt: bool

class TaskQueue:
    """The task table's operations (thread-safe; methods block - call via a thread)."""

    def __init__(
        self, db: Database, *, clock: DbClock | None = None, kinds: KindRegistry | None = None
    ) -> None:
        self.db = db
        self.clock = clock or DbClock()
        self.kinds = kinds or KindRegistry()
        # Every queue on the same database shares one hub of listeners, so an
        # API's queue wakes the workers an agent built with its own queue.
        self.hub: Hub = hub_for(db)
        # Statements built once (claims.py and the holder's operations).
        self._claim_plans: dict[Any, Any] = {}

    def now(self, plus: float = 0.0) -> ColumnElement[datetime]:
        """SQL for the database's time now (+ seconds)."""
        return self.clock.now(self.db.is_sqlite, plus)

    # ------------------------------------------------------------------ enqueue

    def enqueue(self, session: Session, kind: str, payload: Mapping[str, Any] | None = None,
                **options: Unpack[EnqueueOptions]) -> Task:
        """Add a queued task in the caller's write transaction and return it.

        With an ``idempotency_key`` already used, nothing is added and the
        task that has it is returned. ``supersedes`` (kinds) cancels the
        queued tasks of those kinds for the same ``resource_key``; with
        ``interrupt`` their running ones are asked to stop too. Workers of
        ``kind`` are woken once the transaction commits.
        """
        task = session.get(Task, self.add(session, kind, payload, **options))
        assert task is not None
        return task

    def add(
        self,
        session: Session,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        host: str | None = None,
        resource_key: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        delay: float = 0.0,
        supersedes: Iterable[str] = (),
        interrupt: bool = False,
    ) -> str:
        """``enqueue`` returning only the task's id: no read of the row back (a
        quarter of an enqueue, for callers in a hot path that need no row)."""
        if not kind or len(kind) > 64:
            raise ValueError("a task kind is 1 to 64 characters")
        for name, value in (("host", host), ("resource_key", resource_key),
                            ("idempotency_key", idempotency_key)):
            if value is not None and not 0 < len(value) <= MAX_KEY:
                raise ValueError(f"{name} must be 1 to {MAX_KEY} characters")
        superseded = sorted(set(supersedes))
        if superseded and resource_key is None:
            raise ValueError("supersedes needs a resource_key")
        if delay < 0:
            raise ValueError("delay cannot be negative")
        attempts = max_attempts if max_attempts is not None else self.kinds.rule(kind).max_attempts
        if attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if idempotency_key is not None:
            existing = self._by_idempotency_key(session, idempotency_key)
            if existing is not None:
                return existing.id
        task_id = new_uuid()
        stmt = self._insert_statement(idempotency_key is not None)
        params = {"id": task_id, "kind": kind, "resource_key": resource_key,
                  "idempotency_key": idempotency_key, "target_host": host,
                  "payload": dict(payload or {}), "max_attempts": attempts,
                  "delay": seconds_modifier(self.db.is_sqlite, delay)}
        if idempotency_key is None:
            session.execute(stmt, params)
        else:
            inserted = session.execute(stmt, params).scalar()
            if inserted is None:
                # A concurrent transaction enqueued the same key and committed first.
                existing = self._by_idempotency_key(session, idempotency_key)
                assert existing is not None
                return existing.id
        if superseded and resource_key is not None:
            self._supersede(session, resource_key, superseded, interrupt, kind, task_id)
        notify_on_commit(session, self.db, [kind], delay)
        return task_id

    def queued_task(self, session: Session, kind: str, resource_key: str) -> str | None:
        """The id of a queued task of ``kind`` for ``resource_key``, if any (one
        indexed lookup, its statement built once). On PostgreSQL the row is locked
        until the caller's transaction ends, so no worker claims it meanwhile (claims
        skip locked rows): a caller that finds one may rely on it to run after its
        own changes are visible."""
        def build() -> Any:
            stmt = select(_TABLE.c.id).where(_TABLE.c.resource_key == bindparam("key"),
                                             _TABLE.c.kind == bindparam("kind"),
                                             _TABLE.c.state == QUEUED).limit(1)
            return stmt if self.db.is_sqlite else stmt.with_for_update()

        stmt = self._statement(("queued",), build)
        found = session.execute(stmt, {"key": resource_key, "kind": kind}).scalar()
        return None if found is None else str(found)

    def _insert_statement(self, idempotent: bool) -> Any:
        """The task's INSERT, built once (a quarter of its cost was building it
        again: the ORM's values, the clock's expressions, the cache key): every
        value a bind parameter, ``seq`` and the times computed by the database."""
        key = ("insert", idempotent)
        stmt = self._claim_plans.get(key)
        if stmt is None:
            now = self.now()
            stmt = dialect_insert(self.db.is_sqlite)(_TABLE).values(
                id=bindparam("id"),
                seq=select(func.coalesce(func.max(Task.seq), 0) + 1).scalar_subquery(),
                kind=bindparam("kind"),
                resource_key=bindparam("resource_key"),
                idempotency_key=bindparam("idempotency_key"),
                target_host=bindparam("target_host"),
                payload=bindparam("payload", type_=_TABLE.c.payload.type),
                state=QUEUED,
                attempts=0,
                max_attempts=bindparam("max_attempts"),
                claim_token=0,
                cancel_requested=False,
                run_after=self.clock.after(self.db.is_sqlite, "delay"),
                created_at=now,
                updated_at=now,
            )
            if idempotent:
                stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(_TABLE.c.id)
            self._claim_plans[key] = stmt
        return stmt

    def _by_idempotency_key(self, session: Session, key: str) -> Task | None:
        stmt = select(Task).where(Task.idempotency_key == key)
        return session.execute(stmt).scalars().first()

    def _supersede(
        self, session: Session, key: str, kinds: list[str], interrupt: bool, by: str, by_id: str
    ) -> None:
        reason = f"Superseded by a later {by} task ({by_id})."
        stmt = select(Task).where(
            Task.resource_key == key, Task.kind.in_(kinds), Task.state == QUEUED, Task.id != by_id
        )
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        for task in session.execute(stmt).scalars().all():
            self._finish(session, task, CANCELLED, reason=reason)
        if interrupt:
            session.execute(
                update(Task)
                .where(Task.resource_key == key, Task.kind.in_(kinds), Task.state == RUNNING)
                .values(cancel_requested=True, reason=reason, updated_at=self.now())
                .execution_options(synchronize_session=False)
            )

    # ------------------------------------------------------------------ claim

    def claim(
        self,
        owner: str,
        host: str | None,
        kinds: Iterable[str] | None,
        lease_seconds: float = 60.0,
    ) -> Task | None:
        """Take the oldest runnable task of these kinds for this host, or None
        (see :func:`.claims.claim`: the returned detached row carries the new
        ``claim_token``)."""
        return claims.claim(self, owner, host, kinds, lease_seconds)

    def claim_many(self, owner: str, host: str | None, kinds: Iterable[str] | None,
                   lease_seconds: float, limit: int, batched: Iterable[str]) -> list[Task]:
        """:meth:`claim`, with up to ``limit`` tasks of the first one's kind if
        it is one of ``batched`` (see :func:`.claims.claim_many`)."""
        return claims.claim_many(self, owner, host, kinds, lease_seconds, limit, batched)

    # ------------------------------------------------------------------ holding

    def _statement(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """A statement built once per queue (hot paths; values are bind parameters)."""
        stmt = self._claim_plans.get(key)
        if stmt is None:
            stmt = self._claim_plans[key] = build()
        return stmt

    def _held(self, with_owner: bool) -> ColumnElement[bool]:
        """SQL: the task (``:tid``) runs under ``:token`` (and ``:owner``) with
        an unexpired lease, by the database's clock."""
        t = _TABLE
        clause = and_(
            t.c.id == bindparam("tid"),
            t.c.claim_token == bindparam("token"),
            t.c.state == RUNNING,
            t.c.lease_expires_at > self.now(),
        )
        if with_owner:
            clause = and_(clause, t.c.lease_owner == bindparam("owner"))
        return clause

    @staticmethod
    def _held_params(task_id: str, claim_token: int, owner: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"tid": task_id, "token": claim_token}
        if owner is not None:
            params["owner"] = owner
        return params

    def _locked_held(
        self, session: Session, task_id: str, claim_token: int, owner: str | None
    ) -> Task | None:
        def build() -> Any:
            stmt = select(Task).where(self._held(owner is not None))
            stmt = stmt.execution_options(populate_existing=True)
            return stmt if self.db.is_sqlite else stmt.with_for_update()

        stmt = self._statement(("held", owner is not None), build)
        params = self._held_params(task_id, claim_token, owner)
        return session.execute(stmt, params).scalars().first()

    def heartbeat(
        self, task_id: str, claim_token: int, lease_seconds: float = 60.0, owner: str | None = None
    ) -> bool:
        """Extend the lease; returns whether a stop was requested (cancel).

        Raises :class:`LeaseLost` if the lease is no longer held with this token.
        """
        stmt = self._statement(("heartbeat", float(lease_seconds), owner is not None), lambda: (
            update(_TABLE)
            .where(self._held(owner is not None))
            .values(lease_expires_at=self.now(lease_seconds), updated_at=self.now())
            .returning(_TABLE.c.cancel_requested)
        ))
        with self.db.write(auto_lock=False) as session:  # one compare-and-set UPDATE
            row = session.connection().execute(
                stmt, self._held_params(task_id, claim_token, owner)).first()
        if row is None:
            raise LeaseLost(f"task {task_id}: lease {claim_token} is not held")
        return bool(row[0])

    @contextmanager
    def fenced(
        self, task_id: str, claim_token: int, owner: str | None = None
    ) -> Iterator[Session]:
        """A write transaction that starts by checking (and on PostgreSQL
        locking) the task row still held under ``claim_token``: the changes a
        handler makes in it commit only if its lease held. Raises
        :class:`LeaseLost` otherwise, before anything is written.

        Lock order: the task row, then the resource rows the handler writes.
        A transaction that locks a resource row and then asks its running task
        to stop (``cancel``, ``enqueue(..., interrupt=True)``) takes them the
        other way round; on PostgreSQL one of the two may then be chosen as a
        deadlock victim and must be retried - so cancel first where you can.
        """
        with self.db.write() as session:
            if self._locked_held(session, task_id, claim_token, owner) is None:
                raise LeaseLost(f"task {task_id}: lease {claim_token} is not held")
            yield session

    def progress(
        self,
        task_id: str,
        claim_token: int,
        progress: Mapping[str, Any],
        owner: str | None = None,
    ) -> bool:
        """Record a handler's progress (and run the kind's ``on_progress`` hook
        in the same fenced transaction); returns whether a stop was requested.
        Raises :class:`LeaseLost` if the lease is not held."""
        with self.db.write() as session:
            task = self._locked_held(session, task_id, claim_token, owner)
            if task is None:
                raise LeaseLost(f"task {task_id}: lease {claim_token} is not held")
            task.progress = dict(progress)
            task.updated_at = self.now()  # type: ignore[assignment]
            hook = self.kinds.rule(task.kind).on_progress
            if hook is not None:
                hook(session, task, progress)
            return bool(task.cancel_requested)

    # ------------------------------------------------------------------ outcomes

    def complete(
        self,
        task_id: str,
        claim_token: int,
        result: Mapping[str, Any] | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record success (and run the kind's ``on_complete`` hook in the same
        transaction). False, and nothing changed, if the lease is not held."""
        return self.complete_many([(task_id, claim_token, result)], owner)[0]

    def complete_many(
        self, done: list[tuple[str, int, Mapping[str, Any] | None]], owner: str | None = None
    ) -> list[bool]:
        """:meth:`complete` of several (task id, claim token, result) in one
        write unit, each fenced by its own lease: a task whose lease is not
        held is left as it is (False in its place) and the others recorded."""
        t = _TABLE
        stmt = self._statement(("complete", owner is not None), lambda: (
            update(t)
            .where(self._held(owner is not None))
            .values(state=SUCCEEDED, result=bindparam("result"), cancel_requested=False,
                    reason=None, lease_owner=None, lease_expires_at=None,
                    updated_at=self.now())
            .returning(t.c.kind, t.c.resource_key)
        ))
        recorded: list[bool] = []
        keys: list[str] = []
        with self.db.write() as session:
            for task_id, claim_token, result in done:
                params = self._held_params(task_id, claim_token, owner)
                params["result"] = dict(result) if result is not None else None
                # On the connection: the UPDATE's own row lock and WHERE are the
                # check (db.py's lock probe cannot take this statement's parameters).
                row = session.connection().execute(stmt, params).first()
                recorded.append(row is not None)
                if row is None:
                    LOG.warning("task %s: completed under lease %s, which is not held",
                                task_id, claim_token)
                    continue
                hook = self.kinds.rule(row.kind).on_complete
                if hook is not None:
                    task = session.get(Task, task_id, populate_existing=True)
                    assert task is not None
                    hook(session, task, result)
                if row.resource_key is not None:
                    keys.append(row.resource_key)
            self._wake_next(session, *keys)
        return recorded

    def fail(
        self,
        task_id: str,
        claim_token: int,
        error: str,
        retry: bool | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record a failed attempt. With ``retry`` (None: the kind's
        ``retry_unexpected``) and attempts left, the task is queued again after
        the kind's backoff; else it is failed with a reason and the kind's
        ``on_give_up`` hook runs. A task whose cancel was requested is
        cancelled instead. False, and nothing changed, if the lease is not held."""
        with self.db.write() as session:
            task = self._locked_held(session, task_id, claim_token, owner)
            if task is None:
                LOG.warning("task %s: failed under lease %s, which is not held",
                            task_id, claim_token)
                return False
            rule = self.kinds.rule(task.kind)
            error = error[:MAX_ERROR]
            task.error = error
            if retry is None:
                retry = rule.retry_unexpected
            if task.cancel_requested:
                self._finish(session, task, CANCELLED,
                             reason=task.reason or "Cancelled on request.")
            elif retry and task.attempts < task.max_attempts:
                task.state = QUEUED
                task.lease_owner = None
                task.lease_expires_at = None
                task.run_after = self.now(rule.backoff(task.attempts))  # type: ignore[assignment]
                task.updated_at = self.now()  # type: ignore[assignment]
                notify_on_commit(session, self.db, [task.kind])
            else:
                reason = error
                if retry:
                    reason = f"{error} (gave up after {task.attempts} of {task.max_attempts} attempts)"
                self._finish(session, task, FAILED, reason=reason)
            return True

    def release(self, task_id: str, claim_token: int, owner: str | None = None) -> bool:
        """Give a claimed task back unrun (e.g. on shutdown); the attempt is not counted."""
        with self.db.write() as session:
            task = self._locked_held(session, task_id, claim_token, owner)
            if task is None:
                return False
            task.state = QUEUED
            task.attempts = max(task.attempts - 1, 0)
            task.lease_owner = None
            task.lease_expires_at = None
            task.updated_at = self.now()  # type: ignore[assignment]
            notify_on_commit(session, self.db, [task.kind])
            return True

    def cancel(
        self,
        task_id: str,
        reason: str = "Cancelled on request.",
        session: Session | None = None,
    ) -> str | None:
        """Cancel a queued task at once, or ask a running one to stop (its
        holder learns it from its next heartbeat). Returns the task's state
        after the call (``running`` while a stop is pending), None if unknown.
        Runs in ``session`` if given (the caller's transaction)."""
        if session is None:
            with self.db.write() as own:
                return self.cancel(task_id, reason, own)
        stmt = select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        task = session.execute(stmt).scalars().first()
        if task is None:
            return None
        if task.state == QUEUED:
            self._finish(session, task, CANCELLED, reason=reason)
        elif task.state == RUNNING and not task.cancel_requested:
            task.cancel_requested = True
            task.reason = reason
            task.updated_at = self.now()  # type: ignore[assignment]
            session.flush()
        return task.state

    def _finish(
        self,
        session: Session,
        task: Task,
        state: str,
        *,
        reason: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Move a locked task to a final state and run its kind's hook, in
        ``session``'s transaction; wake the next task of its resource key."""
        task.state = state
        task.lease_owner = None
        task.lease_expires_at = None
        task.updated_at = self.now()  # type: ignore[assignment]
        if state == SUCCEEDED:  # done, even if a stop was asked for too late
            task.result = dict(result) if result is not None else None
            task.cancel_requested = False
            task.reason = None
        else:
            task.reason = reason
        session.flush()
        rule = self.kinds.rule(task.kind)
        if state == SUCCEEDED and rule.on_complete is not None:
            rule.on_complete(session, task, result)
        elif state == FAILED and rule.on_give_up is not None:
            rule.on_give_up(session, task)
        elif state == CANCELLED and rule.on_cancel is not None:
            rule.on_cancel(session, task)
        self._wake_next(session, task.resource_key)

    def _wake_next(self, session: Session, *resource_keys: str | None) -> None:
        """The next task of these resources may run once this transaction
        commits: wake its kind (one look for all of them)."""
        keys = sorted({key for key in resource_keys if key is not None})
        if not keys:
            return
        t = _TABLE
        stmt = self._statement(("next",), lambda: (
            select(t.c.kind).distinct()
            .where(t.c.resource_key.in_(bindparam("keys", expanding=True)),
                   t.c.state.in_(UNFINISHED))
        ))
        # on the connection: a look, not a read to lock (db.py's write units
        # would lock the next task's row)
        following = list(session.connection().execute(stmt, {"keys": keys}).scalars())
        if following:
            notify_on_commit(session, self.db, following)

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
        resource_key: str | None = None,
        states: Sequence[str] | None = None,
        host: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[Task]:
        """Tasks matching all the given criteria, in enqueue order."""
        stmt = select(Task)
        if kind is not None:
            stmt = stmt.where(Task.kind == kind)
        if resource_key is not None:
            stmt = stmt.where(Task.resource_key == resource_key)
        if states is not None:
            stmt = stmt.where(Task.state.in_(list(states)))
        if host is not None:
            stmt = stmt.where(Task.target_host == host)
        if idempotency_key is not None:
            stmt = stmt.where(Task.idempotency_key == idempotency_key)
        with self.db.read() as session:
            tasks = list(session.execute(stmt.order_by(Task.seq, Task.id)).scalars())
            session.expunge_all()
            return tasks

    def seconds_until_due(self, host: str | None, kinds: Iterable[str] | None) -> float | None:
        """Seconds until a task of these kinds for this host becomes runnable
        by time alone (a backoff ends, a lease expires); None if none will."""
        return claims.seconds_until_due(self, host, kinds)

    def purge(self, older_than: float) -> int:
        """Delete finished tasks last updated more than ``older_than`` seconds ago."""
        with self.db.write() as session:
            outcome = session.execute(
                delete(Task)
                .where(Task.state.in_(FINISHED), Task.updated_at < self.now(-older_than))
                .execution_options(synchronize_session=False)
            )
            return int(getattr(outcome, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ wake-ups

    def listen(self, kinds: Iterable[str] | None = None) -> Listener:
        """Register for wake-ups (call from the event loop that will wait)."""
        return self.hub.listen(kinds)

    def notify(self, kind: str | None = None) -> None:
        """Wake this process's waiters for ``kind`` (all if None); any thread."""
        self.hub.notify(kind)

    async def wait(self, kinds: Iterable[str] | None = None, timeout: float | None = None) -> bool:
        """Wait for a notification of one of ``kinds``; False on timeout."""
        with self.listen(kinds) as listener:
            return await listener.wait(timeout)
