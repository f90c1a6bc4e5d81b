"""Object versioning, the new way: ``X-Versions-Enabled`` (Swift's object_versioning).

``PUT``/``POST`` of a container with ``X-Versions-Enabled: true`` makes its
hidden versions container (see ``versions.py``) and turns versioning on;
``false`` turns it off (versions stay). While it is on:

* an object PUT stores the data as a new version in the versions container
  and makes the object a static symlink to it (``X-Object-Version-Id`` says
  which); an object written while versioning was off (a ``null`` version)
  is first copied into the versions container;
* a DELETE writes a delete marker version and removes the link;
* a POST updates the link and the version it points at;
* ``?version-id=<id>`` reads (GET/HEAD), deletes (DELETE) or makes current
  (PUT with an empty body) one version - owner only, as the versions
  container has no ACLs;
* ``GET ?versions`` lists every version (JSON), ``is_latest`` marking the
  current one.

A container may not use this and the legacy ``X-Versions-Location`` /
``X-History-Location`` at once: enabling it on such a container is a 400.
Deleting a versioned container needs every version deleted first (409).
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from onestack.objectstore import timestamp
from onestack.objectstore.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    fail,
)
from onestack.objectstore.middleware import symlink as sym
from onestack.objectstore.middleware import versions_listing as listing
from onestack.objectstore.middleware.versions import (
    CLIENT_ENABLED,
    DELETE_MARKER,
    NULL,
    RESERVED,
    SYSMETA_CONTAINER,
    SYSMETA_ENABLED,
    SYSMETA_SYMLINK,
    normal_version,
    parse_version_object,
    true_value,
    valid_version,
    version_object,
    versions_container,
)
from onestack.objectstore.proxy.base import Proxy

HTML = "text/html; charset=UTF-8"
NO_VERSIONS_CONTAINER = ("The versions container does not exist. You may want to re-enable "
                         "object versioning.")
# headers the version of a PUT does not keep (the link does: it expires, not the data)
EXPIRY = frozenset({"x-delete-at", "x-delete-after"})
# headers a link to a version must not carry
NOT_FOR_LINKS = ("etag", "x-if-delete-at", "x-symlink-target-account", "x-object-manifest",
                 "x-static-large-object", "x-object-sysmeta-slo-etag",
                 "x-object-sysmeta-slo-size", "transfer-encoding")
# response headers that are about the response, not the object
NOT_COPIED = frozenset({"x-timestamp", "x-backend-timestamp", "last-modified", "accept-ranges",
                        "content-range", "x-trans-id", "x-openstack-request-id", "date",
                        "content-location"})


def bad(status: int, message: str, **kw: Any) -> HTTPError:
    """An error with a message, as swob sends it (an HTML content type)."""
    return fail(status, message, content_type=HTML, **kw)


class ObjectVersioning:
    def __init__(self, app: Handler, proxy: Proxy) -> None:
        self.app = app
        self.proxy = proxy

    def info(self) -> dict[str, Any]:
        return {}

    async def __call__(self, req: Request) -> Response:
        version, account, container, obj = req.split_path()
        if version not in ("v1", "v1.0") or account is None:
            return await self.app(req)
        if container is None:
            if req.method == "GET":
                return await listing.account_listing(self.app, self.proxy, req, account)
            return await self.app(req)
        if container.startswith(RESERVED):
            return await self.app(req)
        if obj is None:
            return await self.container_request(req, account, container)
        return await self.object_request(req, account, container, obj)

    # ================================================================ helpers

    def _pre(self, req: Request, method: str, path: str, *, query: str = "",
             headers: Headers | dict[str, str] | None = None,
             body: AsyncIterator[bytes] | bytes | None = None) -> Request:
        """A pre-authorized sub-request that may name reserved containers."""
        sub = req.sub(method, path, headers=headers or {}, body=body, query_string=query,
                      source="OV")
        sub.environ["swift.allow_reserved_names"] = True
        return sub

    @staticmethod
    def _reroute(req: Request, path: str, query: str | None = None) -> Request:
        """The client's request (its body, headers and rights) for another path."""
        return Request(req.method, path, query_string=req.query_string if query is None
                       else query, headers=req.headers, body=req.body, environ=req.environ,
                       script_name=req.script_name, remote_addr=req.remote_addr,
                       host=req.host)

    @staticmethod
    async def _authorize(req: Request) -> None:
        authorize = req.environ.get("swift.authorize")
        if authorize is not None:
            denied = await authorize(req)
            if denied is not None:
                raise HTTPError(denied)

    @staticmethod
    async def _check(resp: Response) -> None:
        """Go on after a successful sub-request; otherwise answer as Swift does."""
        if resp.is_success:
            return
        body = await resp.read()
        if resp.status == 404:
            raise fail(412)
        if 400 <= resp.status < 500:
            raise HTTPError(Response(resp.status, body, resp.headers))
        raise fail(503)

    # ================================================================ containers

    async def container_request(self, req: Request, account: str, container: str) -> Response:
        if req.method in ("PUT", "POST") and CLIENT_ENABLED in req.headers:
            return await self.set_versioning(req, account, container)
        if req.method == "DELETE":
            return await self.delete_container(req, account, container)
        if req.method in ("GET", "HEAD"):
            return await listing.container_listing(self.app, self.proxy, req, account,
                                                   container)
        return await self.app(req)

    async def set_versioning(self, req: Request, account: str, container: str) -> Response:
        info = await self.proxy.container_info(req, account, container)
        if info.get("x-versions-location") or info.get("x-history-location"):
            raise bad(400, "Cannot enable object versioning on a container that is already "
                           "using the legacy versioned writes feature.")
        if info.get("x-container-sync-to"):
            raise bad(400, "Cannot enable object versioning on a container configured as "
                           "source of container syncing.")
        await self._authorize(req)
        enabled = true_value(req.headers[CLIENT_ENABLED])
        req.headers[SYSMETA_ENABLED] = "True" if enabled else "False"
        made = ""
        if enabled:
            made = versions_container(container)
            resp = await self.app(self._pre(req, "PUT", f"/v1/{account}/{made}"))
            resp.close()
            if not (resp.is_success or resp.status == 409):
                raise bad(500, "Error enabling object versioning")
            req.headers[SYSMETA_CONTAINER] = quote(made)
        resp = await self.app(req)
        if not resp.is_success and made:
            (await self.app(self._pre(req, "DELETE", f"/v1/{account}/{made}"))).close()
        return resp

    async def delete_container(self, req: Request, account: str, container: str) -> Response:
        info = await self.proxy.container_info(req, account, container)
        vcont = unquote(info.get(SYSMETA_CONTAINER) or "")
        if vcont:
            await self._authorize(req)
            head = await self.app(self._pre(req, "HEAD", f"/v1/{account}/{vcont}"))
            head.close()
            if head.is_success and int(head.headers.get("x-container-object-count", "0")) > 0:
                raise bad(409, "Delete all versions before deleting container.")
            if not head.is_success and head.status != 404:
                raise bad(500, "Error deleting versioned container")
            gone = await self.app(self._pre(req, "DELETE", f"/v1/{account}/{vcont}"))
            gone.close()
            if not gone.is_success and gone.status != 404:
                raise bad(500, "Error deleting versioned container")
        return await self.app(req)

    # ================================================================ objects

    async def object_request(self, req: Request, account: str, container: str,
                             obj: str) -> Response:
        info = await self.proxy.container_info(req, account, container)
        vcont = unquote(info.get(SYSMETA_CONTAINER) or "").split("/")[0]
        enabled = true_value(info.get(SYSMETA_ENABLED, ""))
        version_id = req.params.get("version-id")
        if version_id:
            return await self.with_version(req, account, container, obj, vcont, version_id)
        if not vcont:
            return await self.app(req)
        if req.method == "PUT":
            if not enabled:
                return await self.app(req)
            return await self.put(req, account, container, obj, vcont)
        if req.method == "POST":
            return await self.post(req, account, vcont)
        if req.method == "DELETE":
            if not enabled:
                return await self.app(req)
            return await self.delete(req, account, container, obj, vcont)
        return await self.read(req, account, container, obj, vcont)

    async def _copy_current(self, req: Request, account: str, obj: str, vcont: str) -> None:
        """An object written while versioning was off becomes a version first."""
        await self._authorize(req)
        cur = await self.app(self._pre(req, "GET", req.path, query="symlink=get"))
        if cur.status == 404:
            cur.close()
            return
        await self._check(cur)
        if cur.headers.get(SYSMETA_SYMLINK) == "true":
            cur.close()
            return
        ts = cur.headers.get("x-backend-timestamp") or cur.headers.get("x-timestamp") or \
            str(timestamp.parse_http_date(cur.headers.get("last-modified", "")) or 0)
        name = version_object(obj, normal_version(ts))
        headers = Headers((k, v) for k, v in cur.headers.items() if k not in NOT_COPIED)
        put = self._pre(req, "PUT", f"/v1/{account}/{vcont}/{name}", headers=headers,
                        body=cur.body)
        _slo_listing(put, headers)
        try:
            resp = await self.app(put)
        finally:
            cur.close()
        if resp.status == 404:
            resp.close()
            raise fail(500, NO_VERSIONS_CONTAINER)
        await self._check(resp)
        resp.close()

    async def put(self, req: Request, account: str, container: str, obj: str,
                  vcont: str) -> Response:
        await self._copy_current(req, account, obj, vcont)
        version_id = timestamp.now()
        name = version_object(obj, version_id)
        if "x-symlink-target" not in req.headers and (not req.headers.get("content-type") or
                                                       true_value(req.headers.get(
                                                           "x-detect-content-type", ""))):
            # guessed from the object's name, not its version's (Swift guesses from the
            # version's reserved name, which always gives application/octet-stream)
            req.headers["Content-Type"] = mimetypes.guess_type(obj)[0] or \
                "application/octet-stream"
            req.headers.pop("x-detect-content-type")
        headers = Headers((k, v) for k, v in req.headers.items() if k not in EXPIRY)
        counted = _Counter(req.body)
        put = self._pre(req, "PUT", f"/v1/{account}/{vcont}/{name}", headers=headers,
                        body=counted.iterate())
        put.environ["swift.put_timestamp"] = version_id
        override = req.environ.pop("swift.container_update_override", None)
        if override:
            put.environ["swift.container_update_override"] = override
        resp = await self.app(put)
        if resp.status == 404:
            resp.close()
            raise fail(500, NO_VERSIONS_CONTAINER)
        await self._check(resp)
        resp.close()
        size = req.headers.get("x-object-sysmeta-slo-size") or str(counted.bytes)
        slo_etag = req.headers.get("x-object-sysmeta-slo-etag")
        ctype = put.headers.get("content-type") or "application/octet-stream"  # as stored
        return await self._link(req, vcont, name, resp.headers.get("etag", ""), size,
                                ctype.split(";")[0].strip(),
                                f"slo_etag={slo_etag}" if slo_etag else "")

    async def _link(self, req: Request, vcont: str, name: str, etag: str, size: str,
                    ctype: str, listing_params: str = "") -> Response:
        """Make the object a static link to one of its versions."""
        headers = req.headers.copy()
        for key in NOT_FOR_LINKS:
            headers.pop(key)
        headers.update({
            "Content-Type": ctype, "Content-Length": "0",
            "X-Symlink-Target": quote(f"{vcont}/{name}"),
            sym.TARGET_ETAG: etag.strip('"'), sym.TARGET_BYTES: size,
            SYSMETA_SYMLINK: "true", sym.LOOP_EXTEND: "true", sym.ALLOW_RESERVED: "true"})
        link = Request("PUT", req.path, query_string="", headers=headers, body=b"",
                       environ=req.environ, script_name=req.script_name,
                       remote_addr=req.remote_addr, host=req.host)
        link.environ.pop("swift.container_update_override", None)
        if listing_params:  # an SLO's etag, for the listing of the link
            link.environ["swift.container_update_override"] = {"etag_params": listing_params}
        link.environ["swift.put_timestamp"] = timestamp.now()
        resp = await self.app(link)
        resp.headers["Etag"] = etag
        resp.headers["X-Object-Version-Id"] = parse_version_object(name)[1] or NULL
        return resp

    async def delete(self, req: Request, account: str, container: str, obj: str,
                     vcont: str) -> Response:
        await self._copy_current(req, account, obj, vcont)
        ts = timestamp.now()
        marker = self._pre(req, "PUT", f"/v1/{account}/{vcont}/{version_object(obj, ts)}",
                           headers={"Content-Type": DELETE_MARKER, "Content-Length": "0"},
                           body=b"")
        marker.environ["swift.put_timestamp"] = ts
        resp = await self.app(marker)
        await self._check(resp)
        resp.close()
        req.environ["swift.delete_timestamp"] = timestamp.now()
        resp = await self.app(req)
        if resp.is_success or resp.status == 404:
            resp.headers["X-Object-Version-Id"] = ts
            resp.headers["X-Backend-Content-Type"] = DELETE_MARKER
        return resp

    async def post(self, req: Request, account: str, vcont: str) -> Response:
        headers = Headers((k, v) for k, v in req.headers.items() if k not in EXPIRY)
        resp = await self.app(req)
        if resp.status != 307 or not true_value(resp.headers.get(SYSMETA_SYMLINK, "")):
            return resp
        location = unquote(resp.headers.get("location", ""))
        if location.startswith(req.script_name + "/"):
            location = location[len(req.script_name):]
        parts = location.split("/", 4)
        if len(parts) == 5 and parts[1:4] == ["v1", account, vcont]:
            resp.close()
            return await self.app(self._pre(req, "POST", location, headers=headers))
        return resp

    async def read(self, req: Request, account: str, container: str, obj: str,
                   vcont: str) -> Response:
        """GET/HEAD of the current version: which one it is."""
        resp = await self.app(req)
        resp.headers["X-Object-Version-Id"] = NULL
        where = unquote(resp.headers.get("content-location", ""))
        if where:
            parts = where.split("/", 4)
            if len(parts) == 5 and parts[2:4] == [account, vcont]:
                version_id = parse_version_object(parts[4])[1]
                if version_id is not None:
                    resp.headers["X-Object-Version-Id"] = version_id
                    resp.headers["Content-Location"] = (
                        quote(f"/v1/{account}/{container}/{obj}") + f"?version-id={version_id}")
        target = unquote(resp.headers.get("x-symlink-target", ""))
        if target:
            tcont, _, tobj = target.partition("/")
            if tcont == vcont:
                version_id = parse_version_object(tobj)[1]
                if version_id is not None:
                    resp.headers["X-Object-Version-Id"] = version_id
                    resp.headers["X-Symlink-Target"] = (
                        quote(f"{container}/{obj}") + f"?version-id={version_id}")
        return resp

    # ================================================================ ?version-id

    async def with_version(self, req: Request, account: str, container: str, obj: str,
                           vcont: str, version_id: str) -> Response:
        if req.method == "POST":
            raise bad(400, "POST to a specific version is not allowed")
        if not vcont and version_id != NULL:
            raise bad(400, "version-aware operations require that the container is "
                           "versioned")
        if not valid_version(version_id):
            raise bad(400, "Invalid version parameter")
        if req.method == "OPTIONS":
            return await self.app(req)
        if req.method == "DELETE":
            return await self.delete_version(req, account, obj, vcont, version_id)
        if req.method == "PUT":
            return await self.restore_version(req, account, obj, vcont, version_id)
        if version_id == NULL:
            resp = await self.app(req)
            if resp.is_success:
                if f"{RESERVED}versions{RESERVED}" in unquote(
                        resp.headers.get("content-location", "")):
                    resp.close()
                    raise fail(404)
                resp.headers["X-Object-Version-Id"] = NULL
            return resp
        path = f"/v1/{account}/{vcont}/{version_object(obj, version_id)}"
        resp = await self.app(self._reroute(req, path))
        if resp.is_success:
            resp.headers["X-Object-Version-Id"] = version_id
        if resp.headers.get("content-type") == DELETE_MARKER:
            resp.close()
            gone = error(404, headers={"X-Object-Version-Id": version_id})
            gone.headers["Content-Type"] = DELETE_MARKER
            raise HTTPError(gone)
        return resp

    async def delete_version(self, req: Request, account: str, obj: str, vcont: str,
                             version_id: str) -> Response:
        if version_id == NULL:
            return await self.app(req)
        await self._authorize(req)
        head = await self.app(self._pre(req, "HEAD", req.path, query="symlink=get"))
        head.close()
        target = None
        if head.status != 404:
            await self._check(head)
            if head.headers.get(SYSMETA_SYMLINK) == "true":
                target = unquote(head.headers.get("x-symlink-target", ""))
        name = version_object(obj, version_id)
        path = f"/v1/{account}/{vcont}/{name}"
        if target != f"{vcont}/{name}":
            current = parse_version_object(target.split("/", 1)[1])[1] or NULL \
                if target else NULL
            # as the caller, on the versions container (no ACLs there: owner only)
            resp = await self.app(self._reroute(req, path))
        else:
            # the current version: its link goes first, as the caller; who may
            # delete that may delete the data behind it (as in Swift, where the
            # first authorization covers the rewritten request too)
            link = await self.app(self._reroute(req, req.path, query=""))
            await self._check(link)
            link.close()
            current = NULL
            resp = await self.app(self._pre(req, "DELETE", path))
        resp.headers["X-Object-Version-Id"] = version_id
        resp.headers["X-Object-Current-Version-Id"] = current
        return resp

    async def restore_version(self, req: Request, account: str, obj: str, vcont: str,
                              version_id: str) -> Response:
        """PUT ?version-id: that version becomes the current one."""
        if version_id == NULL:
            raise bad(400, "Invalid version parameter")
        if req.headers.get("transfer-encoding", "").lower() == "chunked":
            has_body = bool(await req.read_body())
        elif req.content_length is None:
            raise fail(411)
        else:
            has_body = req.content_length != 0
        if has_body:
            raise fail(400, "PUT version-id requests require a zero byte body")
        await self._authorize(req)
        name = version_object(obj, version_id)
        head = await self.app(self._pre(req, "HEAD", f"/v1/{account}/{vcont}/{name}",
                                        query="symlink=get"))
        head.close()
        if head.status == 404:
            info = await self.proxy.container_info(req, account, vcont)
            if info.ok:
                raise fail(404, "The specified version does not exist")
            raise fail(500, NO_VERSIONS_CONTAINER)
        await self._check(head)
        return await self._link(req, vcont, name, head.headers.get("etag", ""),
                                head.headers.get("content-length", "0"),
                                head.headers.get("content-type", ""))


def _slo_listing(put: Request, headers: Headers) -> None:
    """A copied SLO manifest keeps its listing's size and etag."""
    size = headers.get("x-object-sysmeta-slo-size")
    etag = headers.get("x-object-sysmeta-slo-etag")
    if size and etag and headers.get("x-static-large-object"):
        put.environ["swift.container_update_override"] = {
            "etag_params": f"swift_bytes={size}; slo_etag={etag}"}


class _Counter:
    """Counts the bytes of a body as it streams by."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self.body = body
        self.bytes = 0

    async def iterate(self) -> AsyncIterator[bytes]:
        async for chunk in self.body:
            self.bytes += len(chunk)
            yield chunk


__all__ = ["ObjectVersioning"]
