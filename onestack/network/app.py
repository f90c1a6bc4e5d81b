"""The Networking service as the cloud mounts it: the service object plus its
HTTP application and its life cycle.

``onestack.network.create(cloud)`` returns a :class:`NetworkApp`: the
:class:`~onestack.network.core.NetworkService` every network service function
takes, with what only the top of the network layers may do: build the ASGI
app from the API routes and create the all-in-one defaults at first start.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from onestack.network.core import NetworkService

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from onestack.common.cloud import Cloud
    from onestack.network.agent.process import AgentProcess, Init
    from onestack.network.agent.runner import DataPlane

log = logging.getLogger(__name__)


def dataplane_wanted(mode: str) -> tuple[bool, str]:
    """Whether the data plane runs here, and why (for the banner)."""
    mode = (mode or "auto").strip().lower()
    if mode == "off":
        return False, "off ([network] dataplane = \"off\")"
    root = os.geteuid() == 0
    if mode == "on" and not root:
        return False, "off: it needs root ([network] dataplane = \"on\" but not run as root)"
    if mode not in ("on", "auto"):
        return False, f"off: unknown [network] dataplane = {mode!r} (auto, on, off)"
    if not root:
        return False, "off (not run as root: the API works, nothing is wired)"
    return True, "on"


class NetworkApp(NetworkService):
    def __init__(self, cloud: Cloud) -> None:
        super().__init__(cloud)
        from onestack.network.agent.agents import HostAgents

        self.agent_source = HostAgents(cloud)
        self.dataplane: DataPlane | None = None
        # the child running the agent (``[network] agent_process``), else None:
        # the agent runs in this process
        self.agent_process: AgentProcess | None = None
        on, self.dataplane_state = dataplane_wanted(self.config.dataplane)
        if on:
            from onestack.network.agent.runner import DataPlane

            self.dataplane = DataPlane(self)
            if self.config.agent_process:
                from onestack.network.agent.process import AgentProcess

                self.dataplane.install(handlers=False)
                self.agent_process = AgentProcess(self, self.dataplane)
            else:
                self.dataplane.install()
            where = "the host reaches public through a veth" if self.config.host_network \
                else f"no host access: {self.dataplane.layout.external_ns} stands in for the host"
            agent = "agent in a process of its own" if self.agent_process else "agent in this process"
            self.dataplane_state = f"on (namespaces {self.dataplane.layout.prefix}-*; {where}; {agent})"

    def banner_lines(self) -> list[str]:
        return [f"  network:  data plane {self.dataplane_state}"]

    def asgi(self) -> ASGIApp:
        from onestack.common.web import service_app
        from onestack.network.api import all_routes
        from onestack.network.api._http import render_error
        from onestack.network.service.errors import HTTPNotFound

        app = service_app(
            all_routes(),
            render_error,
            state={"network": self, "validator": self.cloud.cached_validator, "service_type": "network",
                   "auth_uri": self.settings.base_url + "/identity"},
        )

        async def no_nul_in_path(scope: Scope, receive: Receive, send: Send) -> None:
            # No id, tag or name holds a NUL character (PostgreSQL refuses one).
            if scope["type"] == "http" and "\x00" in scope["path"]:
                await render_error(HTTPNotFound())(scope, receive, send)
                return
            await app(scope, receive, send)

        return no_nul_in_path

    def pre_fork(self) -> None:
        """``onestack up``, once prepared, before any event loop or worker thread:
        fork the agent's first process (``agent/prefork.py``), sharing what
        start-up made. No database connection may cross the fork: the pool's
        are closed first (the API's process opens new ones when it needs them)."""
        if self.agent_process is not None:
            import threading

            from onestack.network.agent.prefork import PreforkedAgent

            if threading.active_count() > 1:  # not safe: executed at its start instead
                log.info("network agent: threads running before serving; not forked")
                return
            self.cloud.db.dispose()
            self.agent_process.forked = PreforkedAgent.fork(run_agent_process)

    def prepare(self) -> None:
        """Runs before serving (schema upgraded, identity bootstrapped): the
        host's range is free for this cloud (else StartError), the defaults."""
        if self.dataplane is not None:
            self.dataplane.check()  # HostRangeTaken: `onestack up` says why and stops
        if self.config.create_defaults:
            from onestack.network.bootstrap import create_defaults

            create_defaults(self)

    async def start(self) -> None:
        if self.agent_process is not None:
            assert self.dataplane is not None
            # The namespace Compute plugs taps into (``binding:vif_details``) exists
            # from the first request, not once the agent's process has started.
            from onestack.network.agent import l2

            await l2.ensure_root(self.dataplane.host, self.dataplane.layout)
            await self.agent_process.start()
        elif self.dataplane is not None:
            await self.dataplane.start()

    async def stop(self) -> None:
        if self.agent_process is not None:
            await self.agent_process.stop()
        elif self.dataplane is not None:
            await self.dataplane.stop()


def run_agent_process(fd: int, init: Init | None = None, parent: int | None = None) -> int:
    """``onestack network-agent`` (started by ``onestack up``, see
    ``agent/process.py``): this cloud's network agent, in this process, until
    the API's process stops it or goes away. ``init`` and ``parent`` when
    forked by ``onestack up`` (``agent/prefork.py``); else the settings come on
    standard input."""
    import asyncio
    import logging as _logging

    from onestack.common.cloud import Cloud
    from onestack.common.db import Database
    from onestack.common.tasks import core as tasks_core
    from onestack.network.agent import process

    if init is None:
        init = process.read_init()
    if not isinstance(init, process.Init):
        log.error("onestack network-agent: started by onestack up only")
        return 1
    process.die_with_parent(init.parent if parent is None else parent)
    _logging.basicConfig(level=init.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = init.settings
    settings.network.agent_process = False  # the handlers run here
    cloud = Cloud(settings=settings, db=Database(settings.db_url))
    net = NetworkApp(cloud)
    tasks = tasks_core.create(cloud)
    cloud.services = {"network": net, "tasks": tasks}
    if net.dataplane is None:
        log.error("network agent: the data plane is %s", net.dataplane_state)
        return 1
    asyncio.run(process.serve_child(cloud, net, net.dataplane, tasks, fd, init))
    return 0
