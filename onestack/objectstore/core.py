"""The Object Storage service object: rings, the local storage node, the pipeline.

Nothing heavy is imported when the cloud starts: the pipeline (proxy and
middlewares) is built on the first request, and the background jobs
(replicator, updater, expirer, auditor) start with the cloud.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from onestack.app import CatalogEntry

if TYPE_CHECKING:
    from onestack.app import Cloud
    from onestack.objectstore.cluster import Cluster
    from onestack.objectstore.http import Handler
    from onestack.objectstore.proxy.base import Proxy
    from onestack.objectstore.storage.client import LocalClient
    from onestack.objectstore.storage.server import StorageServer

log = logging.getLogger(__name__)


class ObjectStoreService:
    name = "objectstore"
    prefix = "/object-store"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings.objectstore
        self.root = cloud.state_dir / "objectstore"
        self.catalog = [CatalogEntry("object-store", "swift", "/object-store/v1/AUTH_%(project_id)s",
                                     "Object Storage (Swift v1)")]
        self._cluster: Cluster | None = None
        self._server: StorageServer | None = None
        self._client: LocalClient | None = None
        self._proxy: Proxy | None = None
        self._pipeline: Handler | None = None
        self.agent: Any = None

    # ---------------------------------------------------------------- parts

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            from onestack.objectstore.cluster import Cluster

            self._cluster = Cluster(self.root)
        return self._cluster

    @property
    def server(self) -> StorageServer:
        if self._server is None:
            from onestack.objectstore.storage.server import StorageServer

            server = StorageServer(str(self.cluster.devices_root), fsync=self.settings.fsync)
            self._server = server
            client = self.client
            cluster = self.cluster

            def send(target: Any, update: Any) -> bool:
                name_hash = cluster.container_ring.hash(update.account, update.container)
                return client.send_container_update(target, update, name_hash)

            server.send_update = send
            server.locate_container = lambda a, c: cluster.container_ring.get_nodes(a, c)

            def locate_account(account: str) -> tuple[int, str, list[Any]]:
                ring = cluster.account_ring
                part, nodes = ring.get_nodes(account)
                return part, ring.hash(account), [n for n in nodes if client.is_local(n)]

            server.locate_account = locate_account
        return self._server

    @property
    def client(self) -> LocalClient:
        if self._client is None:
            from onestack.objectstore.storage.client import LocalClient

            self._client = LocalClient(self.server)
        return self._client

    @property
    def proxy(self) -> Proxy:
        if self._proxy is None:
            from onestack.objectstore.proxy.base import Proxy

            self._proxy = Proxy(self.cluster, self.client, self.settings)
        return self._proxy

    def pipeline(self) -> Handler:
        if self._pipeline is None:
            from onestack.objectstore.pipeline import build

            jobs = self.jobs

            async def settle() -> None:
                # account totals up to date (the updater's report, now)
                from onestack.common.web import run

                await run(jobs.report_containers)

            self._pipeline = build(self.proxy, self.cloud.cached_validator, settle)
        return self._pipeline

    # ---------------------------------------------------------------- Service protocol

    def asgi(self) -> Any:
        service = self

        async def app(scope: Any, receive: Any, send: Any) -> None:
            from onestack.objectstore.asgi import AsgiAdapter

            adapter = AsgiAdapter(service.pipeline())
            service._asgi = adapter
            await adapter(scope, receive, send)

        self._asgi: Any = None

        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            if self._asgi is not None:
                await self._asgi(scope, receive, send)
            else:
                await app(scope, receive, send)

        return dispatch

    def prepare(self) -> None:
        s = self.settings
        self.cluster.ensure_default(s.part_power, s.replicas, s.devices, s.min_part_hours)
        from onestack.objectstore.storage.diskfile import sweep_tmp

        sweep_tmp(str(self.cluster.devices_root))

    @property
    def jobs(self) -> Any:
        """One pass of each background job, callable directly."""
        from onestack.objectstore.agent import Jobs

        return Jobs(self)

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
