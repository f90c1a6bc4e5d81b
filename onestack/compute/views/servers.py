"""Servers as Nova shows them, per microversion: the brief entry of
``GET /servers``, the full one of ``GET /servers/{id}`` and ``/detail``, and
their addresses. Everything a page of servers needs beyond its rows (volume
attachments, host statuses, group memberships) is passed in, read in a few
set-based queries by the service."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onestack.common.microversions import APIVersion
from onestack.compute import states
from onestack.compute.models import Server
from onestack.compute.views.times import micro, zulu

Links = Callable[[str, str], list[dict[str, str]]]

_PROGRESS = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
_FAULT = {"ERROR", "DELETED"}
# Image properties Nova returns at 2.98+ (not served here) are not listed.


@dataclass
class Context:
    """What a view of one or more servers may show, decided once per request."""

    version: APIVersion
    links: Links
    bookmark: Callable[[str], str]
    is_admin: bool = False
    extended: bool = False  # OS-EXT-SRV-ATTR (admin by Nova's policy)
    extra_specs: bool = False  # the embedded flavor's extra specs (2.47+)
    host_status: bool = False  # 2.16+ (admin)
    host_statuses: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    groups: dict[str, list[str]] | None = None  # 2.71: shown by show/update/rebuild only
    at: dict[str, bool] = field(default_factory=dict)  # microversion -> reached (memo)
    _shape: Shape | None = field(default=None, repr=False)

    def since(self, minimum: str) -> bool:
        """``version >= minimum``, memoised (asked for every field of every server)."""
        found = self.at.get(minimum)
        if found is None:
            found = self.at[minimum] = self.version.matches(minimum)
        return found

    @property
    def shape(self) -> Shape:
        """Which optional fields the view has (decided once, not per server)."""
        if self._shape is None:
            since = self.since
            self._shape = Shape(
                v2_3=since("2.3"), v2_9=since("2.9"),
                host_status=since("2.16") and self.host_status, v2_19=since("2.19"),
                v2_26=since("2.26"), v2_47=since("2.47"), v2_63=since("2.63"),
                groups=self.groups is not None and since("2.71"), v2_73=since("2.73"),
                hostname=since("2.90") and not self.extended, v2_96=since("2.96"))
        return self._shape


@dataclass(frozen=True)
class Shape:
    """The microversion and policy decisions of a :class:`Context`, as flags."""

    v2_3: bool
    v2_9: bool
    host_status: bool
    v2_19: bool
    v2_26: bool
    v2_47: bool
    v2_63: bool
    groups: bool
    v2_73: bool
    hostname: bool
    v2_96: bool


_HOST_IDS: dict[tuple[str, str], str] = {}


def host_id(server: Server) -> str:
    """Nova's ``hostId``: SHA-224 of the project and the host (memoised)."""
    if not server.host:
        return ""
    key = (str(server.project_id), server.host)
    found = _HOST_IDS.get(key)
    if found is None:
        if len(_HOST_IDS) > 65536:
            _HOST_IDS.clear()
        found = _HOST_IDS[key] = hashlib.sha224((key[0] + key[1]).encode()).hexdigest()
    return found


def addresses(server: Server, extended: bool = True) -> dict[str, list[dict[str, Any]]]:
    """The server's addresses by network; without ``extended``, only version
    and address (what Nova's rebuild and update answered before 2.75)."""
    if server.vm_state == states.BUILDING:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for vif in server.network_info or []:
        label = vif.get("network_name") or vif.get("network_id")
        entries = out.setdefault(label, [])
        fixed = [ip for ip in vif.get("ips", []) if ip.get("type") != "floating"]
        floating = [ip for ip in vif.get("ips", []) if ip.get("type") == "floating"]
        for ip in [*fixed, *floating]:
            entry = {"version": ip.get("version", 4), "addr": ip["address"]}
            if extended:
                entry["OS-EXT-IPS:type"] = ip.get("type", "fixed")
                entry["OS-EXT-IPS-MAC:mac_addr"] = vif.get("mac")
            entries.append(entry)
    return out


def status(server: Server) -> str:
    if server.deleted:
        return "DELETED"
    return states.status(server.vm_state, server.task_state)


def brief(server: Server, ctx: Context) -> dict[str, Any]:
    return {"id": server.id, "name": server.name, "links": ctx.links("servers", server.id)}


def _flavor(server: Server, ctx: Context) -> dict[str, Any]:
    flavor = server.flavor or {}
    if ctx.shape.v2_47:
        out: dict[str, Any] = {
            "vcpus": flavor.get("vcpus"), "ram": flavor.get("memory_mb"),
            "disk": flavor.get("root_gb"), "ephemeral": flavor.get("ephemeral_gb", 0),
            "swap": flavor.get("swap", 0), "original_name": flavor.get("name"),
        }
        if ctx.extra_specs:
            out["extra_specs"] = dict(flavor.get("extra_specs") or {})
        return out
    flavorid = str(flavor.get("flavorid", server.flavor_id))
    return {"id": flavorid,
            "links": [{"rel": "bookmark", "href": ctx.bookmark(f"/flavors/{flavorid}")}]}


def _image(server: Server, ctx: Context) -> dict[str, Any] | str:
    if not server.image_ref:
        return ""
    return {"id": server.image_ref,
            "links": [{"rel": "bookmark", "href": ctx.bookmark(f"/images/{server.image_ref}")}]}


def _fault(server: Server, ctx: Context) -> dict[str, Any] | None:
    fault = server.fault
    if not fault:
        return None
    out = {"code": fault.get("code", 500), "created": fault.get("created"),
           "message": fault.get("message", "")}
    details = fault.get("details")
    if details and (ctx.is_admin or out["code"] != 500):
        out["details"] = details
    return out


def full(server: Server, ctx: Context, *, minimal: bool = False,
         show_user_data: bool = True) -> dict[str, Any]:
    """The full view; ``minimal`` is what ``PUT /servers/{id}`` answered before 2.75.

    ``server`` is a model instance, or a plain row of the list's columns whose
    times may be SQLite's text (the list does not parse them)."""
    shape = ctx.shape
    shown = status(server)
    sysmeta = server.system_metadata
    out: dict[str, Any] = {
        "accessIPv4": server.access_ip_v4 or "",
        "accessIPv6": server.access_ip_v6 or "",
        "addresses": addresses(server, extended=not minimal),
        "created": zulu(server.created_at),
        "flavor": _flavor(server, ctx),
        "hostId": host_id(server),
        "id": server.id,
        "image": _image(server, ctx),
        "links": ctx.links("servers", server.id),
        "metadata": dict(server.metadata_ or {}),
        "name": server.name,
        "status": shown,
        "tenant_id": server.project_id or "",
        "user_id": server.user_id or "",
        "updated": zulu(server.updated_at),
        "OS-DCF:diskConfig": "AUTO" if sysmeta and sysmeta.get("auto_disk_config")
        else "MANUAL",
    }
    if shown in _FAULT:
        fault = _fault(server, ctx)
        if fault:
            out["fault"] = fault
    if shown in _PROGRESS:
        out["progress"] = server.progress or 0
    if not minimal:
        out["OS-EXT-AZ:availability_zone"] = server.availability_zone or ""
        out["config_drive"] = "True" if server.config_drive else ""
        out["key_name"] = server.key_name
        out["OS-SRV-USG:launched_at"] = micro(server.launched_at)
        out["OS-SRV-USG:terminated_at"] = micro(server.terminated_at)
        if server.network_info and server.security_groups:
            out["security_groups"] = [{"name": n} for n in server.security_groups]
        if ctx.extended:
            _extended(server, out, ctx, show_user_data)
        out["OS-EXT-STS:task_state"] = server.task_state
        out["OS-EXT-STS:vm_state"] = server.vm_state
        out["OS-EXT-STS:power_state"] = server.power_state
        volumes = ctx.volumes.get(server.id)
        out["os-extended-volumes:volumes_attached"] = [
            {"id": vid, "delete_on_termination": dot} if shape.v2_3 else {"id": vid}
            for vid, dot in volumes] if volumes else []
    if shape.v2_9:
        out["locked"] = bool(server.locked)
    if shape.host_status and not minimal:
        out["host_status"] = ctx.host_statuses.get(server.host or "", "")
    if shape.v2_19:
        out["description"] = server.description
    if shape.v2_26:
        out["tags"] = list(server.tags or [])
    if shape.v2_63:
        out["trusted_image_certificates"] = server.trusted_certs or None
    if shape.groups:
        out["server_groups"] = (ctx.groups or {}).get(server.id, [])
    if shape.v2_73:
        out["locked_reason"] = server.locked_reason
    if shape.hostname:
        out["OS-EXT-SRV-ATTR:hostname"] = server.hostname
    if shape.v2_96 and not minimal:
        out["pinned_availability_zone"] = server.requested_availability_zone
    return out


def _extended(server: Server, out: dict[str, Any], ctx: Context, show_user_data: bool) -> None:
    out["OS-EXT-SRV-ATTR:host"] = server.host
    out["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{server.internal_id:08x}"
    out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = server.node
    if ctx.shape.v2_3:
        sysmeta = server.system_metadata or {}
        out["OS-EXT-SRV-ATTR:hostname"] = server.hostname
        out["OS-EXT-SRV-ATTR:kernel_id"] = sysmeta.get("image_kernel_id", "")
        out["OS-EXT-SRV-ATTR:launch_index"] = server.launch_index
        out["OS-EXT-SRV-ATTR:ramdisk_id"] = sysmeta.get("image_ramdisk_id", "")
        out["OS-EXT-SRV-ATTR:reservation_id"] = server.reservation_id
        out["OS-EXT-SRV-ATTR:root_device_name"] = server.root_device_name
        if show_user_data:
            out["OS-EXT-SRV-ATTR:user_data"] = server.user_data


def ips(server: Server, network: str | None = None) -> dict[str, Any]:
    """``/servers/{id}/ips`` (all networks) or ``/ips/{network}``."""
    found = addresses(server)
    shown = {label: [{"version": a["version"], "addr": a["addr"]} for a in entries]
             for label, entries in found.items()}
    if network is None:
        return {"addresses": shown}
    return {network: shown[network]} if network in shown else {}
