"""Database: concurrent read-modify-write units keep every update; nested writes join.

Each test runs on SQLite (one writer at a time) and on PostgreSQL (row locks,
and a unit that lost a race is run again by ``db.retrying``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, Integer, String, delete, func, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from onestack.common import db as dbmod
from onestack.common.db import Database, RetryUnit, retrying


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


class Document(_Base):
    __tablename__ = "document"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[Any] = mapped_column(JSON)


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


# --- the units API calls run (inside db.retrying, as common/web.run does) ---------


def bump_in_scope(db: Database, times: int, errors: list[BaseException]) -> None:
    def once() -> None:
        with db.write() as s:
            counter = s.get(Counter, "c")
            assert counter is not None
            current = counter.value
            time.sleep(0)
            counter.value = current + 1
            s.add(Entry(text=threading.current_thread().name))

    for _ in range(times):
        try:
            retrying(once)
        except BaseException as exc:
            errors.append(exc)


def test_api_units_keep_every_update(db: Database) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=bump_in_scope, args=(db, 15, errors)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], f"writers failed: {errors[:3]}"
    assert value(db) == 300
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 300


def test_api_units_of_separate_handles_keep_every_update(db: Database) -> None:
    handles = [Database(db.url) for _ in range(4)]
    errors: list[BaseException] = []
    try:
        threads = [threading.Thread(target=bump_in_scope, args=(handles[i % 4], 10, errors))
                   for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"writers failed: {errors[:3]}"
        assert value(db) == 120
    finally:
        for h in handles:
            h.dispose()


class Runs:
    """How often each named caller's function ran; a barrier for the first runs."""

    def __init__(self, db: Database, parties: int = 2) -> None:
        self.db = db
        self.count: dict[str, int] = {}
        self.barrier = threading.Barrier(parties)
        self.lock = threading.Lock()

    def start(self, name: str) -> int:
        with self.lock:
            self.count[name] = self.count.get(name, 0) + 1
            return self.count[name]

    def meet(self, run: int) -> None:
        """Wait for the other caller, on first runs only, and only on PostgreSQL
        (on SQLite the other caller waits for the writer lock this one holds)."""
        if run == 1 and self.db.is_postgres:
            self.barrier.wait(10)

    def both(self, fn: Any, *args: Any) -> list[Any]:
        results: list[Any] = [None, None]

        def call(i: int, name: str) -> None:
            try:
                results[i] = retrying(fn, name, *args)
            except BaseException as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=call, args=(i, n)) for i, n in enumerate(("a", "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return results


def test_a_lost_race_is_run_again_and_keeps_both_updates(db: Database) -> None:
    """Both units read the row, then both change it: on PostgreSQL one of them
    finds the row locked by the other, is rolled back, and runs again reading
    the row exclusively; nothing reaches the caller, both increments stay."""
    runs = Runs(db)

    def bump(name: str) -> None:
        run = runs.start(name)
        with db.write() as s:
            counter = s.get(Counter, "c")
            assert counter is not None
            seen = counter.value
            runs.meet(run)  # both have read the same value
            counter.value = seen + 1

    assert runs.both(bump) == [None, None]
    assert value(db) == 2
    if db.is_postgres:
        assert sum(runs.count.values()) >= 3  # a race was lost and run again


def test_check_then_insert_race_answers_as_the_service(db: Database) -> None:
    """Two units find no row and both insert it: the loser's unique violation
    runs it again, and the second run sees the winner's row."""
    runs = Runs(db)

    def create(name: str) -> str:
        run = runs.start(name)
        with db.write() as s:
            if s.get(Counter, "new") is not None:
                return "exists"
            runs.meet(run)
            s.add(Counter(name="new", value=1))
            s.flush()
            return "created"

    assert sorted(runs.both(create)) == ["created", "exists"]


def test_a_count_rule_holds_under_a_named_lock(db: Database) -> None:
    """Row locks cannot lock rows that do not exist yet: a rule that counts
    takes db.lock, and twelve concurrent inserts stop exactly at the limit."""
    limit = 5
    results: list[Any] = []

    def add() -> bool:
        with db.write() as s:
            dbmod.lock(s, "entries", "limit")
            count = s.scalar(select(func.count()).select_from(Entry)) or 0
            time.sleep(0.002)
            if count >= limit:
                return False
            s.add(Entry(text="x"))
            return True

    def call() -> None:
        try:
            results.append(retrying(add))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True] * 5
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == limit


def test_a_deadlock_is_run_again(db: Database) -> None:
    """Two units update two rows in opposite orders: PostgreSQL aborts one
    (deadlock detected, SQLSTATE 40P01) and it runs again; on SQLite one
    writer at a time cannot deadlock."""
    with db.write() as s:
        s.add_all([Counter(name="x", value=0), Counter(name="y", value=0)])
    runs = Runs(db)

    def cross(name: str) -> None:
        first, second = ("x", "y") if name == "a" else ("y", "x")
        run = runs.start(name)
        with db.write(auto_lock=False) as s:  # plain UPDATEs that wait for each other
            s.execute(update(Counter).where(Counter.name == first).values(value=Counter.value + 1))
            runs.meet(run)
            s.execute(update(Counter).where(Counter.name == second).values(value=Counter.value + 1))

    assert runs.both(cross) == [None, None]
    with db.read() as s:
        assert {c.name: c.value for c in s.scalars(select(Counter))} == {"c": 0, "x": 2, "y": 2}
    if db.is_postgres:
        assert sum(runs.count.values()) == 3


def test_a_serialization_failure_is_run_again(db: Database) -> None:
    """A unit at REPEATABLE READ that updates a row changed since its snapshot
    fails with SQLSTATE 40001 on PostgreSQL; it runs again and keeps both."""
    runs = Runs(db)

    def bump(name: str) -> None:
        run = runs.start(name)
        with db.write(auto_lock=False) as s:
            if db.is_postgres:
                s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            counter = s.get(Counter, "c")
            assert counter is not None
            seen = counter.value
            runs.meet(run)
            counter.value = seen + 1

    assert runs.both(bump) == [None, None]
    assert value(db) == 2
    if db.is_postgres:
        assert sum(runs.count.values()) == 3


def test_a_unit_that_swallowed_a_database_error_never_commits(db: Database) -> None:
    """After an error PostgreSQL's transaction is aborted and COMMIT would
    silently roll back: the unit says so instead of returning as if it had
    written."""
    if not db.is_postgres:
        pytest.skip("SQLite has no aborted-transaction state")
    from sqlalchemy.exc import IntegrityError

    def insert_twice() -> None:
        with db.write() as s:
            s.add(Entry(text="kept?"))
            s.flush()
            try:
                s.add(Counter(name="c", value=5))  # the primary key exists
                s.flush()
            except IntegrityError:
                pass

    with pytest.raises(RetryUnit) as info:
        retrying(insert_twice)
    assert info.value.final and info.value.sqlstate == "23505"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0


def test_units_reading_the_same_row_do_not_wait_for_each_other(db: Database) -> None:
    """FOR SHARE: two units that only read a row (a parent, a reference) both
    proceed while the other is still open."""
    if not db.is_postgres:
        pytest.skip("SQLite has one writer at a time")
    inside = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with db.write() as s:
            assert s.get(Counter, "c") is not None
            s.add(Entry(text="holder"))
            inside.set()
            release.wait(10)

    def other() -> float:
        start = time.monotonic()
        with db.write() as s:
            assert s.get(Counter, "c") is not None
            s.add(Entry(text="other"))
        return time.monotonic() - start

    thread = threading.Thread(target=retrying, args=(holder,))
    thread.start()
    try:
        assert inside.wait(10)
        assert retrying(other) < 2
    finally:
        release.set()
        thread.join()
    with db.read() as s:
        assert sorted(e.text for e in s.scalars(select(Entry))) == ["holder", "other"]


def test_no_rerun_after_a_unit_committed(db: Database) -> None:
    """A function whose first unit committed is not run again (it would write
    twice): the loss goes to the caller, marked final."""
    calls: list[int] = []

    def two_units() -> None:
        calls.append(1)
        with db.write() as s:
            s.add(Entry(text="first"))
        raise RetryUnit("lost a race in the second unit")

    with pytest.raises(RetryUnit) as info:
        retrying(two_units)
    assert info.value.final and calls == [1]
    with db.read() as s:
        assert [e.text for e in s.scalars(select(Entry))] == ["first"]


def test_an_inner_scope_runs_only_its_own_function_again(db: Database) -> None:
    calls: list[str] = []

    def inner() -> None:
        calls.append("inner")
        with db.write() as s:
            s.add(Entry(text="inner"))
            if calls.count("inner") == 1:
                raise RetryUnit("lost")

    def outer() -> None:
        calls.append("outer")
        with db.write() as s:
            s.add(Entry(text="outer"))
        retrying(inner)

    retrying(outer)
    assert calls == ["outer", "inner", "inner"]
    with db.read() as s:
        assert sorted(e.text for e in s.scalars(select(Entry))) == ["inner", "outer"]


def test_schema_lock_lets_one_process_prepare_at_a_time(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite: one process owns its database file")
    other = Database(db.url)
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with db.schema_lock():
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(10)
        with other.schema_lock():
            order.append("second in")
    finally:
        thread.join()
        other.dispose()
    assert order == ["first done", "second in"]


def test_web_run_never_turns_a_lost_race_into_a_500() -> None:
    from onestack.common import web
    from onestack.common.errors import Conflict, NotFound

    def always_loses() -> None:
        raise RetryUnit("lost")

    with pytest.raises(Conflict) as info:
        web._unit_of_work(always_loses)
    assert info.value.status == 409
    assert "concurrent changes" in info.value.message

    def loses_with_the_services_answer() -> None:
        raise RetryUnit("lost", NotFound("Could not find project: p."))

    with pytest.raises(NotFound, match="Could not find project: p."):
        web._unit_of_work(loses_with_the_services_answer)


def test_delete_statements_in_api_units_keep_every_change(db: Database) -> None:
    """UPDATE and DELETE statements (not only flushes) lock their rows first:
    concurrent deletes and updates of the same rows never fail, and a
    "replace the set" (delete them all, insert anew) under its named lock
    leaves exactly one set."""
    errors: list[BaseException] = []

    def churn(i: int) -> None:
        def once() -> None:
            with db.write() as s:
                s.execute(update(Counter).where(Counter.name == "c").values(value=Counter.value + 1))
                dbmod.lock(s, "entries")  # a row not yet inserted cannot be locked
                s.execute(delete(Entry).where(Entry.text == "shared"))
                s.add(Entry(text="shared"))

        for _ in range(10):
            try:
                retrying(once)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]
    assert value(db) == 80
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 1


def test_retrying_inside_an_open_unit_leaves_the_retry_to_the_outer_scope(db: Database) -> None:
    """A unit that lost a race aborted the transaction it joined: only the
    scope around the outermost unit can run it again."""
    calls: list[str] = []

    def inner() -> None:
        calls.append("inner")
        if calls.count("inner") == 1:
            raise RetryUnit("lost")

    def outer() -> None:
        calls.append("outer")
        with db.write() as s:
            s.add(Entry(text=f"outer {calls.count('outer')}"))
            retrying(inner)

    retrying(outer)
    assert calls == ["outer", "inner", "outer", "inner"]
    with db.read() as s:
        assert [e.text for e in s.scalars(select(Entry))] == ["outer 2"]


@pytest.mark.parametrize("body", [5, 2.5, -1, "5", [1, "a"], {"k": {"n": 3}}, True, None])
def test_json_documents_read_back_as_written(db: Database, body: Any) -> None:
    """A bare number too: SQLite's JSON columns have NUMERIC affinity and hand it back
    as a number, not as JSON text."""
    with db.write() as s:
        s.add(Document(id=1, body=body))
    with db.read() as s:
        found = s.get(Document, 1)
        assert found is not None and found.body == body and type(found.body) is type(body)


def test_sqlite_writers_of_other_processes_take_turns_on_the_writer_file(db: Database) -> None:
    """A write unit holds an flock of ``<db>-writer`` (another process's writer waits
    on it and is woken when it is released, instead of sleeping in SQLite's busy
    handler); none outside a unit, and none held once the unit ends, even by an error."""
    import fcntl
    import os

    if not db.is_sqlite:
        pytest.skip("SQLite only")
    path = db.url.split("///", 1)[-1] + "-writer"

    def taken() -> bool:  # as another process would see it: a descriptor of its own
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    with db.write() as s:
        s.execute(update(Counter).values(value=Counter.value + 1))
        assert taken()
    assert not taken()
    with pytest.raises(RuntimeError), db.write() as s:
        s.execute(update(Counter).values(value=Counter.value + 1))
        raise RuntimeError("boom")
    assert not taken()
    assert value(db) == 1


def test_a_second_handle_on_the_file_in_the_same_thread_does_not_wait_for_the_writer_file(db: Database) -> None:
    """Another handle's write unit nested in this thread's (on SQLite) must not wait
    on the ``<db>-writer`` flock this thread holds: it would wait forever."""
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    other = Database(db.url)
    done = threading.Event()

    def nested() -> None:
        with db.write() as s:
            s.execute(update(Counter).values(value=Counter.value + 1))
            with other.write():  # no statement: SQLite's own lock is not asked for
                pass
        done.set()

    try:
        worker = threading.Thread(target=nested, daemon=True)
        worker.start()
        worker.join(10)
        assert done.is_set()
        assert value(db) == 1
    finally:
        other.dispose()
