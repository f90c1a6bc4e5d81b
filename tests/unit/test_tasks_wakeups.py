"""Wake-ups: in-process after commit, and PostgreSQL LISTEN/NOTIFY across processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from onestack.common.db import Base, Database
from onestack.common.models import SUCCEEDED
from onestack.common.models_registry import import_all_models
from onestack.common.tasks.queue import TaskQueue
from onestack.common.tasks.worker import TaskContext, Worker
from tests.unit.tasks_support import add, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_wait_times_out(queue: TaskQueue) -> None:
    async def main() -> tuple[bool, float]:
        start = time.monotonic()
        woke = await queue.wait(["boot"], timeout=0.2)
        return woke, time.monotonic() - start

    woke, elapsed = asyncio.run(main())
    assert not woke and elapsed >= 0.18


def test_enqueue_from_a_thread_wakes_the_waiter_after_commit(queue: TaskQueue) -> None:
    committed = threading.Event()

    def producer() -> None:
        time.sleep(0.1)
        with queue.db.write() as s:
            queue.enqueue(s, "boot", {})
            time.sleep(0.2)  # no wake-up yet: the task is not committed
            committed.set()

    async def main() -> tuple[bool, bool, float]:
        start = time.monotonic()
        thread = threading.Thread(target=producer)
        thread.start()
        woke = await queue.wait(["boot"], timeout=5)
        seen_committed = committed.is_set()
        elapsed = time.monotonic() - start
        await asyncio.to_thread(thread.join)
        return woke, seen_committed, elapsed

    woke, seen_committed, elapsed = asyncio.run(main())
    assert woke and seen_committed and elapsed < 2


def test_a_delayed_task_wakes_the_waiter_when_it_is_due(queue: TaskQueue) -> None:
    """A task that may not run for 0.4 s wakes nobody at commit (a waiter woken then
    finds nothing to run: two wasted queries per worker), but does when it is due;
    a rolled-back one never does."""
    async def main() -> tuple[bool, float, bool]:
        listener = queue.listen(["boot"])
        start = time.monotonic()

        def produce() -> None:
            with queue.db.write() as s:
                queue.enqueue(s, "boot", {}, delay=0.4)

        await asyncio.to_thread(produce)
        early = await listener.wait(0.25)
        woke = await listener.wait(5)
        elapsed = time.monotonic() - start

        def rolled_back() -> None:
            try:
                with queue.db.write() as s:
                    queue.enqueue(s, "boot", {}, delay=0.1)
                    raise RuntimeError("no")
            except RuntimeError:
                pass

        await asyncio.to_thread(rolled_back)
        again = await listener.wait(0.4)
        listener.close()
        return early or not woke, elapsed, again

    if queue.db.is_postgres:  # NOTIFY goes to every process at commit, as before
        return
    early, elapsed, again = asyncio.run(main())
    assert not early and 0.38 <= elapsed < 3
    assert not again


def test_a_delayed_task_wakes_one_of_the_waiting_workers(queue: TaskQueue) -> None:
    """Four workers wait (the all-in-one cloud's): a task due in 0.2 s wakes one of
    them, which claims it; the three others, woken too, would only find nothing."""
    async def main() -> list[bool]:
        listeners = [queue.listen(["boot"]) for _ in range(4)]

        def produce() -> None:
            with queue.db.write() as s:
                queue.enqueue(s, "boot", {}, delay=0.2)

        await asyncio.to_thread(produce)
        await asyncio.sleep(0.6)
        woken = [await listener.wait(0) for listener in listeners]
        for listener in listeners:
            listener.close()
        return woken

    if queue.db.is_postgres:  # NOTIFY wakes every listener at commit there
        return
    assert sorted(asyncio.run(main())) == [False, False, False, True]


def test_queues_on_one_database_share_wake_ups(db: Database) -> None:
    api_side, agent_side = TaskQueue(db), TaskQueue(db)
    other_db = Database(db.url)

    async def main() -> tuple[bool, bool]:
        with agent_side.listen(["boot"]) as listener, TaskQueue(other_db).listen() as stranger:
            await asyncio.to_thread(add, api_side)
            return await listener.wait(timeout=2), await stranger.wait(timeout=0.1)

    try:
        assert asyncio.run(main()) == (True, False)
    finally:
        other_db.dispose()


def test_a_forwarder_hears_every_wake_up_with_its_delay_until_stopped(queue: TaskQueue) -> None:
    """What the network agent's process is told by the API's (SQLite has no NOTIFY;
    on PostgreSQL the agent LISTENs itself)."""
    if not queue.db.is_sqlite:
        pytest.skip("SQLite only")
    heard: list[tuple[str | None, float]] = []
    stop = queue.hub.forward(lambda kind, delay: heard.append((kind, delay)))
    with queue.db.write() as s:
        queue.add(s, "boot", {})
        queue.add(s, "later", {}, delay=0.3)
    assert sorted(heard) == [("boot", 0.0), ("later", 0.3)]  # at commit
    heard.clear()
    with pytest.raises(RuntimeError), queue.db.write() as s:
        queue.add(s, "boot", {})
        raise RuntimeError("rolled back")
    assert heard == []
    stop()
    with queue.db.write() as s:
        queue.add(s, "boot", {})
    assert heard == []


def test_notify_other_kind_does_not_wake(queue: TaskQueue) -> None:
    async def main() -> bool:
        asyncio.get_running_loop().call_later(0.05, queue.notify, "delete")
        return await queue.wait(["boot"], timeout=0.3)

    assert asyncio.run(main()) is False


def test_listener_remembers_a_notification_made_before_waiting(queue: TaskQueue) -> None:
    async def main() -> bool:
        with queue.listen(["boot"]) as listener:
            await asyncio.to_thread(queue.notify, "boot")
            await asyncio.sleep(0.01)
            return await listener.wait(timeout=0.1)

    assert asyncio.run(main()) is True


def test_rolled_back_enqueue_does_not_wake(queue: TaskQueue) -> None:
    def producer() -> None:
        try:
            with queue.db.write() as s:
                queue.enqueue(s, "boot", {})
                raise RuntimeError
        except RuntimeError:
            pass

    async def main() -> bool:
        with queue.listen(["boot"]) as listener:
            await asyncio.to_thread(producer)
            return await listener.wait(timeout=0.2)

    assert asyncio.run(main()) is False


def test_finishing_a_task_wakes_the_next_one_of_its_resource(queue: TaskQueue) -> None:
    first = add(queue, "boot", resource_key="server:1")
    add(queue, "delete", resource_key="server:1")
    claim = queue.claim("a", "h1", ["boot"])
    assert claim is not None

    async def main() -> bool:
        with queue.listen(["delete"]) as listener:
            await asyncio.to_thread(queue.complete, first, claim.claim_token)
            return await listener.wait(timeout=1)

    assert asyncio.run(main()) is True


# ------------------------------------------------------------------ across processes

ENQUEUE = textwrap.dedent("""
    import sys
    from onestack.common.db import Database
    from onestack.common.tasks.queue import TaskQueue

    db = Database(sys.argv[1])
    queue = TaskQueue(db)
    with db.write() as session:
        print(queue.enqueue(session, "ping", {"from": "another process"}).id)
    db.dispose()
""")


def _enqueue_elsewhere(url: str) -> str:
    out = subprocess.run([sys.executable, "-c", ENQUEUE, url], check=True, capture_output=True,
                         text=True, cwd=ROOT, env=dict(os.environ), timeout=60)
    return out.stdout.strip()


def test_listen_notify_wakes_a_worker_in_another_process(pg_server: Any) -> None:
    """A task enqueued by another process is run at once by a worker that
    polls only every 60 s: only PostgreSQL's NOTIFY can have woken it."""
    url = pg_server.new_database()
    import_all_models()
    db = Database(url)
    Base.metadata.create_all(db.write_engine, tables=[Base.metadata.tables["task"]])
    queue = TaskQueue(db)
    done: list[float] = []

    async def ping(ctx: TaskContext) -> dict[str, Any]:
        done.append(time.monotonic())
        return {"pong": ctx.payload["from"]}

    async def main() -> None:
        # Without the LISTEN connection, another process's enqueue wakes nobody.
        with queue.listen(["ping"]) as deaf:
            first = await asyncio.to_thread(_enqueue_elsewhere, url)
            assert await deaf.wait(timeout=1.0) is False
        worker = Worker(queue, "h1", {"ping": ping}, poll_interval=60)
        await worker.start()
        try:
            await wait_for(lambda: queue.hub.remote_listening, timeout=10)
            await wait_for(lambda: queue.get(first).state == SUCCEEDED)  # type: ignore[union-attr]
            await asyncio.sleep(0.2)  # the worker is idle, waiting up to 60 s
            sent = time.monotonic()
            second = await asyncio.to_thread(_enqueue_elsewhere, url)
            await wait_for(lambda: queue.get(second).state == SUCCEEDED, timeout=10)  # type: ignore[union-attr]
            assert done[-1] - sent < 5
        finally:
            await worker.stop()
        assert not queue.hub.remote_listening or queue.hub._pg is None

    try:
        asyncio.run(main())
    finally:
        db.dispose()
