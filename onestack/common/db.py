"""Database access: one engine, read sessions and serialized write transactions.

Rules every service follows:

* ``db.read()`` gives a session for queries only.
* Any unit of work that writes - including read-modify-write - runs from its
  first statement inside ``db.write()``. On SQLite that takes the process-wide
  writer lock and opens the transaction with ``BEGIN IMMEDIATE``, so concurrent
  writers queue instead of failing with ``database is locked``. On PostgreSQL
  the transaction first takes a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``): the same one-writer-at-a-time rule across every
  process and host sharing the database, so a read-modify-write never loses an
  update (READ COMMITTED alone would let two of them interleave). Reads never
  wait for it.
* Sessions are synchronous. HTTP handlers that touch the database are plain
  ``def`` functions, which Starlette runs in its thread pool, keeping the event
  loop free.
"""

from __future__ import annotations

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

# The advisory lock every PostgreSQL write transaction holds (any fixed number).
WRITE_LOCK_KEY = 0x6F6E657374  # "onest"

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


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        json_deserializer=orjson.loads,
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


class Database:
    """The process's handle on its database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on error.

        Nested use on the same thread joins the outer transaction.
        """
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        session = self._write_factory()
        self._local.session = session
        try:
            if self.is_postgres:
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self._local.session = None
            session.close()
            if lock is not None:
                lock.release()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
