"""Object versioning the classic way: ``X-Versions-Location`` / ``X-History-Location``.

A container naming a versions container keeps overwritten objects there as
``<len(name) as 3 hex digits><name>/<timestamp>``. Stack mode
(``X-Versions-Location``): a DELETE restores the newest archived version.
History mode (``X-History-Location``): a DELETE archives the current version
and leaves a delete marker; nothing is restored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from onestack.objectstore import timestamp
from onestack.objectstore.http import Handler, Headers, Request, Response, error, fail
from onestack.objectstore.proxy.base import Proxy

DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"


def version_prefix(obj: str) -> str:
    return f"{len(obj.encode()):03x}{obj}/"


class VersionedWrites:
    def __init__(self, app: Handler, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    def info(self) -> dict[str, Any]:
        return {"allowed_flags": ["x-versions-location", "x-history-location"]}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if account is None or container is None:
            return await self.app(req)
        if obj is None:
            if req.method in ("PUT", "POST"):
                self._check_container_headers(req)
            return await self.app(req)
        if req.method not in ("PUT", "DELETE") or req.environ.get("swift.source") == "VW":
            return await self.app(req)
        if req.params.get("multipart-manifest") == "get":
            return await self.app(req)
        info = await self.proxy.container_info(req, account, container)
        stack = info.get("x-versions-location")
        history = info.get("x-history-location")
        location = stack or history
        if not info.ok or not location:
            return await self.app(req)
        if req.method == "PUT":
            await self._archive(req, account, container, obj, location)
            return await self.app(req)
        if history:
            await self._archive(req, account, container, obj, location)
            await self._marker(req, account, location, obj)
            return await self.app(req)
        return await self._delete_stack(req, account, container, obj, location)

    def _check_container_headers(self, req: Request) -> None:
        if "x-versions-location" in req.headers and "x-history-location" in req.headers:
            if req.headers["x-versions-location"] and req.headers["x-history-location"]:
                raise fail(400, "Only one of X-Versions-Location or X-History-Location may be "
                                "specified")
        for key, other in (("x-versions-location", "x-remove-history-location"),
                           ("x-history-location", "x-remove-versions-location")):
            value = req.headers.get(key)
            if value:
                if "/" in value.strip("/") or len(value) > 256:
                    raise fail(412, "Container name cannot contain slashes")
                req.headers[other] = "1"  # one mode at a time

    async def _archive(self, req: Request, account: str, container: str, obj: str,
                       location: str) -> None:
        """Copy the current object (if any) into the versions container."""
        get = req.sub("GET", f"/v1/{account}/{container}/{obj}", source="VW",
                      query_string="multipart-manifest=get")
        current = await self.app(get)
        if current.status == 404:
            current.close()
            return
        if not current.is_success:
            current.close()
            raise fail(503)
        ts = current.headers.get("x-timestamp") or timestamp.now()
        headers = Headers()
        for key, value in current.headers.items():
            if key.startswith(("x-object-meta-", "content-", "x-static-large-object",
                               "x-object-manifest", "x-object-sysmeta-")) or key in (
                    "etag", "cache-control", "expires"):
                headers[key] = value
        dest = f"/v1/{account}/{location}/{version_prefix(obj)}{ts}"
        put = req.sub("PUT", dest, headers=headers, body=current.body, source="VW")
        try:
            resp = await self.app(put)
        finally:
            current.close()
        resp.close()
        if resp.status == 404:
            raise fail(412, f"Versions container {location} does not exist")
        if not resp.is_success:
            raise fail(503)

    async def _marker(self, req: Request, account: str, location: str, obj: str) -> None:
        dest = f"/v1/{account}/{location}/{version_prefix(obj)}{timestamp.now()}"
        put = req.sub("PUT", dest, headers={"Content-Type": DELETE_MARKER,
                                            "Content-Length": "0"}, body=b"", source="VW")
        resp = await self.app(put)
        resp.close()

    async def _delete_stack(self, req: Request, account: str, container: str, obj: str,
                            location: str) -> Response:
        prefix = version_prefix(obj)
        query = f"format=json&reverse=on&prefix={quote(prefix, safe='')}&limit=10"
        listing = await self.app(req.sub("GET", f"/v1/{account}/{location}",
                                         query_string=query, source="VW"))
        versions = orjson.loads(await listing.read()) if listing.status == 200 else []
        for entry in versions:
            name = entry.get("name")
            if not name:
                continue
            if entry.get("content_type") == DELETE_MARKER.split(";")[0]:
                continue
            src = f"/v1/{account}/{location}/{name}"
            got = await self.app(req.sub("GET", src, source="VW",
                                         query_string="multipart-manifest=get"))
            if got.status == 404:
                got.close()
                continue
            if not got.is_success:
                got.close()
                return error(503)
            headers = Headers({k: v for k, v in got.headers.items()
                               if k.startswith(("x-object-meta-", "content-", "x-object-sysmeta-",
                                                "x-static-large-object", "x-object-manifest"))
                               or k == "etag"})
            put = req.sub("PUT", f"/v1/{account}/{container}/{obj}", headers=headers,
                          body=got.body, source="VW", authorized=False)
            put.environ["swift.authorize"] = req.environ.get("swift.authorize")
            try:
                restored = await self.app(put)
            finally:
                got.close()
            restored.close()
            if not restored.is_success:
                return error(restored.status)
            (await self.app(req.sub("DELETE", src, source="VW"))).close()
            return Response(204, b"", content_type="text/html; charset=UTF-8")
        return await self.app(req)
