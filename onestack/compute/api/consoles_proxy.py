"""The console proxy, on the cloud's own listener: ``/compute/console/serial``
and ``/compute/console/vnc`` are websockets that join a client holding a
console token to the guest's serial or VNC socket on this host; noVNC's
files are served at ``/compute/novnc/`` (Debian's ``novnc`` package).

``POST /servers/{id}/remote-consoles`` (2.6+) and the older
``os-getSerialConsole`` / ``os-getVNCConsole`` actions hand out the URLs."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from onestack.common.errors import NotFound
from onestack.common.web import json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call, compute
from onestack.compute.service import consoles
from onestack.compute.validation import validate

LOG = logging.getLogger(__name__)
NOVNC = Path("/usr/share/novnc")


async def remote_console(request: Request) -> Response:
    c = await call(request)
    c.require("2.6")
    data = await body(request, {"type": "object", "properties": {"remote_console": {
        "type": "object",
        "properties": {"protocol": {"type": "string",
                                    "enum": ["vnc", "spice", "serial", "rdp", "mks"]},
                       "type": {"type": "string",
                                "enum": ["novnc", "xvpvnc", "rdp-html5", "spice-html5",
                                         "serial", "webmks"]}},
        "required": ["protocol", "type"], "additionalProperties": False}},
        "required": ["remote_console"], "additionalProperties": False})
    params = data["remote_console"]
    url = await run(consoles.create, c.svc, c.ctx, request.path_params["server_id"],
                    params["protocol"], params["type"])
    return json_response({"remote_console": {"protocol": params["protocol"],
                                             "type": params["type"], "url": url}})


async def legacy_console(c: Call, sid: str, data: dict[str, Any]) -> Response:
    """``os-getSerialConsole`` / ``os-getVNCConsole`` (before 2.6)."""
    name = next(iter(data))
    protocol = "serial" if name == "os-getSerialConsole" else "vnc"
    validate({"type": "object", "properties": {name: {
        "type": "object", "properties": {"type": schemas.STRING}, "required": ["type"],
        "additionalProperties": False}}, "required": [name], "additionalProperties": False},
        data)
    kind = data[name]["type"]
    url = await run(consoles.create, c.svc, c.ctx, sid, protocol, kind)
    return json_response({"console": {"type": kind, "url": url}})


async def _proxy(ws: WebSocket, console_type: str) -> None:
    import anyio

    svc = compute(ws)  # type: ignore[arg-type]
    try:
        conn = await run(consoles.connect, svc, ws.query_params.get("token"), console_type)
        agent = svc.host_calls
        if agent is None or agent.host != conn.host:
            raise NotFound("The console's host is not reachable from here.")
        path = await (agent.serial_console(conn.server_id) if console_type == "serial"
                      else agent.vnc_console(conn.server_id))
        stream = await anyio.connect_unix(str(path))
    except Exception as exc:  # a bad token, a guest without that console, a gone socket
        LOG.info("console connection refused: %s", exc)
        await ws.close(code=1008)
        return
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol="binary" if "binary" in offered else None)

    async def from_guest(tg: anyio.abc.TaskGroup) -> None:
        try:
            while True:
                await ws.send_bytes(await stream.receive(65536))
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
                RuntimeError, WebSocketDisconnect):
            pass
        tg.cancel_scope.cancel()

    async def to_guest(tg: anyio.abc.TaskGroup) -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None and message.get("text") is not None:
                    data = message["text"].encode()
                if data:
                    await stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, WebSocketDisconnect):
            pass
        tg.cancel_scope.cancel()

    async with stream:
        async with anyio.create_task_group() as tg:
            tg.start_soon(from_guest, tg)
            tg.start_soon(to_guest, tg)
    with contextlib.suppress(Exception):
        await ws.close()


async def serial_proxy(ws: WebSocket) -> None:
    await _proxy(ws, "serial")


async def vnc_proxy(ws: WebSocket) -> None:
    await _proxy(ws, "novnc")


async def novnc_file(request: Request) -> Response:
    rel = request.path_params.get("path") or "vnc_lite.html"
    target = (NOVNC / rel).resolve()
    if not str(target).startswith(str(NOVNC.resolve()) + "/") or not target.is_file():
        raise NotFound("The resource could not be found.")
    return FileResponse(target)


routes = [
    Route("/v2.1/servers/{server_id}/remote-consoles", remote_console, methods=["POST"]),
    WebSocketRoute("/console/serial", serial_proxy),
    WebSocketRoute("/console/vnc", vnc_proxy),
    Route("/novnc/{path:path}", novnc_file, methods=["GET", "HEAD"]),
]
