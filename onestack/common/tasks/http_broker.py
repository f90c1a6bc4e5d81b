"""The broker of an agent on another host: the internal task API over HTTP.

The agent holds an agent credential, never database credentials. Requests
are blocking ``http.client`` calls on kept-alive connections, run in a small
thread pool of the broker's own (a long-polling claim holds a thread while it
waits). This module imports no database code.

Errors: a refused lease (409) is :class:`LeaseLost`; a refused credential
(401/403) and everything else that is not success is :class:`BrokerError`
with the status, so a worker stops on the former and retries the latter.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from onestack.common.tasks.broker import Claim
from onestack.common.tasks.errors import BrokerError, LeaseLost

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# (method, path, body, headers, timeout) -> (status, body)
Transport = Callable[[str, str, bytes | None, dict[str, str], float], tuple[int, bytes]]


class HttpTransport:
    """HTTP/1.1 with a pool of kept-alive connections to one server."""

    def __init__(self, base_url: str) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.https else 80)
        self.prefix = parsed.path.rstrip("/")
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def __call__(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 timeout: float) -> tuple[int, bytes]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        fresh = conn is None
        if conn is None:
            conn = self._connect(timeout)
        with self._lock:
            self._busy.add(conn)
        try:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if fresh:
                    raise
                # a kept-alive connection the server had closed: once more, afresh
                conn.close()
                conn = self._connect(timeout)
                conn.request(method, self.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
            data = response.read()
            with self._lock:
                self._busy.discard(conn)
                if response.will_close:
                    conn.close()
                else:
                    self._idle.append(conn)
            return response.status, data
        except BaseException:
            with self._lock:
                self._busy.discard(conn)
            conn.close()
            raise

    def close(self) -> None:
        """Close every connection - also one a thread waits on (a long poll),
        which then fails at once instead of at its timeout."""
        with self._lock:
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for conn in idle:
            conn.close()
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class HttpBroker:
    """A :class:`~onestack.common.tasks.broker.Broker` over the internal API."""

    def __init__(
        self,
        url: str,
        credential: str,
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        threads: int = 8,
    ) -> None:
        self.url = url.rstrip("/")
        self._credential = credential
        self._transport: Transport = transport or HttpTransport(self.url)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http-broker")

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None,
                    timeout: float | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self._credential}",
                   "Content-Type": "application/json", "Accept": "application/json"}
        raw = json.dumps(body).encode() if body is not None else None
        loop = asyncio.get_running_loop()
        try:
            status, data = await loop.run_in_executor(
                self._pool, self._transport, method, "/internal/v1" + path, raw, headers,
                timeout or self.timeout,
            )
        except OSError as exc:
            raise BrokerError(f"{method} {path}: {exc}") from exc
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        if status == 409:
            raise LeaseLost(_message(parsed, status))
        if status >= 400:
            raise BrokerError(f"{method} {path}: {status} {_message(parsed, status)}",
                              status=status)
        return status, parsed

    async def claim(self, owner: str, host: str | None, kinds: Iterable[str],
                    lease_seconds: float, wait: float) -> Claim | None:
        body = {"owner": owner, "host": host, "kinds": sorted(set(kinds)),
                "lease_seconds": lease_seconds, "wait": wait}
        status, data = await self._call("POST", "/tasks/claim", body, timeout=wait + self.timeout)
        if status == 204 or not isinstance(data, dict) or data.get("task") is None:
            return None
        return Claim.from_json(data["task"])

    def _held(self, claim: Claim, **extra: Any) -> dict[str, Any]:
        return {"owner": claim.owner, "claim_token": claim.claim_token, **extra}

    async def heartbeat(self, claim: Claim, lease_seconds: float) -> bool:
        _, data = await self._call("POST", f"/tasks/{_quote(claim.id)}/heartbeat",
                                   self._held(claim, lease_seconds=lease_seconds))
        return bool(data and data.get("cancel_requested"))

    async def progress(self, claim: Claim, progress: Mapping[str, Any]) -> bool:
        _, data = await self._call("POST", f"/tasks/{_quote(claim.id)}/progress",
                                   self._held(claim, progress=dict(progress)))
        return bool(data and data.get("cancel_requested"))

    async def _report(self, claim: Claim, what: str, **extra: Any) -> bool:
        try:
            await self._call("POST", f"/tasks/{_quote(claim.id)}/{what}",
                             self._held(claim, **extra))
        except LeaseLost:
            return False
        return True

    async def complete(self, claim: Claim, result: Mapping[str, Any] | None) -> bool:
        return await self._report(claim, "complete",
                                  result=dict(result) if result is not None else None)

    async def fail(self, claim: Claim, error: str, retry: bool | None) -> bool:
        return await self._report(claim, "fail", error=error or "failed", retry=retry)

    async def release(self, claim: Claim) -> bool:
        return await self._report(claim, "release")

    async def interrupt(self, owner: str) -> None:
        await self._call("POST", "/claims/interrupt", {"owner": owner}, timeout=5)

    async def host_heartbeat(self, host: str, binary: str, **info: Any) -> None:
        await self._call("PUT", f"/services/{_quote(binary)}", {"host": host, **info})

    def fenced(self, claim: Claim) -> AbstractContextManager[Session]:
        raise RuntimeError(
            "an agent has no database: report through the task's result or progress "
            "(the kind's hooks write the resource in the API)"
        )

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _message(body: Any, status: int) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return f"HTTP {status}"
