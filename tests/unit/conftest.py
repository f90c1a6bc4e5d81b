"""Fixtures of the task-queue tests: each test on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.orm import Session

from onestack.common.db import Base, Database
from onestack.common.models_registry import import_all_models
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.hosts import HostRegistry
from onestack.common.tasks.kinds import KindRegistry
from onestack.common.tasks.queue import TaskQueue

TABLES = ("task", "host_service", "periodic_job", "agent_credential")


class RowLocksOnly(Database):
    """PostgreSQL without ``db.py``'s global write lock: a write transaction
    holds only the row locks its own statements take, under READ COMMITTED.
    The task queue must be correct under this alone (on SQLite nothing
    changes: one writer is what SQLite is)."""

    @contextmanager
    def write(self) -> Iterator[Session]:
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        session = self._write_factory()
        self._local.session = session
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self._local.session = None
            session.close()


def task_database(url: str) -> Database:
    """A handle for the task tests: on PostgreSQL with row locks only."""
    return RowLocksOnly(url) if url.startswith("postgresql") else Database(url)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A database with the shared tables (claims use FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    import_all_models()
    database = task_database(database_url)
    Base.metadata.create_all(
        database.write_engine, tables=[Base.metadata.tables[name] for name in TABLES]
    )
    yield database
    database.dispose()


@pytest.fixture
def clock() -> DbClock:
    return DbClock()


@pytest.fixture
def kinds() -> KindRegistry:
    return KindRegistry()


@pytest.fixture
def queue(db: Database, clock: DbClock, kinds: KindRegistry) -> TaskQueue:
    return TaskQueue(db, clock=clock, kinds=kinds)


@pytest.fixture
def hosts(db: Database, clock: DbClock) -> HostRegistry:
    return HostRegistry(db, clock=clock)


