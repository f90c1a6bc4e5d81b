"""Database access: one engine, read sessions and write units.

Rules every service follows:

* ``db.read()`` gives a session for queries only.
* Any unit of work that writes - including read-modify-write - runs from its
  first statement inside ``db.write()``. Services do not think about isolation
  levels or locks; the write unit gives every read-modify-write in it the
  answer it would get if the units ran one after the other, per row:

  - **SQLite**: one writer at a time (the process-wide writer lock and
    ``BEGIN IMMEDIATE``), as SQLite is. Processes sharing the file (the API's
    and the network agent's) also take turns on an ``flock`` of
    ``<db>-writer``: a writer waiting for another process is woken the moment
    the lock is released, where SQLite's busy handler sleeps 1, 2, 5, 10 ms...
    between tries.
  - **PostgreSQL**: no global lock. Units run concurrently (READ COMMITTED)
    and lock rows (``dblocks.py`` does it, below the ORM):

    1. every row an ORM ``SELECT`` in the unit returns is locked ``FOR
       SHARE`` until the unit ends: what the unit decided on cannot change
       under it, while other units may read the same rows (a project create
       and a role grant both read the domain row and do not wait for each
       other);
    2. before a flush changes or deletes a row, the unit locks it ``FOR NO
       KEY UPDATE NOWAIT`` (``FOR UPDATE`` for a delete; ``UPDATE``/``DELETE``
       statements lock their rows the same way first). If another unit holds
       a lock on it - it read the row and may be about to change it too - the
       unit is rolled back and run again (below), and the run again reads that
       table ``FOR NO KEY UPDATE``, waiting its turn: it cannot lose the same
       race twice, and two units never both change a row one of them read
       stale (no lost update);
    3. a unique or foreign key violation (two "check, then insert" units
       racing), a deadlock or a serialization failure rolls the unit back
       and runs it again too: the run again sees the row that won and answers
       as the service always does (409, 404).

  What row locks cannot cover is rows that do not exist yet: a rule that
  counts rows (a member limit) or replaces a set of rows takes a named lock
  first, ``db.lock(session, "project-tags", project_id)``, which serializes
  the units that count the same thing (a PostgreSQL advisory lock for the
  transaction; nothing on SQLite, whose writer lock already does it); quotas
  do the same through ``common/quota``. A unit that deletes a parent calls
  ``db.lock_row(session, row)`` before it looks at the children.

  Why this model: ``FOR UPDATE`` on every read would make every row a unit
  reads a point where all units wait for each other - every project create
  reads the Default domain, every grant its role - which is one writer again
  per hot row. ``SERIALIZABLE`` escalates to whole-table predicate locks on
  small tables, so concurrent creates abort each other, and every conflict
  costs a re-run. Compare-and-set at the flush alone would not protect what a
  unit decided from rows it read but did not write. Shared read locks keep
  those decisions, let readers of a row proceed together, and a change waits
  for no one (``NOWAIT``); only units that really collide are re-run, once,
  and then queue.

* **Running a unit again.** A ``with`` block cannot be re-run, so a retry re-runs
  the function that contains the unit: ``retrying(fn, ...)`` runs ``fn`` again
  when a unit in it raised ``RetryUnit`` and no unit in it has committed yet.
  ``common/web.run`` - which runs every API handler's service call in the
  thread pool - calls through ``retrying``, so every API call is retried as a
  whole and a client never sees a deadlock or a serialization failure (if the
  attempts run out, it gets the service's own 409). A service function that
  does something besides the database (deletes a file ...) before its unit
  commits must either do that after the commit or wrap its unit in its own
  ``retrying``. A unit outside any ``retrying`` scope (start-up, workers) can
  not be re-run: it reads ``FOR NO KEY UPDATE`` and waits instead.
  ``db.write(auto_lock=False)`` leaves all locking to the caller (the task
  queue's claims use ``FOR UPDATE SKIP LOCKED`` themselves).
* ``db.schema_lock()`` (a PostgreSQL session-level advisory lock) is held while
  the schema is migrated and the services bootstrap, so that two processes
  starting together on one empty database do not race.
* Sessions are synchronous. HTTP handlers that touch the database run in the
  thread pool (``common/web.run``), keeping the event loop free.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from onestack.common import dblocks
from onestack.common.dblocks import RetryUnit, retrying

__all__ = ["Base", "Database", "RetryUnit", "lock", "lock_row", "retrying"]

# The session-level advisory lock held while the schema is prepared: (class, key).
SCHEMA_LOCK = (0x6F6E6573, 0x74616B)  # "ones", "tak"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every service's models (one metadata)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def _sqlite_json_loads(value: Any) -> Any:
    """orjson's decoder for SQLite's JSON columns. A JSON column has NUMERIC
    affinity there, so a document that is a bare number (``5``) comes back as
    an int or float, which orjson refuses with a ValueError; SQLAlchemy's own
    fallback for numbers only catches the TypeError the stdlib decoder raises."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        if isinstance(value, int | float):
            return value
        raise


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        json_deserializer=_sqlite_json_loads,
        poolclass=QueuePool if not url.endswith(":memory:") else NullPool,
        pool_size=8 if not immediate else 1,
        max_overflow=32 if not immediate else 0,
        connect_args={"check_same_thread": False, "timeout": 60},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# The ``<db>-writer`` files each thread holds (several handles on one file).
_WRITERS = threading.local()


class Database:
    """The process's handle on its database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        self._writer_path: Path | None = None
        self._writer_fd: int | None = None
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._writer_path = Path(path + "-writer")
            self.engine = _sqlite_engine(url, immediate=False)
            self.write_engine = _sqlite_engine(url, immediate=True)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                                        json_deserializer=orjson.loads)
            self.write_engine = self.engine
        self._read_factory = sessionmaker(self.engine, expire_on_commit=False)
        self._write_factory = sessionmaker(self.write_engine, expire_on_commit=False)
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._local = threading.local()
        if self.is_postgres:
            dblocks.install(self._write_factory, self.write_engine, self._unit)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; nothing written through it is kept."""
        session = self._read_factory()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def write(self, *, auto_lock: bool = True) -> Iterator[Session]:
        """A write unit: committed on success, rolled back on error.

        Nested use on the same thread joins the outer unit. On PostgreSQL the
        unit locks the rows it reads and changes (see the module docstring);
        ``auto_lock=False`` leaves locking to the caller. A unit that lost a
        race raises ``RetryUnit`` after its rollback.
        """
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        if not self.is_postgres:
            yield from self._write_serialized()
            return
        scope = dblocks.current_scope()
        if not auto_lock:
            mode = dblocks.Mode.EXPLICIT
        else:
            mode = dblocks.Mode.SHARED if scope is not None else dblocks.Mode.EXCLUSIVE
        unit = dblocks.Unit(mode, scope)
        session = self._write_factory(info={dblocks.UNIT: unit})
        self._local.session = session
        self._local.unit = unit
        dblocks.unit_open(1)
        try:
            yield session
            if unit.failed is not None:  # the body caught a database error and went on
                raise RetryUnit(f"the transaction failed ({unit.failed})", sqlstate=unit.failed)
            session.commit()
        except RetryUnit:
            session.rollback()
            raise
        except BaseException as exc:
            session.rollback()
            if unit.failed is not None and scope is not None:
                raise RetryUnit(f"the transaction failed ({unit.failed})", exc, sqlstate=unit.failed) from exc
            raise
        else:
            dblocks.note_commit()
        finally:
            dblocks.unit_open(-1)
            self._local.session = None
            self._local.unit = None
            session.close()

    def _write_serialized(self) -> Iterator[Session]:
        """SQLite: one writer at a time in this process, BEGIN IMMEDIATE across processes."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        writer, path = self._writer(), self._writer_path
        held: set[Path] = _WRITERS.__dict__.setdefault("held", set())
        if path is None or path in held:
            # in memory, or another handle on this file, in this thread, holds it:
            # waiting would never end (SQLite's own lock then says "database is locked")
            writer = None
        try:
            if writer is not None and path is not None:
                fcntl.flock(writer, fcntl.LOCK_EX)
                held.add(path)
            session = self._write_factory()
            self._local.session = session
            dblocks.unit_open(1)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            else:
                dblocks.note_commit()
            finally:
                dblocks.unit_open(-1)
                self._local.session = None
                session.close()
        finally:
            if writer is not None and path is not None:
                held.discard(path)
                fcntl.flock(writer, fcntl.LOCK_UN)
            if lock is not None:
                lock.release()

    def _writer(self) -> int | None:
        """The descriptor of ``<db>-writer`` (opened once; None: in memory, or it cannot be made)."""
        if self._writer_fd is None and self._writer_path is not None:
            try:
                self._writer_fd = os.open(self._writer_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._writer_path = None
        return self._writer_fd

    def _unit(self) -> dblocks.Unit | None:
        unit: dblocks.Unit | None = getattr(self._local, "unit", None)
        return unit

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Held while the schema is migrated and the services bootstrap: a
        second process starting on the same PostgreSQL database waits here
        (session-level advisory lock, released at the end or when the process
        dies). On SQLite: nothing (one process owns its database file)."""
        if not self.is_postgres:
            yield
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": SCHEMA_LOCK[0], "b": SCHEMA_LOCK[1]})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                             {"a": SCHEMA_LOCK[0], "b": SCHEMA_LOCK[1]})

    def dispose(self) -> None:
        if self.is_postgres and dblocks.reruns:
            counts = ", ".join(f"{n} after {state}" for state, n in sorted(dblocks.reruns.items()))
            logging.getLogger("onestack.db").info("write units that lost a race and ran again: %s", counts)
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None


def lock(session: Session, *name: str) -> None:
    """Serialize the write units that take the same named lock, until each
    commits: for rules over rows that may not exist yet (counts, quotas,
    "check then insert" without a unique constraint). PostgreSQL advisory
    lock; nothing on SQLite (one writer at a time already)."""
    dblocks.named_lock(session, ":".join(name))


def lock_row(session: Session, row: Any) -> None:
    """Lock a loaded row for change now, rather than at the flush: for a unit
    that deletes a parent, before it looks at the children (a child created
    meanwhile under the parent's shared lock would otherwise be missed). On
    SQLite nothing (one writer at a time already)."""
    dblocks.lock_row(session, row)
