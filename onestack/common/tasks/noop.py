"""The ``noop`` agent role: a task kind that does nothing, for benchmarks and
for checking that an agent reaches its cloud (``onestack agent --role noop``)."""

from __future__ import annotations

from typing import Any

from onestack.common.tasks.worker import TaskContext

BINARY = "onestack-noop-agent"


async def noop(ctx: TaskContext) -> dict[str, Any] | None:
    return None


HANDLERS = {"noop": noop}
