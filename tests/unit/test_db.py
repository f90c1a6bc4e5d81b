"""Database: serialized writers never see "database is locked"; nested writes join.

Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from onestack.common.db import Database


class _Base(DeclarativeBase):
    """A private metadata: these test tables must not join the real schema."""


class Counter(_Base):
    __tablename__ = "counter"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class Entry(_Base):
    __tablename__ = "entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(String(64))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    _Base.metadata.create_all(database.write_engine)
    with database.write() as s:
        s.add(Counter(name="c", value=0))
    yield database
    database.dispose()


def value(db: Database) -> int:
    with db.read() as s:
        counter = s.get(Counter, "c")
        assert counter is not None
        return counter.value


def increment(db: Database, times: int, errors: list[BaseException]) -> None:
    for _ in range(times):
        try:
            with db.write() as s:
                counter = s.get(Counter, "c")
                assert counter is not None
                current = counter.value
                time.sleep(0)  # invite a thread switch inside the read-modify-write
                counter.value = current + 1
                s.add(Entry(text=threading.current_thread().name))
        except BaseException as exc:
            errors.append(exc)


def run_threads(targets: list[Database], per_thread: int) -> list[BaseException]:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=increment, args=(d, per_thread, errors), name=f"t{i}")
        for i, d in enumerate(targets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_twenty_threads_read_modify_write(db: Database) -> None:
    errors = run_threads([db] * 20, 15)
    assert errors == [], f"writers failed: {errors[:3]}"
    assert value(db) == 20 * 15  # no lost update
    with db.read() as s:
        assert len(s.execute(select(Entry)).scalars().all()) == 300


def test_separate_handles_like_separate_processes(db: Database) -> None:
    """Without the shared in-process lock, BEGIN IMMEDIATE still serializes writers."""
    handles = [Database(db.url) for _ in range(4)]
    try:
        errors = run_threads([handles[i % 4] for i in range(12)], 10)
        assert errors == [], f"writers failed: {errors[:3]}"
        assert value(db) == 120
    finally:
        for h in handles:
            h.dispose()


def test_readers_run_while_a_writer_holds_the_lock(db: Database) -> None:
    inside = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with db.write() as s:
            counter = s.get(Counter, "c")
            assert counter is not None
            counter.value = 99
            s.flush()
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(5)
    try:
        start = time.monotonic()
        assert value(db) == 0  # WAL: readers see the last commit, without waiting
        assert time.monotonic() - start < 1
    finally:
        release.set()
        thread.join()
    assert value(db) == 99


def test_nested_write_joins_the_outer_transaction(db: Database) -> None:
    with db.write() as outer:
        outer.add(Entry(text="outer"))
        with db.write() as inner:
            assert inner is outer
            inner.add(Entry(text="inner"))
        # nothing is committed before the outer block ends
        with db.read() as r:
            assert r.execute(select(Entry)).scalars().all() == []
    with db.read() as r:
        assert sorted(e.text for e in r.execute(select(Entry)).scalars()) == ["inner", "outer"]


def test_error_in_nested_write_rolls_back_everything(db: Database) -> None:
    with pytest.raises(RuntimeError):
        with db.write() as outer:
            outer.add(Entry(text="outer"))
            with db.write() as inner:
                inner.add(Entry(text="inner"))
                raise RuntimeError("boom")
    with db.read() as r:
        assert r.execute(select(Entry)).scalars().all() == []
    # and the next write works normally
    with db.write() as s:
        s.add(Entry(text="after"))
    with db.read() as r:
        assert [e.text for e in r.execute(select(Entry)).scalars()] == ["after"]


def test_read_sessions_keep_nothing(db: Database) -> None:
    with db.read() as s:
        s.add(Entry(text="ghost"))
        s.flush()
    with db.read() as s:
        assert s.execute(select(Entry)).scalars().all() == []


def test_objects_from_a_write_stay_readable(db: Database) -> None:
    with db.write() as s:
        entry = Entry(text="kept")
        s.add(entry)
    assert entry.text == "kept" and entry.id is not None  # expire_on_commit=False
