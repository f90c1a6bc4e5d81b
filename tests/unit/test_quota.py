"""common.quota: limits, project overrides, and usage counted under the quota
lock in the transaction that consumes it - on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from onestack.common import migrate
from onestack.common.db import Database
from onestack.common.quota import OverQuota, Quotas, Resource, Usage

# A table of "servers" of the tests' own (not in the shared metadata).
META = MetaData()
THING = Table(
    "quota_test_server", META,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64)),
    Column("cores", Integer),
)


def count_servers(s: Session, project_id: str | None) -> int:
    return int(s.scalar(select(func.count()).select_from(THING).where(THING.c.project_id == project_id)) or 0)


def count_cores(s: Session, project_id: str | None) -> int:
    return int(s.scalar(
        select(func.coalesce(func.sum(THING.c.cores), 0)).where(THING.c.project_id == project_id)
    ) or 0)


QUOTAS = Quotas("compute", [
    Resource("instances", count_servers, default=10),
    Resource("cores", count_cores, default=20),
    Resource("key_pairs", lambda s, p: 0),  # unlimited by default
])


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    META.create_all(database.write_engine)
    yield database
    database.dispose()


def add_server(s: Session, project: str, cores: int = 1) -> None:
    s.execute(insert(THING).values(id=str(uuid.uuid4()), project_id=project, cores=cores))


def test_defaults_and_project_limits(db: Database) -> None:
    with db.write() as s:
        assert QUOTAS.limits(s, "p1") == {"instances": 10, "cores": 20, "key_pairs": -1}
        QUOTAS.set_limits(s, "p1", {"instances": 3, "key_pairs": 100})
    with db.write() as s:
        assert QUOTAS.limits(s, "p1") == {"instances": 3, "cores": 20, "key_pairs": 100}
        assert QUOTAS.limits(s, "p2") == {"instances": 10, "cores": 20, "key_pairs": -1}
        QUOTAS.set_limits(s, "p1", {"instances": -1})  # an override can be unlimited too
        assert QUOTAS.limits(s, "p1")["instances"] == -1
        assert QUOTAS.projects_with_limits(s) == ["p1"]
        # another service's limits with the same resource names do not mix
        other = Quotas("volume", [Resource("instances", count_servers, default=7)])
        assert other.limits(s, "p1") == {"instances": 7}
        QUOTAS.reset(s, "p1")
    with db.read() as s:
        assert QUOTAS.limits(s, "p1") == {"instances": 10, "cores": 20, "key_pairs": -1}
        assert QUOTAS.projects_with_limits(s) == []


@pytest.mark.parametrize("values", [{"nonsense": 1}, {"instances": -2}, {"instances": "5"},
                                    {"instances": True}, {"cores": 4, "instances": 1.5}])
def test_bad_limits_write_nothing(db: Database, values: dict[str, object]) -> None:
    with pytest.raises(ValueError), db.write() as s:
        QUOTAS.set_limits(s, "p1", values)  # type: ignore[arg-type]
    with db.read() as s:
        assert QUOTAS.limits(s, "p1") == {"instances": 10, "cores": 20, "key_pairs": -1}


def test_check_counts_every_resource_asked(db: Database) -> None:
    with db.write() as s:
        QUOTAS.set_limits(s, "p1", {"instances": 2, "cores": 4})
        add_server(s, "p1", cores=3)
    with db.write() as s:
        QUOTAS.check(s, "p1", {"instances": 1, "cores": 1})  # 2 of 2 instances, 4 of 4 cores
        with pytest.raises(OverQuota) as err:
            QUOTAS.check(s, "p1", {"instances": 2, "cores": 2, "key_pairs": 500})
    over = err.value
    assert over.project_id == "p1" and over.resources == ["instances", "cores"]
    assert [(o.limit, o.in_use, o.requested) for o in over.overs] == [(2, 1, 2), (4, 3, 2)]
    with db.write() as s:
        QUOTAS.check(s, "p1", {"instances": -1, "cores": 0})  # releases are never refused
        QUOTAS.check(s, "p2", {"instances": 10})
        with pytest.raises(KeyError):
            QUOTAS.check(s, "p1", {"gpus": 1})


def test_usage_and_headroom(db: Database) -> None:
    with db.write() as s:
        add_server(s, "p1", cores=6)
        add_server(s, "p1", cores=2)
        QUOTAS.set_limits(s, "p1", {"cores": 5})
    with db.write() as s:
        assert QUOTAS.usage(s, "p1") == {
            "instances": Usage(10, 2), "cores": Usage(5, 8), "key_pairs": Usage(-1, 0),
        }
        assert QUOTAS.headroom(s, "p1", "instances") == 8
        assert QUOTAS.headroom(s, "p1", "cores") == 0  # over already: nothing left, not negative
        assert QUOTAS.headroom(s, "p1", "key_pairs") is None
    with db.read() as s:
        assert QUOTAS.headroom(s, "p1", "instances", lock=False) == 8


@contextmanager
def plain_transaction(db: Database) -> Iterator[Session]:
    """A write transaction with nothing but the database's own isolation: on
    PostgreSQL no global advisory lock (READ COMMITTED, row locks only), so the
    quota lock alone has to keep the count right; SQLite's BEGIN IMMEDIATE."""
    with Session(db.write_engine) as s, s.begin():
        yield s


def race(db: Database, project: str, tries: int, open_tx: Callable[[Database], object]) -> tuple[int, int]:
    """``tries`` threads each create one server if the quota allows; (created, refused)."""
    created = refused = 0
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(tries)

    def create() -> None:
        nonlocal created, refused
        try:
            start.wait()
            with open_tx(db) as s:  # type: ignore[attr-defined]
                QUOTAS.check(s, project, {"instances": 1, "cores": 2})
                time.sleep(0.02)  # widen the window between the count and the insert
                add_server(s, project, cores=2)
            with lock:
                created += 1
        except OverQuota:
            with lock:
                refused += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return created, refused


@pytest.mark.parametrize("transaction", ["db.write", "plain"])
def test_concurrent_creates_never_pass_the_last_slot(db: Database, transaction: str) -> None:
    if transaction == "plain" and db.is_sqlite:
        pytest.skip("SQLite's writer lock is db.write(); a plain transaction would fail with 'database is locked'")
    with db.write() as s:
        QUOTAS.set_limits(s, "tight", {"instances": 5})
        add_server(s, "tight")  # one of five used
        QUOTAS.set_limits(s, "roomy", {"instances": -1, "cores": 7})  # the cores bind: 3 servers
    open_tx = (lambda d: d.write()) if transaction == "db.write" else plain_transaction
    created, refused = race(db, "tight", 16, open_tx)
    assert (created, refused) == (4, 12)
    created, refused = race(db, "roomy", 8, open_tx)
    assert (created, refused) == (3, 5)
    with db.read() as s:
        assert count_servers(s, "tight") == 5 and count_cores(s, "roomy") == 6


def test_projects_do_not_wait_for_each_other(db: Database) -> None:
    """The PostgreSQL lock is per project: a transaction holding one project's
    quota lock does not hold up another project's check."""
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time")
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with plain_transaction(db) as s:
            QUOTAS.check(s, "busy", {"instances": 1})
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        t0 = time.monotonic()
        with plain_transaction(db) as s:
            QUOTAS.check(s, "other", {"instances": 1})
        assert time.monotonic() - t0 < 2
        # while the same project's check waits for the holder
        waited = threading.Event()

        def same() -> None:
            with plain_transaction(db) as s:
                QUOTAS.check(s, "busy", {"instances": 1})
            waited.set()

        second = threading.Thread(target=same)
        second.start()
        assert not waited.wait(0.5)
        release.set()
        assert waited.wait(10)
        second.join()
    finally:
        release.set()
        thread.join()
