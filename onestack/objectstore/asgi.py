"""The ASGI face of the Swift pipeline: scope in, streamed response out.

Also Swift's ``catch_errors``: every request gets a transaction id
(``X-Trans-Id``, also sent as ``X-Openstack-Request-Id``), an ``HTTPError``
raised anywhere becomes its response, and anything unexpected a logged 500
in Swift's shape (never a traceback to the client).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_to_bytes

from onestack.objectstore.http import (
    Handler,
    HTTPError,
    Request,
    Response,
    default_page,
    error,
)

log = logging.getLogger("onestack.objectstore")
HTML = "text/html; charset=UTF-8"


def new_trans_id(suffix: str = "") -> str:
    return f"tx{os.urandom(11).hex()[:21]}-{int(time.time()):010x}{suffix}"


class AsgiAdapter:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        trans_id = new_trans_id()
        state = scope.setdefault("state", {})
        state["request_id"] = trans_id
        method = scope["method"]
        resp = await self._respond(scope, receive, trans_id)
        if method == "HEAD" and resp.status >= 400 and resp.body == default_page(resp.status):
            resp.headers["Content-Length"] = "0"  # swob makes that page for a GET only
        headers = [(k.encode("latin-1"), _header_value(v)) for k, v in _out_headers(resp)]
        headers.append((b"x-trans-id", trans_id.encode()))
        try:
            await send({"type": "http.response.start", "status": resp.status, "headers": headers})
            body = resp.body
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
            elif isinstance(body, bytes):
                await send({"type": "http.response.body", "body": body})
            else:
                async for chunk in body:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        finally:
            resp.close()

    async def _respond(self, scope: dict[str, Any], receive: Any, trans_id: str) -> Response:
        try:
            req = _request(scope, receive, trans_id)
        except HTTPError as exc:
            return exc.response
        try:
            return await self.handler(req)
        except HTTPError as exc:
            return exc.response
        except ClientDisconnect:
            return error(499)
        except Exception:
            log.exception("%s %s: unexpected error (%s)", req.method, req.path, trans_id)
            return error(500)


class ClientDisconnect(Exception):
    pass


def _request(scope: dict[str, Any], receive: Any, trans_id: str) -> Request:
    root = scope.get("root_path", "")
    raw: bytes | None = scope.get("raw_path")
    path: str = scope["path"]
    if raw is not None:
        raw = raw.split(b"?", 1)[0]
        if raw.startswith(root.encode()):
            try:
                path = unquote_to_bytes(raw[len(root):]).decode("utf-8")
            except UnicodeDecodeError:
                raise HTTPError(error(412, "Invalid UTF8 or contains NULL", content_type=HTML)) \
                    from None
    if "\x00" in path:
        raise HTTPError(error(412, "Invalid UTF8 or contains NULL", content_type=HTML))
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    client = scope.get("client") or ("", 0)
    host = ""
    for k, v in headers:
        if k == "host":
            host = v
    environ = {"swift.trans_id": trans_id, "swift.info_cache": {}}
    return Request(scope["method"], path or "/",
                   query_string=scope.get("query_string", b"").decode("latin-1"),
                   headers=headers, body=_body(receive), environ=environ,
                   script_name=root, remote_addr=client[0], host=host)


async def _body(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _out_headers(resp: Response) -> list[tuple[str, str]]:
    out = []
    for k, v in resp.headers.items():
        if k.startswith("x-backend-") or k == "x-trans-id":
            continue
        out.append((_title(k), v))
    return out


def _header_value(value: str) -> bytes:
    """Header values go out as latin-1; text beyond it as its UTF-8 bytes (what
    Swift's WSGI strings carry, e.g. an object name in Content-Location)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


_TITLES: dict[str, str] = {}


def _title(name: str) -> str:
    t = _TITLES.get(name)
    if t is None:
        t = "-".join(p.capitalize() for p in name.split("-"))
        if len(_TITLES) < 4096:
            _TITLES[name] = t
    return t
