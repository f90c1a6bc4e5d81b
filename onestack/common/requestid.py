"""Request ids and the access log: one pure-ASGI middleware.

Every response carries ``X-OpenStack-Request-ID`` (``req-<uuid>``, or the id a
service put in ``scope["state"]["request_id"]``, e.g. Swift's ``tx...``); every
request is logged once, with its id, method, path, status and duration.

The access log sits on the hot path of every request, so it bypasses the
``logging`` machinery: a line is one f-string appended to a buffer, and a
background thread writes the buffer out in one call every 0.2 s (and at
exit). It is on when the ``onestack.access`` logger is enabled for INFO.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import uuid
from typing import IO, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("onestack.access")


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


class AccessLog:
    """Buffered access-log writer: cheap appends, batched writes."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stamp_second = -1
        self._stamp = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def stamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        return self._stamp

    def write(self, line: str) -> None:
        self._lines.append(line)  # list.append is atomic under the GIL
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if lines:
                stream = self.stream or sys.stderr
                stream.write("\n".join(lines) + "\n")
                stream.flush()


access_log = AccessLog()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                # a service may name the request its own way (Swift's transaction id)
                request_id = state.get("request_id", request_id)
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                elapsed = (time.perf_counter() - started) * 1000
                access_log.write(
                    f"{access_log.stamp()} INFO onestack.access {request_id} "
                    f"{scope.get('method')} {scope.get('path')} {status} {elapsed:.1f}ms"
                )
