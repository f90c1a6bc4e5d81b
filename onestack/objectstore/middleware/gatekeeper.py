"""Swift's gatekeeper: clients may neither set nor see system metadata.

``X-{Account,Container,Object}-Sysmeta-*``, ``X-Object-Transient-Sysmeta-*``
and ``X-Backend-*`` headers are removed from client requests and from the
responses they get; middlewares below use them freely.
"""

from __future__ import annotations

from onestack.objectstore.http import Handler, Headers, Request, Response

PREFIXES = ("x-account-sysmeta-", "x-container-sysmeta-", "x-object-sysmeta-",
            "x-object-transient-sysmeta-", "x-backend-")
INBOUND = ("x-timestamp",)


def _strip(headers: Headers) -> None:
    for key in [k for k in headers if k.startswith(PREFIXES)]:
        del headers[key]


class Gatekeeper:
    def __init__(self, app: Handler) -> None:
        self.app = app

    async def __call__(self, req: Request) -> Response:
        _strip(req.headers)
        for key in INBOUND:
            req.headers.pop(key)
        resp = await self.app(req)
        _strip(resp.headers)
        return resp
