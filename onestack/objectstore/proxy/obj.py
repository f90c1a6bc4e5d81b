"""Object GET/HEAD/PUT/POST/DELETE through the ring (Swift's ObjectController)."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

from onestack.objectstore import timestamp
from onestack.objectstore.http import Headers, Request, Response, error, fail, title_case
from onestack.objectstore.proxy import putter, ranges
from onestack.objectstore.proxy.base import Proxy, best_status, check_metadata, quorum_size
from onestack.objectstore.storage.client import ObjectBody
from onestack.objectstore.storage.server import CTYPE_TS, LISTING_PARAMS, ContainerUpdate, Target

# request headers an object keeps besides x-object-meta-* / sysmeta
KEPT_HEADERS = frozenset({
    "content-disposition", "content-encoding", "content-language", "cache-control", "expires",
    "x-delete-at", "x-object-manifest", "x-static-large-object", "x-robots-tag",
})
META_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")
INTERNAL_META = frozenset({"name", "Content-Length", "X-Timestamp", CTYPE_TS, LISTING_PARAMS})


def stored_headers(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        if key in KEPT_HEADERS or key.startswith(META_PREFIXES):
            out[title_case(key)] = value
    return out


def response_headers(metadata: dict[str, Any], ts: str) -> Headers:
    """An object's headers: ``X-Timestamp`` and ``Last-Modified`` say when it last
    changed (its data, or a later POST), ``X-Backend-Timestamp`` when its data did."""
    h = Headers()
    for key, value in metadata.items():
        if key in INTERNAL_META or key.lower().startswith("x-object-transient-sysmeta-"):
            continue
        h[key] = str(value)
    changed = str(metadata.get("X-Timestamp") or ts)
    h["X-Timestamp"] = changed
    h["X-Backend-Timestamp"] = ts
    h["Last-Modified"] = timestamp.http_date(changed)
    return h


def _valid_utf8(value: str) -> bool:
    """A header value (latin-1 text of its bytes) that is UTF-8 without NUL."""
    try:
        return "\x00" not in value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False


def check_delete_headers(req: Request, now: float) -> None:
    """X-Delete-After becomes X-Delete-At; both must be integers in the future."""
    after = req.headers.get("x-delete-after")
    if after is not None:
        try:
            delta = int(after)
        except ValueError:
            raise fail(400, "Non-integer X-Delete-After") from None
        at = int(now + delta)
        if at <= now:
            raise fail(400, "X-Delete-After in past")
        req.headers["X-Delete-At"] = str(at)
        del req.headers["x-delete-after"]
    value = req.headers.get("x-delete-at")
    if value is not None:
        try:
            at = int(value)
        except ValueError:
            raise fail(400, "Non-integer X-Delete-At") from None
        if at <= now:
            raise fail(400, "X-Delete-At in past")
        req.headers["X-Delete-At"] = str(at)


class ObjectController:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.s = proxy.settings

    async def handle(self, req: Request, account: str, container: str, obj: str) -> Response:
        method = req.method
        if method in ("GET", "HEAD"):
            return await self.get_or_head(req, account, container, obj)
        if method == "PUT":
            return await self.put(req, account, container, obj)
        if method == "POST":
            return await self.post(req, account, container, obj)
        if method == "DELETE":
            return await self.delete(req, account, container, obj)
        return error(405, headers={"Allow": "COPY, DELETE, GET, HEAD, OPTIONS, POST, PUT"})

    # ---------------------------------------------------------------- reading

    async def fetch(self, account: str, container: str,
                    obj: str) -> tuple[int, ObjectBody | None, dict[str, Any]]:
        """The newest-found replica (open), or the failure status."""
        ring = self.proxy.cluster.object_ring
        part = ring.get_part(account, container, obj)
        name_hash = ring.hash(account, container, obj)
        client = self.proxy.client

        async def one(node: Any) -> tuple[int, tuple[ObjectBody | None, dict[str, Any]]]:
            status, _ts, body, meta = await client.object_get(node, part, name_hash)
            return status, (body, meta)

        status, value = await self.proxy.first_success(ring, part, one)
        if value is None:
            return status, None, {}
        return status, value[0], value[1]

    async def get_or_head(self, req: Request, account: str, container: str,
                          obj: str) -> Response:
        status, body, meta = await self.fetch(account, container, obj)
        if body is None:
            resp = error(status if status in (404, 503) else 503)
            cond = ranges.conditional_status(req, None, None, exists=False)
            if status == 404 and cond == 412:
                return error(412)
            return resp
        headers = response_headers(meta, body.timestamp)
        etag = str(meta.get("ETag", ""))

        def body_range(start: int, end: int) -> Any:
            return body.iter_range(start, end)

        return ranges.respond(req, headers, body.length, etag.strip('"'), body_range, body.close)

    # ---------------------------------------------------------------- writing

    async def _container_ok(self, req: Request, account: str, container: str) -> Any:
        info = await self.proxy.container_info(req, account, container)
        if info.status == 404:
            raise fail(404)
        if not info.ok:
            raise fail(503)
        return info

    def _updates(self, account: str, container: str, obj: str,
                 ) -> tuple[int, str, list[Target]]:
        ring = self.proxy.cluster.object_ring
        cring = self.proxy.cluster.container_ring
        cpart, cnodes = cring.get_nodes(account, container)
        targets = [Target(cnodes[i % len(cnodes)], cpart) for i in range(ring.replicas)]
        return ring.get_part(account, container, obj), ring.hash(account, container, obj), targets

    async def put(self, req: Request, account: str, container: str, obj: str) -> Response:
        s = self.s
        if len(obj) > s.max_object_name_length:
            raise fail(400, f"Object name length of {len(obj)} longer than "
                            f"{s.max_object_name_length}")
        te = req.headers.get("transfer-encoding", "").lower()
        if te and te != "chunked":
            raise fail(501, "Unsupported transfer-encoding")
        length = req.content_length
        if length is not None and length > s.max_file_size:
            raise fail(413, "Your request is too large.")
        if length is None and te != "chunked":
            raise fail(411, "Missing Content-Length header.")
        now = time.time()
        check_delete_headers(req, now)
        check_metadata(req, "object", s)
        inm = req.headers.get("if-none-match")
        if inm is not None and inm.strip() != "*":
            raise fail(400, "If-None-Match only supports *")
        await self._container_ok(req, account, container)
        if inm is not None:
            status, body, _meta = await self.fetch(account, container, obj)
            if body is not None:
                body.close()
                raise fail(412)
        ctype = req.headers.get("content-type")
        if ctype and not _valid_utf8(ctype):
            raise fail(400, "Invalid Content-Type")
        detect = req.headers.get("x-detect-content-type", "").lower() in ("true", "1", "yes", "on")
        if not ctype or detect:
            ctype = mimetypes.guess_type(obj)[0] or "application/octet-stream"
            req.headers["Content-Type"] = ctype  # what was stored, for the middlewares above
        ts = req.environ.get("swift.put_timestamp") or timestamp.now()
        meta = stored_headers(req.headers)
        meta.pop(LISTING_PARAMS, None)
        meta.update({"name": f"/{account}/{container}/{obj}", "X-Timestamp": ts,
                     "Content-Type": ctype})
        part, name_hash, targets = self._updates(account, container, obj)
        # what a middleware wants the listing to say besides the object's own
        # size and etag: {"size": n, "etag_params": "swift_bytes=...; ..."}
        override: dict[str, Any] = req.environ.get("swift.container_update_override") or {}
        params = override.get("etag_params")
        if params:
            meta[LISTING_PARAMS] = str(params)
        expected = req.headers.get("etag")
        result = await putter.store(self.proxy, req, part, name_hash, ts, meta, length,
                                    expected.strip('"').lower() if expected else None,
                                    lambda size, etag: ContainerUpdate(
                                        account, container, obj, ts,
                                        int(override.get("size", size)), ctype,
                                        f"{etag}; {params}" if params else etag),
                                    targets)
        if result.status == 201:
            resp = Response(201, b"", {"Content-Type": "text/html; charset=UTF-8",
                                       "Etag": result.etag,
                                       "Last-Modified": timestamp.http_date(ts)})
            return resp
        if result.status == 202:
            return error(202)
        return error(result.status)

    async def post(self, req: Request, account: str, container: str, obj: str) -> Response:
        check_delete_headers(req, time.time())
        check_metadata(req, "object", self.s)
        await self._container_ok(req, account, container)
        ts = timestamp.now()
        meta = stored_headers(req.headers)
        if "content-type" in req.headers:
            meta["Content-Type"] = req.headers["content-type"]
        meta["X-Timestamp"] = ts
        part, name_hash, targets = self._updates(account, container, obj)
        ring = self.proxy.cluster.object_ring
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part, lambda node, i: client.object_post(node, part, name_hash, ts, meta,
                                                           targets[i]))
        best = best_status(statuses, ring.replicas)
        if best is None:
            return error(503)
        if best // 100 == 2:
            return error(202)
        return error(404 if best in (404, 409) else best)

    async def delete(self, req: Request, account: str, container: str, obj: str) -> Response:
        await self._container_ok(req, account, container)
        ts = req.environ.get("swift.delete_timestamp") or timestamp.now()
        part, name_hash, targets = self._updates(account, container, obj)
        ring = self.proxy.cluster.object_ring
        client = self.proxy.client
        update = ContainerUpdate(account, container, obj, ts, deleted=1)
        if_delete_at = req.headers.get("x-if-delete-at")
        statuses = await self.proxy.write_all(
            ring, part, lambda node, i: client.object_delete(node, part, name_hash, ts, update,
                                                             targets[i], if_delete_at))
        best = best_status(statuses, ring.replicas)
        if best is None:
            if statuses.count(204) + statuses.count(404) >= quorum_size(ring.replicas):
                return Response(204, b"", content_type="text/html; charset=UTF-8")
            return error(503)
        if best == 204:
            return Response(204, b"", content_type="text/html; charset=UTF-8")
        if best == 409:
            return error(202)
        return error(best)
