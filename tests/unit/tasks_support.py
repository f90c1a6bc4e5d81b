"""Helpers of the task-queue tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from onestack.common.tasks.queue import TaskQueue


def add(queue: TaskQueue, kind: str = "boot", **kw: Any) -> str:
    with queue.db.write() as s:
        return queue.enqueue(s, kind, kw.pop("payload", {"n": 1}), **kw).id


def db_now(queue: TaskQueue) -> datetime:
    with queue.db.read() as s:
        return queue.clock.read(s, queue.db.is_sqlite)


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    """A coroutine polling ``predicate`` (may block briefly) until true."""

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(predicate):
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.02)

    return poll()
