"""A role for the agent test: handlers that report where they ran.

``onestack agent --role tests.clients.agent_handlers`` loads this module.
Each result says which process ran the task and whether that process ever
loaded the database layer (it must not have: an agent has no database).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from onestack.common.tasks.errors import TaskFailed
from onestack.common.tasks.worker import TaskContext

BINARY = "onestack-test-agent"


def _where() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "sqlalchemy_loaded": "sqlalchemy" in sys.modules,
        "database_env": sorted(k for k in os.environ if "DATABASE" in k or k.endswith("_DIR")
                               and k.startswith("ONESTACK")),
    }


async def echo(ctx: TaskContext) -> dict[str, Any]:
    await ctx.progress({"step": "echoing"})
    return {"echo": ctx.payload.get("text"), **_where()}


def sleepy(ctx: TaskContext) -> dict[str, Any]:
    for _ in range(int(ctx.payload.get("steps", 1))):
        ctx.check()
        asyncio.run(asyncio.sleep(0.05))
    return _where()


async def refuse(ctx: TaskContext) -> None:
    raise TaskFailed(f"refused: {ctx.payload.get('why', 'no reason')}")


HANDLERS = {"agent-echo": echo, "agent-sleepy": sleepy, "agent-refuse": refuse}
