"""Remote consoles: short-lived tokens for a server's serial console (a
websocket) and its VNC console (noVNC, served from the same listener), as
Nova's console proxies hand them out; only the token's SHA-256 is kept."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import delete, select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.compute import states
from onestack.compute.models import ConsoleToken, Server
from onestack.compute.service._common import find, start_action

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# (protocol, type) pairs this cloud serves, and the console kind behind each.
SUPPORTED = {("serial", "serial"): "serial", ("vnc", "novnc"): "novnc"}
KNOWN_PROTOCOLS = {"vnc", "spice", "serial", "rdp", "mks"}


@dataclass(frozen=True)
class Connection:
    server_id: str
    console_type: str
    host: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_for(svc: ComputeService, console_type: str, token: str) -> str:
    base = svc.settings.base_url
    if console_type == "serial":
        return base.replace("http", "ws", 1) + f"/compute/console/serial?token={token}"
    path = quote(f"compute/console/vnc?token={token}", safe="")
    return f"{base}/compute/novnc/vnc_lite.html?path={path}"


def create(svc: ComputeService, ctx: AuthContext, server_id: str, protocol: str,
           console_type: str) -> str:
    """A console URL with a new token (Nova's 400/409 when it cannot be had)."""
    kind = SUPPORTED.get((protocol, console_type))
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-remote-consoles", lock=True)
        if kind is None:
            if protocol in KNOWN_PROTOCOLS:
                raise BadRequest(f"Unavailable console type {console_type}.")
            raise BadRequest(f"Invalid console type {console_type}")
        if server.host is None or server.vm_state not in (states.ACTIVE, states.PAUSED,
                                                          states.RESCUED, states.RESIZED):
            raise Conflict(f"Instance {server.id} is not ready")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        s.execute(delete(ConsoleToken).where(ConsoleToken.expires_at < now))
        s.add(ConsoleToken(token_hash=_hash(token), server_id=server.id, console_type=kind,
                           host=server.host, created_at=now,
                           expires_at=now + timedelta(seconds=svc.conf.console_token_ttl)))
        start_action(s, server, "get_console", ctx)
    return url_for(svc, kind, token)


def connect(svc: ComputeService, token: str | None, console_type: str) -> Connection:
    """The server a console token opens, if it is valid and unexpired."""
    if not token:
        raise NotFound("The token is missing.")
    with svc.db.read() as s:
        row = s.get(ConsoleToken, _hash(token))
        if row is None or row.console_type != console_type or row.expires_at < utcnow():
            raise NotFound("The token has expired or is invalid.")
        server = s.execute(select(Server.id).where(Server.id == row.server_id,
                                                   Server.deleted.is_(False))).scalar()
        if server is None:
            raise NotFound("The token has expired or is invalid.")
        return Connection(row.server_id, row.console_type, row.host)
