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
from urllib.parse import quote, unquote

import orjson

from onestack.config import ObjectStoreSettings
from onestack.objectstore.http import REASONS, Handler, Headers, Request, Response, error, fail
from onestack.objectstore.middleware import segments as segs
from onestack.objectstore.proxy import ranges

SLO_ETAG = "x-object-sysmeta-slo-etag"
SLO_SIZE = "x-object-sysmeta-slo-size"
OVERRIDE_ETAG = "x-object-sysmeta-container-update-override-etag"
MAX_NESTING = 10


def _status_line(status: int) -> str:
    return f"{status} {REASONS.get(status, ('Unknown', ''))[0]}"


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
        resp = await self.app(req)
        if req.method == "GET" and mm == "get" and "x-static-large-object" in resp.headers:
            return await self.manifest_view(req, resp)
        return resp

    # ---------------------------------------------------------------- PUT

    async def put_manifest(self, req: Request, account: str, container: str,
                           obj: str) -> Response:
        if "x-copy-from" in req.headers:
            raise fail(405, "Multipart Manifest PUTs cannot be COPY requests")
        length = req.content_length
        if length is None and req.headers.get("transfer-encoding", "").lower() != "chunked":
            raise fail(411)
        if length is not None and length > self.max_size:
            raise fail(413, f"Manifest File > {self.max_size} bytes")
        raw = await req.read_body(limit=self.max_size)
        items = parse_manifest(raw)
        paths = [i for i in items if "path" in i]
        if len(paths) > self.max_segments:
            raise fail(413, f"Number of object-backed segments must be <= {self.max_segments}")
        problems: list[list[str]] = []
        stored: list[dict[str, Any]] = []
        total = 0
        heads: dict[str, Response] = {}
        for index, item in enumerate(items):
            if "data" in item:
                data = base64.b64decode(item["data"])
                stored.append({"data": item["data"]})
                total += len(data)
                continue
            path = "/" + item["path"].lstrip("/")
            if path not in heads:
                head = req.sub("HEAD", f"/v1/{account}{path}", source="SLO", authorized=False)
                heads[path] = await self.app(head)
            head_resp = heads[path]
            last = index == len(items) - 1
            length_used, seg = self._validate(item, path, head_resp, last, problems)
            total += length_used
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
        extra = "".join(f";{p.strip()}" for p in headers.get(OVERRIDE_ETAG, "").split(";")
                        if "=" in p)
        put.environ["swift.container_update_override"] = {
            "content_type": f"{ctype};swift_bytes={total};slo_etag={slo_etag}{extra}"}
        resp = await self.app(put)
        if resp.is_success:
            resp.headers["Etag"] = f'"{slo_etag}"'
        return resp

    def _validate(self, item: dict[str, Any], path: str, head: Response, last: bool,
                  problems: list[list[str]]) -> tuple[int, dict[str, Any]]:
        name = quote(path.lstrip("/"))
        if not head.is_success:
            problems.append([name, _status_line(head.status)])
            return 0, {}
        size = int(head.headers.get("content-length", "0"))
        etag = (head.headers.get("etag") or "").strip('"')
        used = size
        rng = item.get("range")
        seg: dict[str, Any] = {"name": path, "bytes": size, "hash": etag,
                               "content_type": head.headers.get("content-type", ""),
                               "last_modified": head.headers.get("last-modified", "")}
        if rng:
            spans = ranges.ranges_for_length(ranges.parse_range(f"bytes={rng}") or [], size)
            if not spans:
                problems.append([name, "Unsatisfiable Range"])
            elif spans != [(0, size)]:
                a, b = spans[0]
                seg["range"] = f"{a}-{b - 1}"
                used = b - a
        if used < max(self.min_segment_size, 1) and not last:
            problems.append([name, "Too small; each segment must be at least 1 byte."])
        if item.get("size_bytes") is not None and int(item["size_bytes"]) != size:
            problems.append([name, "Size Mismatch"])
        if item.get("etag") is not None and item["etag"] != etag:
            problems.append([name, "Etag Mismatch"])
        if head.headers.get("x-static-large-object", "").lower() == "true":
            seg["sub_slo"] = True
            seg["bytes"] = int(head.headers.get(SLO_SIZE, str(size)))
            used = seg["bytes"] if not rng else used
        return used, seg

    # ---------------------------------------------------------------- GET

    async def get(self, req: Request, account: str) -> Response:
        resp = await self.app(req)
        if resp.headers.get("x-static-large-object", "").lower() != "true" or not (
                resp.is_success or resp.status in (304, 412, 416)):
            return resp
        resp.close()
        # the manifest itself; the request's range and conditions are for the whole object
        sub = req.sub("GET", req.path, query_string="multipart-manifest=get", source="SLO")
        manifest_resp = await self.app(sub)
        if not manifest_resp.is_success:
            return manifest_resp
        headers = manifest_resp.headers.copy()
        slo_etag = headers.get(SLO_ETAG, "")
        for key in ("content-range", "content-length", "etag", "accept-ranges"):
            del headers[key]
        headers["Etag"] = f'"{slo_etag}"'
        if req.method == "HEAD" and SLO_SIZE in headers:
            manifest_resp.close()
            size = int(headers[SLO_SIZE])

            async def nothing(_a: int, _b: int) -> AsyncIterator[bytes]:
                if False:
                    yield b""

            return ranges.respond(req, headers, size, slo_etag, nothing)
        manifest = orjson.loads(await manifest_resp.read())
        segments = await self._expand(req, account, manifest, 0)
        return segs.respond(req, self.app, account, headers, segments, slo_etag,
                            "SLO")  # type: ignore[return-value]

    async def _expand(self, req: Request, account: str, manifest: list[dict[str, Any]],
                      depth: int) -> list[segs.Segment]:
        if depth > MAX_NESTING:
            raise fail(409, "Max recursion depth exceeded")
        out: list[segs.Segment] = []
        for seg in manifest:
            if "data" in seg:
                raise fail(501, "Inline data segments are not served")
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
        todo = [f"/{container}/{obj}"]
        manifests: list[str] = []
        while todo:
            path = todo.pop()
            sub = req.sub("GET", f"/v1/{account}{path}", query_string="multipart-manifest=get",
                          source="SLO", authorized=False)
            resp = await self.app(sub)
            if resp.status == 404:
                resp.close()
                if path == f"/{container}/{obj}":
                    missing += 1
                continue
            if not resp.is_success:
                resp.close()
                errors.append([quote(path.lstrip("/")), _status_line(resp.status)])
                continue
            if resp.headers.get("x-static-large-object", "").lower() != "true":
                resp.close()
                if path == f"/{container}/{obj}":
                    return error(400, "Not an SLO manifest")
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
                    errors.append([quote(unquote(seg["name"]).lstrip("/")),
                                   _status_line(status)])
        for path in reversed(manifests):
            status = await self._delete(req, account, path, manifest=True)
            if status // 100 == 2:
                deleted += 1
            elif status == 404:
                missing += 1
            else:
                errors.append([quote(path.lstrip("/")), _status_line(status)])
        status = 400 if errors else 200
        data = {"Number Deleted": deleted, "Number Not Found": missing,
                "Response Body": "", "Response Status": _status_line(status)}
        return Response(200, segs.result_body(ctype, data, errors, "delete"),
                        content_type=ctype)

    async def _delete(self, req: Request, account: str, path: str,
                      manifest: bool = False) -> int:
        sub = req.sub("DELETE", f"/v1/{account}{path}", source="SLO", authorized=False,
                      headers=Headers())
        resp = await self.app(sub)
        resp.close()
        return resp.status


def parse_manifest(raw: bytes) -> list[dict[str, Any]]:
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise fail(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(items, list):
        raise fail(400, "Manifest must be a list.\n")
    errors = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"Index {i}: not a JSON object")
            continue
        if "data" in item:
            if set(item) != {"data"}:
                errors.append(f"Index {i}: data segments may not have other keys")
            else:
                try:
                    base64.b64decode(item["data"], validate=True)
                except (ValueError, TypeError):
                    errors.append(f"Index {i}: data must be valid base64")
            continue
        extra = set(item) - {"path", "etag", "size_bytes", "range"}
        if "path" not in item:
            errors.append(f'Index {i}: expected keys to include path')
            continue
        if extra:
            errors.append(f"Index {i}: extraneous keys {', '.join(sorted(repr(k) for k in extra))}")
        path = item["path"]
        if not isinstance(path, str) or path.strip("/").count("/") < 1:
            errors.append(f'Index {i}: path does not refer to an object. Path must be of the '
                          f'form /container/object.')
        if item.get("etag") is not None and not isinstance(item["etag"], str):
            errors.append(f'Index {i}: "etag" must be a string or null (if provided)')
        size = item.get("size_bytes")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            errors.append(f"Index {i}: invalid size_bytes")
        rng = item.get("range")
        if rng is not None:
            parsed = ranges.parse_range(f"bytes={rng}") if isinstance(rng, str) else None
            if not parsed or len(parsed) != 1:
                errors.append(f"Index {i}: invalid range")
    if errors:
        raise fail(400, "\n".join(errors) + "\n")
    if not items:
        raise fail(400, "Manifest must have at least one segment.\n")
    return items
