"""Fixtures of the task-queue tests: each test on SQLite and on PostgreSQL
(where write units hold row locks only: the queue must be correct so)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from onestack.common.db import Base, Database
from onestack.common.models_registry import import_all_models
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.hosts import HostRegistry
from onestack.common.tasks.kinds import KindRegistry
from onestack.common.tasks.queue import TaskQueue

TABLES = ("task", "host_service", "periodic_job", "agent_credential", "process")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A database with the shared tables (claims use FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    import_all_models()
    database = Database(database_url)
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


