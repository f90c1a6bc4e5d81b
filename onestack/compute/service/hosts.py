"""``os-hypervisors`` and ``os-services``: the compute hosts as their agents
report them (``compute_node``) and the services of the host table (the
foundation's heartbeats): ``nova-compute`` for each compute agent, and the
API process as ``nova-conductor`` (it runs the conductor's and scheduler's
work)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.microversions import APIVersion
from onestack.compute import kinds
from onestack.compute.models import ComputeNode, Server
from onestack.compute.scheduler.hosts import usage

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

API_BINARY = "onestack-api"
_SHOWN = {kinds.COMPUTE_BINARY: kinds.COMPUTE_BINARY, API_BINARY: "nova-conductor"}


def _services(svc: ComputeService, **filters: Any) -> list[Any]:
    return [v for v in svc.cloud.hosts.services(svc.settings.hosts.service_down_time, **filters)
            if v.binary in _SHOWN]


def service_view(svc: ComputeService, view: Any, version: APIVersion) -> dict[str, Any]:
    out = view.as_nova_service(
        svc.conf.default_availability_zone if view.binary == kinds.COMPUTE_BINARY
        else "internal")
    if not version.matches("2.53"):
        out["id"] = legacy_id(view.id)
    out["binary"] = _SHOWN[view.binary]
    if view.binary == kinds.COMPUTE_BINARY:
        from onestack.compute.service.aggregates import zone_of

        out["zone"] = zone_of(svc, view.host)
    if not version.matches("2.11"):
        out.pop("forced_down", None)
    return dict(out)


def legacy_id(uuid: str) -> int:
    """The integer id a service had before 2.53 (stable: from its UUID)."""
    import zlib

    return zlib.crc32(uuid.encode()) & 0x7FFFFFFF


def list_services(svc: ComputeService, ctx: AuthContext, host: str | None,
                  binary: str | None) -> list[Any]:
    svc.authorize("os_compute_api:os-services:list", ctx, {})
    out = []
    for view in _services(svc, host=host):
        if binary is not None and _SHOWN[view.binary] != binary:
            continue
        out.append(view)
    return out


def update_service(svc: ComputeService, ctx: AuthContext, service_id: str,
                   changes: dict[str, Any]) -> Any:
    svc.authorize("os_compute_api:os-services:update", ctx, {})
    view = svc.cloud.hosts.get(service_id, svc.settings.hosts.service_down_time)
    if view is None or view.binary not in _SHOWN:
        raise NotFound(f"Service {service_id} not found.")
    if "forced_down" in changes and view.binary != kinds.COMPUTE_BINARY:
        raise BadRequest("Updating a nova-conductor service is not supported. Only "
                         "nova-compute services can be updated.")
    status = changes.get("status")
    reason = changes.get("disabled_reason")
    if reason is not None and status != "disabled":
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
    svc.cloud.hosts.update(
        service_id,
        disabled=None if status is None else status == "disabled",
        disabled_reason=reason,
        forced_down=changes.get("forced_down"),
    )
    return svc.cloud.hosts.get(service_id, svc.settings.hosts.service_down_time)


def delete_service(svc: ComputeService, ctx: AuthContext, service_id: str) -> None:
    svc.authorize("os_compute_api:os-services:delete", ctx, {})
    view = svc.cloud.hosts.get(service_id, svc.settings.hosts.service_down_time)
    if view is None or view.binary not in _SHOWN:
        raise NotFound(f"Service {service_id} not found.")
    if view.binary == kinds.COMPUTE_BINARY:
        with svc.db.read() as s:
            if s.scalar(select(Server.id).where(Server.host == view.host,
                                                Server.deleted.is_(False)).limit(1)):
                raise Conflict("Unable to delete compute service that is hosting instances. "
                               "Migrate or delete the instances first.")
    svc.cloud.hosts.delete(service_id)
    if view.binary == kinds.COMPUTE_BINARY:
        with svc.db.write() as s:
            node = s.execute(select(ComputeNode).where(ComputeNode.host == view.host)
                             ).scalars().first()
            if node is not None:
                s.delete(node)


# --- hypervisors ---------------------------------------------------------------------


def _nodes(svc: ComputeService, pattern: str | None = None) -> list[ComputeNode]:
    with svc.db.read() as s:
        stmt = select(ComputeNode).order_by(ComputeNode.id)
        if pattern is not None:
            stmt = stmt.where(ComputeNode.hypervisor_hostname.like(f"%{pattern}%"))
        rows = list(s.execute(stmt).scalars())
        s.expunge_all()
        return rows


def _servers_on(svc: ComputeService, host: str) -> list[dict[str, str]]:
    with svc.db.read() as s:
        rows = s.execute(select(Server.id, Server.name).where(Server.host == host,
                                                               Server.deleted.is_(False)))
        return [{"name": name, "uuid": sid} for sid, name in rows]


def hypervisor_view(svc: ComputeService, node: ComputeNode, version: APIVersion, *,
                    detail: bool, with_servers: bool) -> dict[str, Any]:
    views = _services(svc, host=node.host, binary=kinds.COMPUTE_BINARY)
    service = views[0] if views else None
    uuid_ids = version.matches("2.53")
    out: dict[str, Any] = {
        "id": node.uuid if uuid_ids else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if service is not None and service.alive else "down",
        "status": "disabled" if service is not None and service.disabled else "enabled",
    }
    if detail:
        out.update(hypervisor_type=node.hypervisor_type,
                   hypervisor_version=node.hypervisor_version, host_ip=node.host_ip)
        sid = service.id if service is not None else None
        out["service"] = {"id": sid if uuid_ids or sid is None else legacy_id(sid),
                          "host": node.host,
                          "disabled_reason": service.disabled_reason if service else None}
        if version.matches("2.88"):
            out["uptime"] = _uptime()
        else:
            with svc.db.read() as s:
                vcpus, memory, disk = usage(s, node.host)
                running = len(_servers_on(svc, node.host))
            out.update(vcpus=node.vcpus, memory_mb=node.memory_mb, local_gb=node.local_gb,
                       vcpus_used=vcpus, memory_mb_used=memory + node.reserved_memory_mb,
                       local_gb_used=disk, free_ram_mb=node.memory_mb - memory
                       - node.reserved_memory_mb, free_disk_gb=node.local_gb - disk,
                       current_workload=0, running_vms=running,
                       disk_available_least=node.local_gb - disk)
            out["cpu_info"] = dict(node.cpu_info or {}) if version.matches("2.28") else \
                _json(node.cpu_info)
    if with_servers:
        servers = _servers_on(svc, node.host)
        if servers or version.matches("2.75"):
            out["servers"] = servers
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value or {})


def _uptime() -> str:
    try:
        with open("/proc/uptime") as fh:
            seconds = float(fh.read().split()[0])
        load = os.getloadavg()
    except OSError:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return (f" up {days} days, {hours:2d}:{rest // 60:02d}, load average: "
            f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


def list_hypervisors(svc: ComputeService, ctx: AuthContext, pattern: str | None,
                     rule: str) -> list[ComputeNode]:
    svc.authorize(f"os_compute_api:os-hypervisors:{rule}", ctx, {})
    nodes = _nodes(svc, pattern)
    if pattern is not None and not nodes:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return nodes


def get_hypervisor(svc: ComputeService, ctx: AuthContext, hypervisor_id: str,
                   version: APIVersion) -> ComputeNode:
    svc.authorize("os_compute_api:os-hypervisors:show", ctx, {})
    with svc.db.read() as s:
        if version.matches("2.53"):
            node = s.execute(select(ComputeNode).where(ComputeNode.uuid == hypervisor_id)
                             ).scalars().first()
        elif hypervisor_id.isdigit():
            node = s.get(ComputeNode, int(hypervisor_id))
        else:
            node = None
        if node is None:
            raise NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
        s.expunge(node)
        return node


def statistics(svc: ComputeService, ctx: AuthContext) -> dict[str, Any]:
    svc.authorize("os_compute_api:os-hypervisors:statistics", ctx, {})
    totals = dict(count=0, vcpus=0, memory_mb=0, local_gb=0, vcpus_used=0, memory_mb_used=0,
                  local_gb_used=0, free_ram_mb=0, free_disk_gb=0, current_workload=0,
                  running_vms=0, disk_available_least=0)
    from onestack.common.microversions import APIVersion as Version

    for node in _nodes(svc):
        view = hypervisor_view(svc, node, Version(2, 1), detail=True, with_servers=False)
        totals["count"] += 1
        for key in totals:
            if key != "count":
                totals[key] += int(view.get(key) or 0)
    return totals
