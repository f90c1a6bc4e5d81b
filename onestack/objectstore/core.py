"""The Object Storage service object: the rings, the local storage node and
the proxy state. Each part is made on first use, so nothing heavy is imported
when the cloud starts (``app.py`` builds the HTTP pipeline on the first request).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from onestack.common.cloud import CatalogEntry

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.objectstore.cluster import Cluster
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
        if self.s3_port > 0:
            self.catalog.append(CatalogEntry("s3", "s3", "", "Object Storage (S3)",
                                             url=self.s3_url))
        self._cluster: Cluster | None = None
        self._server: StorageServer | None = None
        self._client: LocalClient | None = None
        self._proxy: Proxy | None = None

    @property
    def s3_port(self) -> int:
        """The S3 listener's port: the main port + 1 unless set; 0 = no S3."""
        port = self.settings.s3_port
        return self.cloud.settings.port + 1 if port < 0 else port

    @property
    def s3_url(self) -> str:
        if self.settings.s3_public_url:
            return self.settings.s3_public_url.rstrip("/")
        host = self.cloud.settings.host
        host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.s3_port}"

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
