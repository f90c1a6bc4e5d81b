"""Smaller server resources: the encrypted password a guest posted
(``os-server-password``), external events from Networking
(``os-server-external-events``), and volume attachments
(``os-volume_attachments``) - shaped for Block Storage, which this cloud
does not run yet, so no volume can be found to attach."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound
from onestack.common.ids import utcnow
from onestack.compute.models import Server, VolumeAttachment
from onestack.compute.service import interfaces
from onestack.compute.service._common import find, get

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_PW = "os_compute_api:os-server-password:"
_VA = "os_compute_api:os-volumes-attachments:"


def password(svc: ComputeService, ctx: AuthContext, server_id: str) -> str:
    return get(svc, ctx, server_id, _PW + "show").password or ""


def clear_password(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _PW + "clear", lock=True)
        server.password = None
        server.updated_at = utcnow()


def external_events(svc: ComputeService, ctx: AuthContext,
                    events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Accept Networking's events; returns them with their codes, and whether
    any named a server that exists."""
    svc.authorize("os_compute_api:os-server-external-events:create", ctx, {})
    out: list[dict[str, Any]] = []
    found = False
    with svc.db.read() as s:
        known = set(s.execute(select(Server.id).where(
            Server.id.in_([e["server_uuid"] for e in events]),
            Server.deleted.is_(False))).scalars())
    for event in events:
        result = dict(event)
        result.setdefault("status", "completed")
        if event["server_uuid"] not in known:
            result.update(code=404, status="failed")
        else:
            found = True
            result["code"] = 200
            if event["name"] == "network-changed":
                interfaces.network_changed(svc, event["server_uuid"])
        out.append(result)
    return out, found


def volume_attachments(svc: ComputeService, ctx: AuthContext,
                       server_id: str) -> list[VolumeAttachment]:
    server = get(svc, ctx, server_id, _VA + "index")
    with svc.db.read() as s:
        rows = list(s.execute(select(VolumeAttachment)
                              .where(VolumeAttachment.server_id == server.id)
                              .order_by(VolumeAttachment.created_at)).scalars())
        s.expunge_all()
        return rows


def volume_attachment(svc: ComputeService, ctx: AuthContext, server_id: str,
                      volume_id: str, rule: str = "show") -> VolumeAttachment:
    server = get(svc, ctx, server_id, _VA + rule)
    with svc.db.read() as s:
        row = s.execute(select(VolumeAttachment).where(
            VolumeAttachment.server_id == server.id,
            VolumeAttachment.volume_id == volume_id)).scalars().first()
        if row is None:
            raise NotFound(f"volume_id not found: {volume_id}")
        s.expunge(row)
        return row


def attach_volume(svc: ComputeService, ctx: AuthContext, server_id: str, volume_id: str) -> None:
    get(svc, ctx, server_id, _VA + "create")
    raise NotFound(f"Volume {volume_id} could not be found.")
