"""Dynamic Large Objects: ``X-Object-Manifest: <container>/<prefix>``.

A GET of such an object lists ``<container>`` for ``<prefix>`` (as the
caller) and streams the matching objects in name order as one body; its
ETag is the quoted MD5 of the segments' ETags. ``?multipart-manifest=get``
returns the (empty) manifest object itself.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, unquote

import orjson

from onestack.objectstore.http import Handler, Request, Response, fail
from onestack.objectstore.middleware import segments as segs

MAX_SEGMENTS = 10000


class DynamicLargeObject:
    def __init__(self, app: Handler) -> None:
        self.app = app

    def info(self) -> dict[str, Any]:
        return {"max_segments": MAX_SEGMENTS}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if obj is None or account is None:
            return await self.app(req)
        if req.method in ("PUT", "POST") and "x-object-manifest" in req.headers:
            value = unquote(req.headers["x-object-manifest"])
            c, _, _p = value.lstrip("/").partition("/")
            if not c or "/" not in value.lstrip("/"):
                raise fail(400, "X-Object-Manifest must be in the format container/prefix",
                           content_type="text/html; charset=UTF-8")
        if req.method not in ("GET", "HEAD") or req.params.get("multipart-manifest") == "get":
            return await self.app(req)
        resp = await self.app(req)
        manifest = resp.headers.get("x-object-manifest")
        if not resp.is_success or not manifest:
            return resp
        resp.close()
        seg_container, _, prefix = unquote(manifest).lstrip("/").partition("/")
        listing = await self._list(req, account, seg_container, prefix)
        md5 = hashlib.md5(usedforsecurity=False)
        segments = []
        for entry in listing:
            md5.update(str(entry["hash"]).strip('"').encode())
            segments.append(segs.Segment(f"/{seg_container}/{entry['name']}", 0,
                                         int(entry["bytes"])))
        headers = resp.headers.copy()
        for key in ("content-range", "content-length", "etag"):
            del headers[key]
        etag = md5.hexdigest()
        headers["Etag"] = f'"{etag}"'
        return await segs.respond(req, self.app, account, headers, segments,
                                  etag, "DLO")

    async def _list(self, req: Request, account: str, container: str,
                    prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker = ""
        while len(out) < MAX_SEGMENTS:
            query = f"format=json&prefix={quote(prefix, safe='')}&marker={quote(marker, safe='')}"
            sub = req.sub("GET", f"/v1/{account}/{container}", query_string=query,
                          source="DLO", authorized=False)
            resp = await self.app(sub)
            if resp.status == 404:
                resp.close()
                return out
            if not resp.is_success:
                resp.close()
                raise fail(resp.status if resp.status in (401, 403) else 503)
            page = orjson.loads(await resp.read()) if resp.status == 200 else []
            if not page:
                break
            out.extend(e for e in page if "name" in e)
            marker = page[-1].get("name", "")
        return out
