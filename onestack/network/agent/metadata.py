"""The metadata proxy: ``http://169.254.169.254/`` inside each network.

Neutron runs a haproxy per router (port 9697, where the router's NAT
redirects the guests' metadata requests) and per isolated network (on
169.254.169.254:80 in the DHCP namespace). Here one process serves them all:
each listening socket is made inside its namespace (``host.sockets``) and
served on the cloud's event loop - no extra daemon.

A request is identified by where it comes from: the network(s) behind the
socket and the source address give the instance's port (its ``device_id``
and project). It is forwarded to Compute's metadata service with Neutron's
headers ``X-Instance-ID``, ``X-Tenant-ID`` and ``X-Instance-ID-Signature``
(HMAC-SHA256 of the instance id with the shared secret) plus
``X-Forwarded-For``, and Compute's answer is relayed as it is. Without an
instance behind the address, or without Compute, the answer is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HEAD = 16384
MAX_BODY = 1 << 20
TIMEOUT = 30.0

NOT_FOUND = b"404 Not Found\n\nThe resource could not be found.\n\n   "
BAD_REQUEST = b"400 Bad Request\n\nThe server could not comply with the request since it is either malformed or otherwise incorrect.\n\n   "  # noqa: E501


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source: str  # the guest's address


# (the key of the socket, the request) -> the whole HTTP response to send
Handler = Callable[[str, Request], Awaitable[bytes]]


def response(status: int, reason: str, body: bytes, content_type: str = "text/plain; charset=UTF-8") -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def not_found() -> bytes:
    return response(404, "Not Found", NOT_FOUND)


async def read_request(reader: asyncio.StreamReader, source: str) -> Request | None:
    """One HTTP/1.x request; None if it is malformed or too large."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers.append((name.strip().lower(), value.strip()))
    length = 0
    for name, value in headers:
        if name == "content-length":
            if not value.isdigit() or int(value) > MAX_BODY:
                return None
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0], parts[1], tuple(headers), body, source)


class MetadataProxy:
    """Listening sockets by key (``router:<id>``, ``network:<id>``) and their servers."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._servers: dict[str, asyncio.base_events.Server] = {}

    def keys(self) -> set[str]:
        return set(self._servers)

    async def ensure(self, key: str, ns: str | None, address: str, port: int) -> bool:
        """Serve ``key`` on ``address:port`` inside ``ns`` (None: this process's own
        namespace); True if it started now."""
        server = self._servers.get(key)
        if server is not None and server.is_serving():
            return False
        from onestack.host.sockets import alisten_in

        sock = await alisten_in(ns, address, port)
        try:
            server = await asyncio.start_server(
                lambda r, w: self._serve(key, r, w), sock=sock, limit=MAX_HEAD)
        except BaseException:
            sock.close()
            raise
        self._servers[key] = server
        return True

    async def remove(self, key: str) -> bool:
        server = self._servers.pop(key, None)
        if server is None:
            return False
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        return True

    async def close(self) -> None:
        for key in list(self._servers):
            await self.remove(key)

    async def _serve(self, key: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peername")
            source = str(peer[0]) if peer else ""
            request = await asyncio.wait_for(read_request(reader, source), TIMEOUT)
            if request is None:
                answer = response(400, "Bad Request", BAD_REQUEST)
            else:
                answer = await asyncio.wait_for(self.handler(key, request), TIMEOUT)
            writer.write(answer)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("metadata proxy (%s) failed", key)
            with contextlib.suppress(Exception):
                writer.write(response(500, "Internal Server Error", b"500 Internal Server Error\n"))
        finally:
            with contextlib.suppress(Exception):
                writer.close()


HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length",
               "x-instance-id", "x-tenant-id", "x-instance-id-signature", "x-forwarded-for"}


async def forward(host: str, port: int, prefix: str, request: Request, instance_id: str,
                  project_id: str, signature: str) -> bytes:
    """Sends the guest's request on to Compute's metadata service at
    ``http://host:port<prefix><path>`` with the signed headers; its whole
    response comes back (relayed as it is)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{request.method} {prefix}{request.path} HTTP/1.0", f"Host: {host}:{port}",
                 f"X-Instance-ID: {instance_id}", f"X-Tenant-ID: {project_id}",
                 f"X-Instance-ID-Signature: {signature}", f"X-Forwarded-For: {request.source}",
                 "Connection: close", f"Content-Length: {len(request.body)}"]
        for name, value in request.headers:
            if name not in HOP_HEADERS:
                lines.append(f"{name}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def local_address(bind_host: str) -> str:
    """Where this process's own API listener is reached from here."""
    if bind_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host

