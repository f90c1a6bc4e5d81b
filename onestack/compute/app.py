"""The Compute service as the cloud mounts it: the service object plus its
HTTP application, its first-start set-up and its life cycle.

At creation it registers its task kinds (rules and outcome hooks) with the
cloud, the conductor's handlers (build, network release, image upload) and,
unless ``[compute] driver = "none"``, this host's agent's handlers; the
cloud's worker runs them. The agent itself (its driver's ``init_host``, the
first report and the reconciliation) starts in the background, so the API
answers at once; its handlers wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from onestack.compute.core import ComputeService

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from onestack.common.cloud import Cloud
    from onestack.common.tasks.worker import TaskContext
    from onestack.compute.agent import ComputeAgent

LOG = logging.getLogger(__name__)

# How long a boot waits for this process's agent to start (its first report).
AGENT_START_WAIT = 60.0


class ComputeApp(ComputeService):
    def __init__(self, cloud: Cloud) -> None:
        super().__init__(cloud)
        self.agent: ComputeAgent | None = None
        self._agent_ready: asyncio.Event | None = None
        self._agent_start: asyncio.Task[None] | None = None
        self.agent_error: str | None = None
        self._register()

    # --- task kinds ------------------------------------------------------------------

    def _register(self) -> None:
        from onestack.compute import kinds
        from onestack.compute.service import conductor, outcomes

        rules = outcomes.rules(self)
        for kind, rule in rules.items():
            self.cloud.task_kinds.register(kind, rule)
        svc = self

        async def build(tctx: TaskContext) -> Mapping[str, Any] | None:
            # A boot asked for while this process's own agent is still starting
            # (the first seconds after `onestack up`) is scheduled once the host
            # has reported, not failed with "No valid host" meanwhile.
            ready = svc._agent_ready
            if ready is not None and not ready.is_set():
                await asyncio.wait_for(ready.wait(), AGENT_START_WAIT)
            return await asyncio.to_thread(conductor.build, svc, tctx)

        async def release_network(tctx: TaskContext) -> Mapping[str, Any] | None:
            return await asyncio.to_thread(conductor.release_network, svc, tctx)

        async def upload_image(tctx: TaskContext) -> Mapping[str, Any] | None:
            return await conductor.upload_image(svc, tctx)

        if "network" in self.cloud.services:  # built before Compute (app.SERVICE_MODULES)
            from onestack.compute.interface import network_events
            from onestack.network.interface import subscribe_server_events

            cloud = self.cloud
            subscribe_server_events(cloud, lambda events: network_events(cloud, events))
        self.cloud.handle_tasks(kinds.BUILD, build)
        self.cloud.handle_tasks(kinds.RELEASE_NETWORK, release_network)
        self.cloud.handle_tasks(kinds.UPLOAD_IMAGE, upload_image)
        if self.conf.driver == "none":
            return
        from onestack.compute.agent import ComputeAgent

        self.agent = ComputeAgent(self)
        self.host_calls = self.agent
        for kind, handler in self.agent.handlers().items():
            self.cloud.handle_tasks(kind, self._after_agent_start(handler))

    def _after_agent_start(
        self, handler: Callable[[TaskContext], Awaitable[Mapping[str, Any] | None]]
    ) -> Callable[[TaskContext], Awaitable[Mapping[str, Any] | None]]:
        async def run(tctx: TaskContext) -> Mapping[str, Any] | None:
            if self._agent_ready is not None:
                await self._agent_ready.wait()
            if self.agent_error is not None:
                from onestack.common.tasks.errors import TaskFailed

                raise TaskFailed(f"The compute host {self.this_host} is not available: "
                                 f"{self.agent_error}", retry=False)
            return await handler(tctx)

        return run

    # --- the service -----------------------------------------------------------------

    def asgi(self) -> ASGIApp:
        from onestack.common.web import nova_error, service_app
        from onestack.compute.api import routes
        from onestack.compute.api._common import VersionMiddleware

        app = service_app(
            routes,
            nova_error,
            state={"compute": self, "validator": self.cloud.cached_validator,
                   "service_type": "compute"},
        )
        return VersionMiddleware(app, self)

    def prepare(self) -> None:
        """Runs before serving (schema already upgraded): DevStack's flavors."""
        from onestack.compute import bootstrap

        bootstrap.create_default_flavors(self)

    async def start(self) -> None:
        if self.agent is None:
            return
        self._agent_ready = asyncio.Event()
        self._agent_start = asyncio.create_task(self._start_agent(), name="compute-agent-start")

    def driver_unavailable(self) -> str | None:
        """Why this host's driver cannot run here (None: it can). QEMU guests need
        root (their taps go on the data plane's bridges, in its namespaces) and
        qemu-system-x86_64; without them the agent does not start, the host is
        not reported, and a boot fails with Nova's "No valid host" fault."""
        if self.conf.driver != "qemu":
            return None
        import os

        from onestack.host import kvm

        if os.geteuid() != 0:
            return "the QEMU driver needs root (taps on the data plane's bridges)"
        if kvm.qemu_binary() is None:
            return "the QEMU driver needs qemu-system-x86_64 (scripts/setup installs it)"
        return None

    def banner_lines(self) -> list[str]:
        """What ``onestack up`` says of this host's guests."""
        driver = self.conf.driver
        if driver == "none":
            return ["  compute:  no agent in this process ([compute] driver = \"none\")"]
        if driver == "fake":
            return ["  compute:  fake driver: servers go ACTIVE in memory, no guest runs"]
        reason = self.driver_unavailable()
        if reason:
            return [f"  compute:  no guests on this host: {reason} "
                    "(the fake driver: [compute] driver = \"fake\")"]
        accel = self.conf.accelerator
        return [f"  compute:  QEMU guests on this host (accelerator {accel}; "
                f"instances in {self.conf.instances_dir or self.settings.state_dir / 'instances'})"]

    async def _start_agent(self) -> None:
        assert self.agent is not None and self._agent_ready is not None
        try:
            reason = self.driver_unavailable()
            if reason is not None:
                LOG.warning("the compute agent of %s does not start: %s", self.this_host, reason)
                self.agent_error = reason
                return
            await self.agent.start()
        except Exception as exc:
            LOG.exception("the compute agent of %s could not start", self.this_host)
            self.agent_error = str(exc) or type(exc).__name__
        finally:
            self._agent_ready.set()

    async def stop(self) -> None:
        if self._agent_start is not None:
            self._agent_start.cancel()
            await asyncio.gather(self._agent_start, return_exceptions=True)
        if self.agent is not None:
            await self.agent.stop()
