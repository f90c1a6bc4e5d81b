"""Smaller server resources: the encrypted password a guest posted
(``os-server-password``), external events from Networking
(``os-server-external-events``), and volume attachments
(``os-volume_attachments``) - shaped for Block Storage, which this cloud
does not run yet, so no volume can be found to attach - and a server's
diagnostics."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.compute.models import Server, VolumeAttachment
from onestack.compute.service import interfaces
from onestack.compute.service._common import find, get
from onestack.compute.virt.base import Diagnostics

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
            elif event["name"] == "network-vif-deleted" and event.get("tag"):
                interfaces.network_changed(svc, event["server_uuid"], frozenset([event["tag"]]))
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

# Nova's power_state.STATE_MAP: the names its 409 and the 2.48 ``state`` use.
_POWER_NAMES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed",
                7: "suspended"}


def diagnostics_target(svc: ComputeService, ctx: AuthContext, server_id: str) -> Server:
    """The server whose guest the host's driver is asked about (policy checked;
    Nova's 409 for a server not on a host yet)."""
    server = get(svc, ctx, server_id, "os_compute_api:os-server-diagnostics")
    if server.host is None:
        raise Conflict(f"Instance {server.id} is not ready")
    return server


def not_running(server: Server) -> Conflict:
    """Nova's answer when the guest does not run (the state the database records)."""
    state = _POWER_NAMES.get(int(server.power_state or 0), "pending")
    return Conflict(f"Cannot 'get_diagnostics' instance {server.id} while it is in "
                    f"power state {state}")


def diagnostics_view(server: Server, diag: Diagnostics, standard: bool) -> dict[str, Any]:
    """The driver's counters in Nova's standard form (2.48) or, before, the
    libvirt driver's flat keys (``cpu0_time``, ``vda_read``, ``tap…_rx``,
    ``memory`` in KiB)."""
    if not standard:
        return _flat(server, diag)
    return {
        "state": _POWER_NAMES.get(int(diag.state), "pending"),
        "driver": "libvirt", "hypervisor": "qemu", "hypervisor_os": "linux",
        "uptime": diag.uptime, "config_drive": diag.config_drive,
        "num_cpus": diag.num_cpus, "num_nics": len(diag.nic_details),
        "num_disks": len(diag.disk_details),
        "cpu_details": [{"id": c.id, "time": c.time, "utilisation": c.utilisation}
                        for c in diag.cpu_details],
        "nic_details": [asdict(n) for n in diag.nic_details],
        "disk_details": [asdict(d) for d in diag.disk_details],
        "memory_details": {"maximum": diag.memory_max_mb, "used": diag.memory_used_mb},
    }


def _flat(server: Server, diag: Diagnostics) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cpu in diag.cpu_details:
        if cpu.time is not None:
            out[f"cpu{cpu.id}_time"] = cpu.time
    for index, disk in enumerate(diag.disk_details):
        name = "vd" + chr(ord("a") + index) if index < 26 else f"vd{index}"
        for key, value in (("read_req", disk.read_requests), ("read", disk.read_bytes),
                           ("write_req", disk.write_requests), ("write", disk.write_bytes),
                           ("errors", disk.errors_count)):
            if value is not None:
                out[f"{name}_{key}"] = value
    taps = {v.get("mac"): "tap" + str(v.get("port_id"))[:11]
            for v in server.network_info or []}
    for nic in diag.nic_details:
        tap = taps.get(nic.mac_address)
        if tap is None:
            continue
        for key, value in (("rx", nic.rx_octets), ("rx_packets", nic.rx_packets),
                           ("rx_errors", nic.rx_errors), ("rx_drop", nic.rx_drop),
                           ("tx", nic.tx_octets), ("tx_packets", nic.tx_packets),
                           ("tx_errors", nic.tx_errors), ("tx_drop", nic.tx_drop)):
            if value is not None:
                out[f"{tap}_{key}"] = value
    out["memory"] = diag.memory_max_mb * 1024
    if diag.memory_used_mb is not None:
        out["memory-actual"] = diag.memory_used_mb * 1024
    return out
