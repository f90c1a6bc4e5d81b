"""Smaller server resources: the encrypted password a guest posted
(``os-server-password``), external events from Networking
(``os-server-external-events``), and volume attachments
(``os-volume_attachments``) - shaped for Block Storage, which this cloud
does not run yet, so no volume can be found to attach - and a server's
diagnostics."""

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


# --- diagnostics ---------------------------------------------------------------------------

_POWER_NAMES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed",
                7: "suspended"}


def diagnostics(svc: ComputeService, ctx: AuthContext, server_id: str,
                standard: bool) -> dict[str, Any]:
    """What this cloud knows of a server's guest, in Nova's standard form
    (2.48) or, before, libvirt's keys. The guest's counters (CPU time, disk
    and NIC traffic) are not read from the hypervisor: they are null, as
    Nova's standard form allows."""
    server = get(svc, ctx, server_id, "os_compute_api:os-server-diagnostics")
    if server.host is None:
        from onestack.common.errors import Conflict

        raise Conflict(f"Instance {server.id} is not ready")
    memory_kib = int(server.memory_mb or 0) * 1024
    nics = list(server.network_info or [])
    if not standard:
        return {"memory": memory_kib, "memory-actual": memory_kib}
    uptime = None
    if server.launched_at is not None and server.power_state == 1:
        uptime = int((utcnow() - server.launched_at).total_seconds())
    return {
        "state": _POWER_NAMES.get(int(server.power_state or 0), "pending"),
        "driver": "libvirt", "hypervisor": "qemu", "hypervisor_os": "linux",
        "uptime": uptime, "config_drive": bool(server.config_drive),
        "num_cpus": int(server.vcpus or 0), "num_nics": len(nics), "num_disks": 1,
        "cpu_details": [{"id": i, "time": None, "utilisation": None}
                        for i in range(int(server.vcpus or 0))],
        "nic_details": [{"mac_address": v.get("mac"), "rx_octets": None, "rx_errors": None,
                         "rx_drop": None, "rx_packets": None, "rx_rate": None,
                         "tx_octets": None, "tx_errors": None, "tx_drop": None,
                         "tx_packets": None, "tx_rate": None} for v in nics],
        "disk_details": [{"read_bytes": None, "read_requests": None, "write_bytes": None,
                          "write_requests": None, "errors_count": None}],
        "memory_details": {"maximum": int(server.memory_mb or 0), "used": None},
    }
