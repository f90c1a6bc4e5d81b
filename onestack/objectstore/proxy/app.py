"""The proxy application: the bottom of the pipeline (Swift's proxy-server app)."""

from __future__ import annotations

from onestack.objectstore.http import Request, Response, error
from onestack.objectstore.proxy.base import Proxy
from onestack.objectstore.proxy.container import AccountController, ContainerController
from onestack.objectstore.proxy.obj import ObjectController

ALLOWED = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALLOW = "DELETE, GET, HEAD, OPTIONS, POST, PUT"


class ProxyApp:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.accounts = AccountController(proxy)
        self.containers = ContainerController(proxy)
        self.objects = ObjectController(proxy)

    async def __call__(self, req: Request) -> Response:
        version, account, container, obj = req.split_path()
        if version not in ("v1", "v1.0") or account is None:
            return error(400)
        if req.method not in ALLOWED:
            return error(405, headers={"Allow": ALLOW})
        authorize = req.environ.get("swift.authorize")
        if authorize is not None:
            denied = await authorize(req)
            if denied is not None:
                return denied
        if obj is not None:
            assert container is not None
            return await self.objects.handle(req, account, container, obj)
        if container is not None:
            return await self.containers.handle(req, account, container)
        return await self.accounts.handle(req, account)
