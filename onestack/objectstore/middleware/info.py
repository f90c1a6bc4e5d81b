"""``/info`` (capabilities), ``/healthcheck`` and ``/crossdomain.xml``.

``/info`` lists exactly the features the pipeline serves: each middleware
registers its section (with its limits) when the pipeline is built.
"""

from __future__ import annotations

from typing import Any

import orjson

from onestack.objectstore.http import Handler, Request, Response, error

CROSSDOMAIN = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE cross-domain-policy SYSTEM '
    '"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n'
    "<cross-domain-policy>\n"
    '<allow-access-from domain="*" secure="false" />\n'
    "</cross-domain-policy>"
)


class Info:
    def __init__(self, app: Handler, capabilities: dict[str, Any]) -> None:
        self.app = app
        self.capabilities = capabilities

    async def __call__(self, req: Request) -> Response:
        path = req.path
        if path == "/info" or path == "/info/":
            if req.method not in ("GET", "HEAD", "OPTIONS"):
                return error(405, headers={"Allow": "GET, HEAD, OPTIONS"})
            if req.method == "OPTIONS":
                return Response(200, b"", {"Allow": "GET, HEAD, OPTIONS"},
                                content_type="text/html; charset=UTF-8")
            body = orjson.dumps(self.capabilities)
            return Response(200, body, content_type="application/json; charset=UTF-8")
        if path == "/healthcheck":
            return Response(200, b"OK", content_type="text/plain")
        if path == "/crossdomain.xml" and req.method in ("GET", "HEAD"):
            return Response(200, CROSSDOMAIN.encode(), content_type="application/xml; charset=utf-8")
        return await self.app(req)
