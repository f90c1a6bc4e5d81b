"""Row locking for PostgreSQL write units (the model is described in ``db.py``).

What is here:

* ``RetryUnit`` - a write unit must be run again (it lost a race); and
  ``retrying(fn)``, the scope that runs ``fn`` again when a unit inside it
  failed that way and nothing inside it has committed yet.
* ``Unit`` - one PostgreSQL write transaction's locking state, and ``install``,
  which hooks it into a session factory and an engine:

  - ``do_orm_execute``: every ORM ``SELECT`` that PostgreSQL can lock takes
    ``FOR SHARE`` on the rows it returns (``FOR NO KEY UPDATE`` on a table
    found contended, or in a unit nothing can re-run); an ``UPDATE`` or
    ``DELETE`` statement first locks its rows ``NOWAIT``;
  - ``before_flush``: the rows a flush will change or delete are locked
    ``FOR NO KEY UPDATE NOWAIT`` (``FOR UPDATE NOWAIT`` for deletes) first;
  - ``handle_error``: a retryable error (deadlock, serialization failure,
    lock not available, a unique or foreign key violation) marks the unit.

Nothing here runs on SQLite.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, event, inspect, literal_column, select, text, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql import Delete, Select, Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.schema import Column, Table
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.visitors import iterate

T = TypeVar("T")

log = logging.getLogger("onestack.db")

UNIT = "onestack.unit"  # Session.info key of a PostgreSQL write unit

# SQLSTATEs after which running the unit again can succeed.
SERIALIZATION_FAILURE = "40001"
DEADLOCK = "40P01"
LOCK_NOT_AVAILABLE = "55P03"
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
RETRYABLE = {SERIALIZATION_FAILURE, DEADLOCK, LOCK_NOT_AVAILABLE, UNIQUE_VIOLATION, FOREIGN_KEY_VIOLATION}
# A unique or foreign key violation is retried this often: the run after the
# race sees the row that won, and the service answers as it always does (409,
# 404). One that keeps happening is the service's own answer.
CONSTRAINT_RETRIES = 2
MAX_ATTEMPTS = 12


class RetryUnit(Exception):
    """A write unit lost a race and was rolled back; running it again can succeed.

    ``cause`` is what the unit's body raised (when it raised something else,
    e.g. a service error made from a unique violation). ``final`` is set when
    no enclosing scope may run it again.
    """

    def __init__(self, reason: str, cause: BaseException | None = None, *, sqlstate: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.sqlstate = sqlstate
        self.final = False


class Mode(enum.Enum):
    SHARED = "shared"  # read FOR SHARE, lock what changes NOWAIT; conflicts re-run the unit
    EXCLUSIVE = "exclusive"  # read FOR NO KEY UPDATE and wait: nothing can re-run this unit
    EXPLICIT = "explicit"  # the unit locks what it needs itself


class Scope:
    """One ``retrying`` call: what its attempts learned."""

    def __init__(self) -> None:
        self.committed = 0
        self.contended: set[str] = set()  # tables and lock names to take exclusively
        self.constraint_failures = 0


_local = threading.local()
_stats_lock = threading.Lock()
# Calls run again, by cause (SQLSTATE), since the process started.
reruns: Counter[str] = Counter()


def _scopes() -> list[Scope]:
    stack: list[Scope] | None = getattr(_local, "scopes", None)
    if stack is None:
        stack = _local.scopes = []
    return stack


def current_scope() -> Scope | None:
    stack = _scopes()
    return stack[-1] if stack else None


def note_commit() -> None:
    """A write unit committed: no enclosing scope may run its function again."""
    for scope in _scopes():
        scope.committed += 1


def unit_open(delta: int) -> None:
    """A write unit opened (+1) or closed (-1) on this thread."""
    _local.open_units = getattr(_local, "open_units", 0) + delta


def retrying(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, run again while a write unit in it raises
    ``RetryUnit`` and no unit in it has committed yet.

    Rows and locks found contended are taken exclusively (waiting) by the
    later attempts, so an attempt cannot lose the same race twice. Called
    inside an open write unit (whose transaction a loss aborts), it only calls
    ``fn``: the enclosing scope runs the whole unit again.
    """
    if getattr(_local, "open_units", 0):
        return fn(*args, **kwargs)
    scope = Scope()
    stack = _scopes()
    stack.append(scope)
    try:
        attempt = 0
        while True:
            scope.committed = 0
            try:
                return fn(*args, **kwargs)
            except RetryUnit as exc:
                attempt += 1
                if exc.sqlstate in (UNIQUE_VIOLATION, FOREIGN_KEY_VIOLATION):
                    scope.constraint_failures += 1
                if (exc.final or scope.committed or attempt >= MAX_ATTEMPTS
                        or scope.constraint_failures > CONSTRAINT_RETRIES):
                    exc.final = True
                    raise
                with _stats_lock:
                    reruns[exc.sqlstate or "other"] += 1
                log.debug("running %s again (attempt %d): %s", getattr(fn, "__name__", fn), attempt + 1,
                          exc.reason)
                if attempt > 1 or exc.sqlstate == DEADLOCK:
                    time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
    finally:
        stack.pop()


class Unit:
    """The locking state of one PostgreSQL write transaction."""

    def __init__(self, mode: Mode, scope: Scope | None) -> None:
        self.mode = mode
        self.scope = scope
        self.contended: set[str] = set(scope.contended) if scope is not None else set()
        self.upgraded: set[tuple[str, Any]] = set()  # (table, identity) locked for change
        self.failed: str | None = None  # SQLSTATE of a retryable error seen in this unit

    def exclusive(self, name: str) -> bool:
        return self.mode is Mode.EXCLUSIVE or name in self.contended

    def contend(self, name: str, why: str) -> RetryUnit:
        """``name`` is held by another unit: take it exclusively next time."""
        self.contended.add(name)
        if self.scope is not None:
            self.scope.contended.add(name)
        return RetryUnit(why, sqlstate=LOCK_NOT_AVAILABLE)


def _sqlstate(exc: BaseException | None) -> str | None:
    state = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return state if isinstance(state, str) else None


def _table_name(obj: Any) -> str | None:
    """The table a FROM element reads, if it is a plain table (or its alias)."""
    if isinstance(obj, Table):
        return str(obj.name)
    if isinstance(obj, Alias) and isinstance(obj.element, Table):
        return str(obj.element.name)
    return None


def lockable_tables(stmt: Select[Any]) -> list[str] | None:
    """The tables whose rows ``SELECT ... FOR SHARE`` would lock, or None when
    PostgreSQL refuses a locking clause there (aggregates, DISTINCT, GROUP BY,
    outer joins, sub-selects in FROM) or there is nothing to lock."""
    if stmt._distinct or stmt._group_by_clauses or stmt._having_criteria:
        return None
    names: list[str] = []
    for col in stmt._raw_columns:
        name = _table_name(col)
        if name is not None:
            names.append(name)
        elif isinstance(col, ColumnElement):
            for node in iterate(col):
                if isinstance(node, FunctionElement):
                    return None
                if isinstance(node, Column) and isinstance(node.table, Table):
                    names.append(str(node.table.name))
        else:
            return None
    for target, _on, _left, flags in stmt._setup_joins:
        name = _table_name(target)
        if name is None or flags.get("isouter") or flags.get("full"):
            return None
        names.append(name)
    for frm in stmt._from_obj:
        name = _table_name(frm)
        if name is None:
            return None  # a join or sub-select given as FROM: left alone
        names.append(name)
    return names or None


def _on_execute(state: ORMExecuteState) -> None:
    unit: Unit | None = state.session.info.get(UNIT)
    if unit is None or unit.mode is Mode.EXPLICIT:
        return
    stmt = state.statement
    if isinstance(stmt, Select):
        if stmt._for_update_arg is not None:
            return  # the caller chose its lock
        tables = lockable_tables(stmt)
        if tables is None:
            return
        if any(unit.exclusive(t) for t in tables):
            state.statement = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE
        else:
            state.statement = stmt.with_for_update(read=True)  # FOR SHARE
    elif isinstance(stmt, Update | Delete) and unit.mode is Mode.SHARED:
        name = _table_name(stmt.table)
        if name is None or unit.exclusive(name) or stmt.whereclause is None:
            return
        probe: Select[Any] = (
            select(literal_column("1")).select_from(stmt.table).where(stmt.whereclause)
            .with_for_update(nowait=True, key_share=isinstance(stmt, Update))
        )
        _nowait(state.session, probe, unit, name)


def _nowait(session: Session, probe: Select[Any], unit: Unit, name: str) -> None:
    try:
        session.connection().execute(probe)
    except OperationalError as exc:
        if _sqlstate(exc) == LOCK_NOT_AVAILABLE:
            raise unit.contend(name, f"rows of {name} are locked by another transaction") from None
        raise


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Lock the rows this flush changes or deletes (NOWAIT), table by table."""
    unit: Unit | None = session.info.get(UNIT)
    if unit is None or unit.mode is not Mode.SHARED:
        return
    wanted: dict[tuple[Table, bool], list[Any]] = {}
    for obj, delete in [*((o, False) for o in session.dirty), *((o, True) for o in session.deleted)]:
        st = inspect(obj)
        if st.identity is None or (not delete and not session.is_modified(obj, include_collections=False)):
            continue
        table = st.mapper.local_table
        if not isinstance(table, Table) or unit.exclusive(str(table.name)):
            continue
        key = (str(table.name), st.identity)
        if key in unit.upgraded:
            continue
        wanted.setdefault((table, delete), []).append(st.identity)
    for (table, delete), identities in wanted.items():
        probe = _rows(table, identities).with_for_update(nowait=True, key_share=not delete)
        _nowait(session, probe, unit, str(table.name))
        unit.upgraded.update((str(table.name), i) for i in identities)


def _rows(table: Table, identities: list[Any]) -> Select[Any]:
    """SELECT the primary keys of these rows (plain equality for one row: the
    common case, and a statement SQLAlchemy compiles once)."""
    cols = list(table.primary_key.columns)
    if len(identities) == 1:
        return select(*cols).where(*(c == v for c, v in zip(cols, identities[0], strict=True)))
    if len(cols) == 1:
        return select(*cols).where(cols[0].in_([i[0] for i in identities]))
    return select(*cols).where(tuple_(*cols).in_([tuple(i) for i in identities]))


def lock_row(session: Session, obj: Any) -> None:
    """Lock an ORM object's row as a delete would (``FOR UPDATE``), now."""
    unit: Unit | None = session.info.get(UNIT)
    st = inspect(obj)
    if unit is None or unit.mode is Mode.EXPLICIT or st.identity is None:
        return
    table = st.mapper.local_table
    assert isinstance(table, Table)
    probe = _rows(table, [st.identity])
    name = str(table.name)
    if unit.mode is Mode.SHARED and not unit.exclusive(name):
        _nowait(session, probe.with_for_update(nowait=True), unit, name)
    else:
        session.connection().execute(probe.with_for_update())
    unit.upgraded.add((name, st.identity))


def install(factory: sessionmaker[Session], engine: Engine, current: Callable[[], Unit | None]) -> None:
    """Hook the locking model into a PostgreSQL database's write sessions.

    ``current`` returns the unit open on the calling thread (for errors, which
    the engine reports without a session)."""
    event.listen(factory, "do_orm_execute", _on_execute)
    event.listen(factory, "before_flush", _before_flush)

    def on_error(context: Any) -> None:
        unit = current()
        state = _sqlstate(context.original_exception)
        if unit is not None and state in RETRYABLE and unit.failed is None:
            unit.failed = state

    event.listen(engine, "handle_error", on_error)


def named_lock(session: Session, name: str) -> None:
    """A transaction-scoped lock on ``name`` (PostgreSQL advisory lock)."""
    unit: Unit | None = session.info.get(UNIT)
    if unit is None:
        return
    key = {"k": name}
    if unit.mode is not Mode.SHARED or unit.exclusive(name):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), key)
        return
    got = session.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"), key).scalar()
    if not got:
        raise unit.contend(name, f"lock {name} is held by another transaction")
