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
from onestack.objectstore.http import Handler, Headers, HTTPError, Request, Response, error, fail
from onestack.objectstore.proxy.base import Proxy

DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"


def version_prefix(obj: str) -> str:
    return f"{len(obj.encode()):03x}{obj}/"


AS_STORED = "multipart-manifest=get&symlink=get"  # the object itself, not what it names
OV_LINK = "x-object-sysmeta-versions-symlink"  # (object_versioning's link to a version)


def _versioning_failed(status: int) -> HTTPError:
    """Swift's answer when the current version could not be read or kept: a
    client error (a missing or forbidden versions container) is a bare 412,
    anything else a 503."""
    return fail(412 if 400 <= status < 500 else 503)


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
                raise fail(400, "Only one of x-versions-location or x-history-location may be "
                                "specified")
        for key, other in (("x-versions-location", "x-remove-history-location"),
                           ("x-history-location", "x-remove-versions-location")):
            value = req.headers.get(key)
            if value:
                if "/" in value:
                    raise fail(412, "Container name cannot contain slashes",
                               content_type="text/html; charset=UTF-8")
                req.headers[other] = "1"  # one mode at a time

    async def _archive(self, req: Request, account: str, container: str, obj: str,
                       location: str) -> None:
        """Copy the current object (if any) into the versions container: a
        symlink or a manifest as itself, not what it points at (as Swift does)."""
        get = req.sub("GET", f"/v1/{account}/{container}/{obj}", source="VW",
                      query_string=AS_STORED)
        current = await self.app(get)
        if current.status == 404:
            current.close()
            return
        if not current.is_success or current.headers.get(OV_LINK) == "true":
            # (a link of X-Versions-Enabled versioning cannot be archived: Swift's
            # legacy filter fails to copy it, so a container given a legacy location
            # after new-style versioning refuses writes to its versioned objects)
            current.close()
            raise _versioning_failed(current.status if not current.is_success else 412)
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
        if not resp.is_success:  # (a missing versions container: 412)
            raise _versioning_failed(resp.status)

    async def _marker(self, req: Request, account: str, location: str, obj: str) -> None:
        dest = f"/v1/{account}/{location}/{version_prefix(obj)}{timestamp.now()}"
        put = req.sub("PUT", dest, headers={"Content-Type": DELETE_MARKER,
                                            "Content-Length": "0"}, body=b"", source="VW")
        resp = await self.app(put)
        resp.close()
        if not resp.is_success:
            raise _versioning_failed(resp.status)

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
            got = await self.app(req.sub("GET", src, source="VW", query_string=AS_STORED))
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
