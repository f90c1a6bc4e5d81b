"""Account and container GET/HEAD/PUT/POST/DELETE (Swift's controllers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from onestack.objectstore import timestamp
from onestack.objectstore.http import Headers, Request, Response, error, fail, title_case
from onestack.objectstore.proxy import listing
from onestack.objectstore.proxy.base import (
    ACCOUNT_HEADERS,
    CONTAINER_HEADERS,
    Info,
    Proxy,
    best_status,
    check_metadata,
    db_metadata_updates,
    info_from_stat,
)

POLICY = "Policy-0"
HTML = "text/html; charset=UTF-8"


def meta_headers(info: Info, owner: bool) -> Headers:
    """Metadata headers of an account or container (system metadata too, for the
    middlewares: the gatekeeper keeps it from clients, as Swift's does)."""
    h = Headers()
    for key, value in info.meta.items():
        if not owner and key in ("x-container-read", "x-container-write",
                                 "x-container-sync-key", "x-container-sync-to"):
            continue
        h[title_case(key)] = value
    return h


def account_headers(info: Info, owner: bool = True) -> Headers:
    h = meta_headers(info, owner)
    h["X-Account-Container-Count"] = str(info.container_count)
    h["X-Account-Object-Count"] = str(info.object_count)
    h["X-Account-Bytes-Used"] = str(info.bytes_used)
    h["X-Timestamp"] = info.created_at or timestamp.now()
    if info.put_timestamp:
        h["X-Put-Timestamp"] = info.put_timestamp
    if info.container_count:
        h[f"X-Account-Storage-Policy-{POLICY}-Container-Count"] = str(info.container_count)
        h[f"X-Account-Storage-Policy-{POLICY}-Object-Count"] = str(info.object_count)
        h[f"X-Account-Storage-Policy-{POLICY}-Bytes-Used"] = str(info.bytes_used)
    return h


def container_headers(info: Info, owner: bool) -> Headers:
    h = meta_headers(info, owner)
    h["X-Container-Object-Count"] = str(info.object_count)
    h["X-Container-Bytes-Used"] = str(info.bytes_used)
    h["X-Timestamp"] = info.created_at
    h["X-Put-Timestamp"] = info.put_timestamp
    h["Last-Modified"] = timestamp.http_date(info.put_timestamp)
    h["X-Storage-Policy"] = POLICY
    return h


def _listing_response(req: Request, status: int, headers: Headers, body: bytes,
                      ctype: str) -> Response:
    headers["Content-Type"] = f"{ctype}; charset=utf-8"
    headers["Accept-Ranges"] = "bytes"
    if "format" not in req.params:
        headers["Vary"] = "Accept"
    if req.method == "HEAD":
        headers["Content-Length"] = "0"
        return Response(status, b"", headers)
    if not body:
        status = 204
    return Response(status, body, headers)


def clean_acls(req: Request) -> None:
    """Normalise X-Container-Read/Write with the auth system's rules (400 if bad)."""
    clean = req.environ.get("swift.clean_acl")
    for header in ("x-container-read", "x-container-write"):
        value = req.headers.get(header)
        if value is None:
            continue
        if clean is None:
            raise fail(400, "This server does not support ACLs", content_type=HTML)
        try:
            req.headers[header] = clean(header, value)
        except ValueError as exc:
            raise fail(400, str(exc), content_type=HTML) from None


SYNC_HOSTS = ("127.0.0.1",)  # Swift's allowed_sync_hosts default


def check_sync_to(req: Request) -> None:
    """X-Container-Sync-To as Swift's container server checks it (the value is
    kept; container sync itself is not run here)."""
    value = req.headers.get("x-container-sync-to")
    if value is None:
        return
    problem = sync_to_problem(value)
    if problem:
        raise fail(400, problem, content_type=HTML)


def sync_to_problem(value: str) -> str | None:
    """Swift's message for a value it refuses (names shown as Python's ``%r``)."""
    _r = repr
    stripped = value.rstrip("/")
    if not stripped:
        return None
    if stripped.startswith("//"):  # //realm/cluster/account/container: no realms here
        parts = stripped[2:].split("/")
        if len(parts) != 4:
            return f"Invalid X-Container-Sync-To format {_r(value)}"
        return f"No realm key for {_r(parts[0])}"
    p = urlparse(stripped)
    if p.scheme not in ("http", "https"):
        return (f"Invalid scheme {_r(p.scheme)} in X-Container-Sync-To, must be \"//\", "
                f"\"http\", or \"https\".")
    if not p.path:
        return "Path required in X-Container-Sync-To"
    if p.params or p.query or p.fragment:
        return "Params, queries, and fragments not allowed in X-Container-Sync-To"
    if p.hostname not in SYNC_HOSTS:
        return f"Invalid host {_r(p.hostname)} in X-Container-Sync-To"
    return None


class AccountController:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def _where(self, account: str) -> tuple[Any, int, str]:
        ring = self.proxy.cluster.account_ring
        return ring, ring.get_part(account), ring.hash(account)

    async def handle(self, req: Request, account: str) -> Response:
        if req.method in ("GET", "HEAD"):
            return await self.get_or_head(req, account)
        if req.method == "POST":
            return await self.post(req, account)
        if req.method in ("PUT", "DELETE"):
            return error(405, headers={"Allow": "GET, HEAD, OPTIONS, POST"})
        return error(405, headers={"Allow": "GET, HEAD, OPTIONS, POST"})

    async def create(self, req: Request, account: str) -> bool:
        """Account auto-create (on a first write by its owner)."""
        if len(account) > self.proxy.settings.max_account_name_length:
            limit = self.proxy.settings.max_account_name_length
            raise fail(400, f"Account name length of {len(account)} longer than {limit}",
                       content_type=HTML)
        ring, part, name_hash = self._where(account)
        ts = timestamp.now()
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part,
            lambda node, _i: client.db_put("account", node, part, name_hash, account, None, ts,
                                           {}))
        self.proxy.forget(req, account)
        return (best_status(statuses, ring.replicas) or 503) // 100 == 2

    async def get_or_head(self, req: Request, account: str) -> Response:
        s = self.proxy.settings
        ctype = listing.content_type_for(req)
        owner = bool(req.environ.get("swift.owner"))
        if req.method == "HEAD":
            info = await self.proxy.account_info(req, account, fresh=True)
            if info.status == 404:
                return self._fake(req, account, ctype)
            if not info.ok:
                return error(info.status)
            headers = account_headers(info, owner)
            return _listing_response(req, 204, headers, b"", ctype)
        params = listing.listing_params(req, s.account_listing_limit)
        ring, part, name_hash = self._where(account)
        client = self.proxy.client

        async def one(node: Any) -> tuple[int, Any]:
            status, stat, rows = await client.db_list(
                "account", node, part, name_hash, params.limit, params.marker,
                params.end_marker, params.prefix, params.delimiter, params.reverse, False,
                bool(req.environ.get("swift.allow_reserved_names")))
            return status, (stat, rows)

        status, value = await self.proxy.first_success(ring, part, one)
        if status == 404:
            return self._fake(req, account, ctype)
        if value is None or status // 100 != 2:
            return error(status if status >= 400 else 503)
        stat, rows = value
        info = info_from_stat(200, stat)
        entries = listing.container_entries(rows)
        body = listing.render(entries, ctype, "account", account)
        return _listing_response(req, 200, account_headers(info, owner), body, ctype)

    def _fake(self, req: Request, account: str, ctype: str) -> Response:
        """An account that was never written to: empty, as with Swift's autocreate."""
        if not req.environ.get("swift.autocreate_ok", True):
            return error(404)
        ts = timestamp.now()
        info = Info(200, {}, put_timestamp=ts, created_at=ts)
        headers = account_headers(info)
        if req.method == "HEAD":
            return _listing_response(req, 200, headers, b"", ctype)
        body = listing.render([], ctype, "account", account)
        return _listing_response(req, 200, headers, body, ctype)

    async def post(self, req: Request, account: str) -> Response:
        check_metadata(req, "account", self.proxy.settings)
        ts = timestamp.now()
        updates = db_metadata_updates(req.headers, "account", ts, ACCOUNT_HEADERS)
        ring, part, name_hash = self._where(account)
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part, lambda node, _i: client.db_post("account", node, part, name_hash,
                                                        updates))
        best = best_status(statuses, ring.replicas)
        if best == 404:
            if not await self.create(req, account):
                return error(503)
            statuses = await self.proxy.write_all(
                ring, part, lambda node, _i: client.db_post("account", node, part, name_hash,
                                                            updates))
            best = best_status(statuses, ring.replicas)
        self.proxy.forget(req, account)
        if best is None:
            return error(503)
        return Response(204, b"", content_type="text/html; charset=UTF-8") if best == 204 \
            else error(best)


class ContainerController:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.accounts = AccountController(proxy)

    def _where(self, account: str, container: str) -> tuple[Any, int, str]:
        ring = self.proxy.cluster.container_ring
        return ring, ring.get_part(account, container), ring.hash(account, container)

    async def handle(self, req: Request, account: str, container: str) -> Response:
        if req.method in ("GET", "HEAD"):
            return await self.get_or_head(req, account, container)
        if req.method == "PUT":
            return await self.put(req, account, container)
        if req.method == "POST":
            return await self.post(req, account, container)
        if req.method == "DELETE":
            return await self.delete(req, account, container)
        return error(405, headers={"Allow": "DELETE, GET, HEAD, OPTIONS, POST, PUT"})

    async def get_or_head(self, req: Request, account: str, container: str) -> Response:
        s = self.proxy.settings
        ctype = listing.content_type_for(req)
        owner = bool(req.environ.get("swift.owner"))
        if req.method == "HEAD":
            info = await self.proxy.container_info(req, account, container, fresh=True)
            if not info.ok:
                return error(info.status if info.status in (404, 503) else 503)
            return _listing_response(req, 204, container_headers(info, owner), b"", ctype)
        params = listing.listing_params(req, s.container_listing_limit)
        ring, part, name_hash = self._where(account, container)
        client = self.proxy.client

        names_only = ctype == "text/plain"

        async def one(node: Any) -> tuple[int, Any]:
            status, stat, rows = await client.db_list(
                "container", node, part, name_hash, params.limit, params.marker,
                params.end_marker, params.prefix, params.delimiter, params.reverse, names_only,
                bool(req.environ.get("swift.allow_reserved_names")))
            return status, (stat, rows)

        status, value = await self.proxy.first_success(ring, part, one)
        if value is None or status // 100 != 2:
            return error(status if status in (404, 503) else 503)
        stat, rows = value
        info = info_from_stat(200, stat)
        if names_only:
            body = listing.render_names(rows)
        else:
            body = listing.render(listing.object_entries(rows), ctype, "container", container)
        return _listing_response(req, 200, container_headers(info, owner), body, ctype)

    async def _account_ready(self, req: Request, account: str) -> None:
        info = await self.proxy.account_info(req, account)
        if info.status == 404:
            if not req.environ.get("swift.autocreate_ok", True):
                raise fail(404)
            if not await self.accounts.create(req, account):
                raise fail(503)
        elif not info.ok:
            raise fail(503)

    async def put(self, req: Request, account: str, container: str) -> Response:
        s = self.proxy.settings
        if len(container) > s.max_container_name_length:
            raise fail(400, f"Container name length of {len(container)} longer than "
                            f"{s.max_container_name_length}", content_type=HTML)
        check_metadata(req, "container", s)
        clean_acls(req)
        check_sync_to(req)
        await self._account_ready(req, account)
        ts = timestamp.now()
        updates = db_metadata_updates(req.headers, "container", ts, CONTAINER_HEADERS)
        ring, part, name_hash = self._where(account, container)
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part, lambda node, _i: client.db_put("container", node, part, name_hash,
                                                       account, container, ts, updates))
        self.proxy.forget(req, account, container)
        best = best_status(statuses, ring.replicas)
        if best is None or best // 100 != 2:
            return error(best or 503)
        await self.report(account, container, ts, "0")
        self.proxy.forget(req, account)
        if best == 202:
            return error(202)
        return Response(201, b"", content_type="text/html; charset=UTF-8")

    async def report(self, account: str, container: str, put_ts: str, delete_ts: str,
                     count: int = 0, used: int = 0) -> None:
        """Tell the account replicas about this container (best effort: the
        container updater repeats it until it lands)."""
        ring = self.proxy.cluster.account_ring
        part, name_hash = ring.get_part(account), ring.hash(account)
        client = self.proxy.client
        record = (container, put_ts, timestamp.normal(delete_ts), count, used)
        await self.proxy.write_all(
            ring, part, lambda node, _i: client.account_update(node, part, name_hash, account,
                                                               record))

    async def post(self, req: Request, account: str, container: str) -> Response:
        check_metadata(req, "container", self.proxy.settings)
        clean_acls(req)
        check_sync_to(req)
        ts = timestamp.now()
        updates = db_metadata_updates(req.headers, "container", ts, CONTAINER_HEADERS)
        ring, part, name_hash = self._where(account, container)
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part, lambda node, _i: client.db_post("container", node, part, name_hash,
                                                        updates))
        self.proxy.forget(req, account, container)
        best = best_status(statuses, ring.replicas)
        if best is None:
            return error(503)
        if best == 204:
            return Response(204, b"", content_type="text/html; charset=UTF-8")
        return error(best)

    async def delete(self, req: Request, account: str, container: str) -> Response:
        ts = timestamp.now()
        ring, part, name_hash = self._where(account, container)
        client = self.proxy.client
        statuses = await self.proxy.write_all(
            ring, part, lambda node, _i: client.db_delete("container", node, part, name_hash,
                                                          ts))
        self.proxy.forget(req, account, container)
        best = best_status(statuses, ring.replicas)
        if best is None:
            return error(503)
        if best == 204:
            info = await self.proxy.container_info(req, account, container)
            await self.report(account, container, info.put_timestamp or "0", ts)
            self.proxy.forget(req, account, container)
            self.proxy.forget(req, account)
            return Response(204, b"", content_type="text/html; charset=UTF-8")
        return error(best)
