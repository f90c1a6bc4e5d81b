"""Static Large Objects: a manifest listing segments, served as one object.

``PUT ?multipart-manifest=put`` with a JSON list of segments
(``{"path": "/c/o", "etag": ..., "size_bytes": ..., "range": ...}`` or
``{"data": base64}``): every segment is checked with a HEAD as the caller
(missing, unreadable or foreign segments, wrong sizes or etags are a 400
listing the problems) and the manifest is stored with the object marked
``X-Static-Large-Object``. A GET streams the segments (ranges across them
work); ``?multipart-manifest=get`` returns the manifest, and
``DELETE ?multipart-manifest=delete`` removes the segments too.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from onestack.config import ObjectStoreSettings
from onestack.objectstore.http import Handler, Headers, Request, Response, fail
from onestack.objectstore.middleware import segments as segs
from onestack.objectstore.middleware.slo_manifest import (
    HTML,
    SLO_ETAG,
    SLO_SIZE,
    check_segment,
    parse_manifest,
)
from onestack.objectstore.middleware.slo_manifest import status_line as _status_line
from onestack.objectstore.proxy import ranges

OVERRIDE_ETAG = "x-object-sysmeta-container-update-override-etag"
MAX_NESTING = 10


class StaticLargeObject:
    def __init__(self, app: Handler, settings: ObjectStoreSettings) -> None:
        self.app = app
        self.max_segments = settings.max_manifest_segments
        self.max_size = settings.max_manifest_size
        self.min_segment_size = settings.min_segment_size

    def info(self) -> dict[str, Any]:
        return {"max_manifest_segments": self.max_segments,
                "max_manifest_size": self.max_size, "min_segment_size": self.min_segment_size,
                "yield_frequency": 10, "allow_async_delete": False}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if obj is None or account is None:
            return await self.app(req)
        mm = req.params.get("multipart-manifest")
        if req.method == "PUT" and mm == "put":
            return await self.put_manifest(req, account, container or "", obj)
        if req.method == "DELETE" and mm == "delete":
            return await self.delete_manifest(req, account, container or "", obj)
        if req.method in ("GET", "HEAD") and mm != "get":
            return await self.get(req, account)
        if "x-static-large-object" in req.headers and req.method not in ("GET", "HEAD"):
            raise fail(400, "X-Static-Large-Object is a reserved header. To create a static "
                            "large object add query param multipart-manifest=put.",
                       content_type=HTML)
        resp = await self.app(req)
        if req.method == "GET" and mm == "get" and "x-static-large-object" in resp.headers:
            return await self.manifest_view(req, resp)
        return resp

    # ---------------------------------------------------------------- PUT

    async def put_manifest(self, req: Request, account: str, container: str,
                           obj: str) -> Response:
        if "x-copy-from" in req.headers:
            raise fail(405, "Multipart Manifest PUTs cannot be COPY requests",
                       content_type=HTML)
        length = req.content_length
        if length is None and req.headers.get("transfer-encoding", "").lower() != "chunked":
            raise fail(411)
        if length is not None and length > self.max_size:
            raise fail(413, f"Manifest File > {self.max_size} bytes", content_type=HTML)
        raw = await req.read_body(limit=self.max_size)
        items = parse_manifest(raw, container, obj)
        if sum(1 for i in items if "path" in i) > self.max_segments:
            raise fail(413, f"Number of object-backed segments must be <= {self.max_segments}",
                       content_type=HTML)
        problems: list[list[str]] = []
        stored: list[dict[str, Any]] = []
        total = 0
        heads: dict[str, Response] = {}
        for index, item in enumerate(items):
            if "data" in item:
                stored.append({"data": item["data"]})
                total += len(base64.b64decode(item["data"]))
                continue
            path = item["path"]
            if path not in heads:  # as the caller, through this middleware (a sub-SLO's size)
                head = req.sub("HEAD", f"/v1/{account}/{path.lstrip('/')}", source="SLO",
                               authorized=False)
                heads[path] = await self(head)
                heads[path].close()
            used, seg = check_segment(item, heads[path], index == len(items) - 1,
                                      self.min_segment_size, problems)
            total += used
            stored.append(seg)
        if problems:
            ctype = segs.accept_format(req)
            body = segs.result_body(ctype, {}, problems, "upload")
            return Response(400, body, content_type=ctype)
        etag = hashlib.md5(usedforsecurity=False)
        for seg in stored:
            if "data" in seg:
                etag.update(hashlib.md5(base64.b64decode(seg["data"]),
                                        usedforsecurity=False).hexdigest().encode())
            elif seg.get("range"):
                etag.update(f"{seg['hash']}:{seg['range']};".encode())
            else:
                etag.update(str(seg["hash"]).encode())
        slo_etag = etag.hexdigest()
        client_etag = (req.headers.get("etag") or "").strip('"')
        if client_etag and client_etag != slo_etag:
            raise fail(422)
        body = orjson.dumps(stored)
        headers = req.headers.copy()
        for key in ("etag", "transfer-encoding"):
            del headers[key]
        ctype = headers.get("content-type") or mimetypes.guess_type(obj)[0] or \
            "application/octet-stream"
        headers.update({"Content-Type": ctype, "X-Static-Large-Object": "True",
                        SLO_ETAG: slo_etag, SLO_SIZE: str(total),
                        "Content-Length": str(len(body)),
                        "Etag": hashlib.md5(body, usedforsecurity=False).hexdigest()})
        put = Request("PUT", req.path, headers=headers, body=body, environ=req.environ,
                      script_name=req.script_name)
        # Parameters a middleware above wants in the listing (s3api's ``s3_etag``).
        extra = "".join(f"; {p.strip()}" for p in headers.get(OVERRIDE_ETAG, "").split(";")
                        if "=" in p)
        put.environ["swift.container_update_override"] = {
            "etag_params": f"swift_bytes={total}; slo_etag={slo_etag}{extra}"}
        resp = await self.app(put)
        if resp.is_success:
            resp.headers["Etag"] = f'"{slo_etag}"'
        return resp

    # ---------------------------------------------------------------- GET

    async def get(self, req: Request, account: str) -> Response:
        resp = await self.app(req)
        if resp.headers.get("x-static-large-object", "").lower() != "true" or not (
                resp.is_success or resp.status in (304, 412, 416)):
            return resp
        resp.close()
        # the manifest itself; the request's range and conditions are for the whole object
        query = "multipart-manifest=get"
        if "version-id" in req.params:  # that version's manifest
            query += f"&version-id={quote(req.params['version-id'], safe='')}"
        sub = req.sub("GET", req.path, query_string=query, source="SLO")
        manifest_resp = await self.app(sub)
        if not manifest_resp.is_success:
            return manifest_resp
        headers = manifest_resp.headers.copy()
        slo_etag = headers.get(SLO_ETAG, "")
        manifest_etag = headers.get("etag", "")
        for key in ("content-range", "content-length", "etag", "accept-ranges"):
            del headers[key]
        headers["Etag"] = f'"{slo_etag}"'
        headers["X-Manifest-Etag"] = manifest_etag.strip('"')
        if req.method == "HEAD" and SLO_SIZE in headers:
            manifest_resp.close()
            size = int(headers[SLO_SIZE])

            async def nothing(_a: int, _b: int) -> AsyncIterator[bytes]:
                if False:
                    yield b""

            return ranges.respond(req, headers, size, slo_etag, nothing)
        manifest = orjson.loads(await manifest_resp.read())
        segments = await self._expand(req, account, manifest, 0)
        return await segs.respond(req, self.app, account, headers, segments,
                                  slo_etag, "SLO")

    async def _expand(self, req: Request, account: str, manifest: list[dict[str, Any]],
                      depth: int) -> list[segs.Segment]:
        if depth > MAX_NESTING:
            raise fail(409, "Max recursion depth exceeded")
        out: list[segs.Segment] = []
        for seg in manifest:
            if "data" in seg:
                data = base64.b64decode(seg["data"])
                out.append(segs.Segment("", 0, len(data), data))
                continue
            start, length = 0, int(seg["bytes"])
            if seg.get("range"):
                a, _, b = str(seg["range"]).partition("-")
                start, length = int(a), int(b) - int(a) + 1
            if seg.get("sub_slo"):
                sub = req.sub("GET", f"/v1/{account}{seg['name']}",
                              query_string="multipart-manifest=get", source="SLO")
                resp = await self.app(sub)
                if not resp.is_success:
                    resp.close()
                    raise fail(409, f"Segment {seg['name']} is gone")
                inner = await self._expand(req, account, orjson.loads(await resp.read()),
                                           depth + 1)
                out.extend(segs.plan(inner, start, start + length))
            else:
                out.append(segs.Segment(seg["name"], start, length))
        return out

    async def manifest_view(self, req: Request, resp: Response) -> Response:
        body = await resp.read()
        headers = resp.headers.copy()
        if req.params.get("format") == "raw":
            manifest = orjson.loads(body)
            raw = [{"path": s["name"], "etag": s["hash"], "size_bytes": s["bytes"],
                    **({"range": s["range"]} if s.get("range") else {})}
                   if "name" in s else s for s in manifest]
            body = orjson.dumps(raw)
        headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(body))
        return Response(resp.status, body, headers)

    # ---------------------------------------------------------------- DELETE

    async def delete_manifest(self, req: Request, account: str, container: str,
                              obj: str) -> Response:
        ctype = segs.accept_format(req)
        deleted = 0
        missing = 0
        errors: list[list[str]] = []
        top = f"/{container}/{obj}"
        # ?version-id: that version of the manifest (and its segments) goes
        version = req.params.get("version-id")
        top_query = f"version-id={quote(version, safe='')}" if version else ""
        todo = [top]
        manifests: list[str] = []
        while todo:
            path = todo.pop()
            query = "multipart-manifest=get" + (f"&{top_query}" if path == top and top_query
                                                else "")
            sub = req.sub("GET", f"/v1/{account}{path}", query_string=query,
                          source="SLO", authorized=False)
            resp = await self.app(sub)
            if resp.status == 404:
                resp.close()
                if path == f"/{container}/{obj}":
                    missing += 1
                continue
            if not resp.is_success:
                resp.close()
                errors.append([quote(path), _status_line(resp.status)])
                continue
            if resp.headers.get("x-static-large-object", "").lower() != "true":
                resp.close()
                if path == f"/{container}/{obj}":
                    errors.append([quote(path), "Not an SLO manifest"])
                continue
            manifests.append(path)
            for seg in orjson.loads(await resp.read()):
                if "name" not in seg:
                    continue
                if seg.get("sub_slo"):
                    todo.append(seg["name"])
                    continue
                status = await self._delete(req, account, seg["name"])
                if status == 404:
                    missing += 1
                elif status // 100 == 2:
                    deleted += 1
                else:
                    errors.append([quote(seg["name"]), _status_line(status)])
        for path in reversed(manifests):
            status = await self._delete(req, account, path,
                                        query=top_query if path == top else "")
            if status // 100 == 2:
                deleted += 1
            elif status == 404:
                missing += 1
            else:
                errors.append([quote(path), _status_line(status)])
        status = 400 if errors else 200
        data = {"Number Deleted": deleted, "Number Not Found": missing,
                "Response Body": "", "Response Status": _status_line(status)}
        return Response(200, segs.result_body(ctype, data, errors, "delete"),
                        content_type=ctype)

    async def _delete(self, req: Request, account: str, path: str, query: str = "") -> int:
        sub = req.sub("DELETE", f"/v1/{account}{path}", source="SLO", authorized=False,
                      headers=Headers(), query_string=query)
        resp = await self.app(sub)
        resp.close()
        return resp.status


