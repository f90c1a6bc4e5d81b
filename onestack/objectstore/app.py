"""The Object Storage service as the cloud mounts it: the service object plus
its HTTP pipeline, its preparation and its background jobs.

``onestack.objectstore.create(cloud)`` returns an :class:`ObjectStoreApp`.
The pipeline (proxy and middlewares) is built on the first request; the
background jobs (replicator, updater, expirer, auditor) start with the cloud.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.cloud import Listener
from onestack.objectstore.core import ObjectStoreService

if TYPE_CHECKING:
    from onestack.objectstore.agent import Jobs
    from onestack.objectstore.http import Handler


class ObjectStoreApp(ObjectStoreService):
    def __init__(self, cloud: Any) -> None:
        super().__init__(cloud)
        self._pipeline: Handler | None = None
        self._entries: dict[str, Any] = {}
        self._asgi: Any = None
        self.agent: Any = None

    @property
    def jobs(self) -> Jobs:
        """One pass of each background job, callable directly."""
        from onestack.objectstore.agent import Jobs

        return Jobs(self)

    def pipeline(self) -> Handler:
        if self._pipeline is None:
            from onestack.common.web import run
            from onestack.objectstore.pipeline import build

            jobs = self.jobs

            async def settle() -> None:
                # account totals up to date (the updater's account reports, now)
                await run(jobs.report_containers)

            self._pipeline = build(self.proxy, self.cloud.cached_validator, settle,
                                   self._entries)
        return self._pipeline

    def asgi(self) -> Any:
        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            if self._asgi is None:
                from onestack.objectstore.asgi import AsgiAdapter

                self._asgi = AsgiAdapter(self.pipeline())
            await self._asgi(scope, receive, send)

        return dispatch

    def listeners(self) -> list[Listener]:
        """S3's own port (S3 clients expect buckets at the root of their endpoint)."""
        if self.s3_port <= 0:
            return []
        return [Listener("s3", self.cloud.settings.host, self.s3_port, self.s3_url,
                         self.s3_asgi())]

    def s3_asgi(self) -> Any:
        """The S3 API in front of the Swift pipeline (built on its first request)."""
        built: list[Any] = []

        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            if not built:
                from onestack.objectstore.s3.app import S3App

                self.pipeline()
                built.append(S3App(self._entries["auth"], self._entries["capabilities"],
                                   self.cloud, self.settings))
            await built[0](scope, receive, send)

        return dispatch

    def prepare(self) -> None:
        """Before serving: the rings and devices exist, stray temporaries go."""
        from onestack.objectstore.storage.diskfile import sweep_tmp

        s = self.settings
        self.cluster.ensure_default(s.part_power, s.replicas, s.devices, s.min_part_hours)
        sweep_tmp(str(self.cluster.devices_root))

    async def start(self) -> None:
        from onestack.objectstore.agent import ObjectAgent

        self.agent = ObjectAgent(self)
        await self.agent.start()

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
            self.agent = None
        if self._server is not None:
            self._server.brokers.close_all()
