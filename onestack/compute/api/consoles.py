"""Consoles: ``os-getConsoleOutput`` (the serial console's log), read from
the host's driver - which this process runs when the server is on its host."""

from __future__ import annotations

from typing import Any

from onestack.common.errors import Conflict
from onestack.common.web import run
from onestack.compute.api._common import Call
from onestack.compute.core import HostCalls
from onestack.compute.service import actions


def local_agent(c: Call, host: str | None, what: str = "console") -> HostCalls:
    """This process's compute agent, when the server is on its host (a host's
    consoles and counters are read from its driver, in the process that runs it)."""
    agent = c.svc.host_calls
    if agent is None or host != agent.host:
        raise Conflict(f"The {what} of a server on host {host} is not reachable from here.")
    return agent


async def console_output(c: Call, server_id: str, length: Any) -> str:
    server = await run(actions.console_output_target, c.svc, c.ctx, server_id)
    agent = local_agent(c, server.host)
    try:
        text = await agent.console_output(server.id, 1 << 20)
    except Exception as exc:
        raise Conflict(f"Instance {server.id} is not ready: {exc}") from None
    if length is not None and int(length) >= 0:
        # Nova's _tail_log: the trailing newline's empty piece counts as a line.
        lines = text.split("\n")
        if len(lines) > int(length):
            text = "\n".join(lines[-int(length):])
    return text
