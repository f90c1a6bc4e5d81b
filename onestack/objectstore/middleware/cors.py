"""CORS: browsers on other origins use a container that allows them.

A container lists the origins it allows in
``X-Container-Meta-Access-Control-Allow-Origin`` (space-separated, or ``*``),
with ``-Max-Age`` and ``-Expose-Headers``. A preflight ``OPTIONS`` (with
``Origin`` and ``Access-Control-Request-Method``) is answered 200 with the
allowed methods and headers, or 401 when the origin is not allowed; actual
requests from an allowed origin get ``Access-Control-Allow-Origin`` and
``Access-Control-Expose-Headers`` on their response. Without an ``Origin``,
``OPTIONS`` says which methods exist (``Allow``).
"""

from __future__ import annotations

from onestack.objectstore.http import Handler, Request, Response, error
from onestack.objectstore.proxy.base import Info, Proxy

METHODS = "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE"
EXPOSE = ("cache-control", "content-language", "content-type", "expires", "last-modified",
          "pragma", "etag", "x-timestamp", "x-trans-id", "x-openstack-request-id")


def _allowed(info: Info, origin: str) -> bool:
    value = info.get("x-container-meta-access-control-allow-origin")
    if not value:
        return False
    allowed = value.split()
    return "*" in allowed or origin in allowed


class Cors:
    def __init__(self, app: Handler, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        origin = req.headers.get("origin")
        if req.method == "OPTIONS":
            return await self.options(req, account, container, origin)
        resp = await self.app(req)
        if origin is None or account is None or container is None:
            return resp
        info = await self.proxy.container_info(req, account, container)
        if not info.ok or not _allowed(info, origin):
            return resp
        expose = set(EXPOSE)
        expose.update(k for k in resp.headers if k.startswith(("x-object-meta-",
                                                               "x-container-meta-")))
        extra = info.get("x-container-meta-access-control-expose-headers")
        if extra:
            expose.update(h.strip().lower() for h in extra.split() if h.strip())
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = ", ".join(sorted(expose))
        return resp

    async def options(self, req: Request, account: str | None, container: str | None,
                      origin: str | None) -> Response:
        method = req.headers.get("access-control-request-method")
        if origin is None or method is None or account is None or container is None:
            return Response(200, b"", {"Allow": METHODS},
                            content_type="text/html; charset=UTF-8")
        info = await self.proxy.container_info(req, account, container)
        if not info.ok or not _allowed(info, origin) or method.upper() not in METHODS:
            return error(401)
        headers = {"Access-Control-Allow-Origin": origin,
                   "Access-Control-Allow-Methods": METHODS, "Allow": METHODS}
        requested = req.headers.get("access-control-request-headers")
        if requested:
            headers["Access-Control-Allow-Headers"] = requested
        max_age = info.get("x-container-meta-access-control-max-age")
        if max_age:
            headers["Access-Control-Max-Age"] = max_age
        return Response(200, b"", headers, content_type="text/html; charset=UTF-8")
