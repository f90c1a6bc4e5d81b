"""Availability zones (``os-availability-zone``): the zones of the compute
hosts, available while a compute service in them is up and enabled; the
other services of the cloud are in Nova's ``internal`` zone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.compute import kinds
from onestack.compute.views.times import micro

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

INTERNAL = "internal"


def _services(svc: ComputeService) -> list[Any]:
    return list(svc.cloud.hosts.services(svc.settings.hosts.service_down_time))


def _zones(svc: ComputeService) -> dict[str, str]:
    from onestack.compute.service.aggregates import host_zones

    with svc.db.read() as s:
        return host_zones(s, svc.conf.default_availability_zone)


def zone_of(svc: ComputeService, view: Any, zones: dict[str, str]) -> str:
    return zones.get(view.host, svc.conf.default_availability_zone)


def available_zone_names(svc: ComputeService) -> set[str]:
    zones = _zones(svc)
    return {zone_of(svc, v, zones) for v in _services(svc)
            if v.binary == kinds.COMPUTE_BINARY and v.alive and not v.disabled}


def list_zones(svc: ComputeService, ctx: AuthContext) -> list[dict[str, Any]]:
    svc.authorize("os_compute_api:os-availability-zone:list", ctx, {})
    computes = [v for v in _services(svc) if v.binary == kinds.COMPUTE_BINARY]
    host_zones = _zones(svc)
    zones: dict[str, bool] = {}
    for view in computes:
        zone = zone_of(svc, view, host_zones)
        zones[zone] = zones.get(zone, False) or (view.alive and not view.disabled)
    return [{"zoneName": name, "zoneState": {"available": up}, "hosts": None}
            for name, up in sorted(zones.items())]


def detail_zones(svc: ComputeService, ctx: AuthContext) -> list[dict[str, Any]]:
    svc.authorize("os_compute_api:os-availability-zone:detail", ctx, {})
    zones: dict[str, dict[str, Any]] = {}
    host_zones = _zones(svc)
    for view in _services(svc):
        if view.binary == kinds.COMPUTE_BINARY:
            zone = zone_of(svc, view, host_zones)
        else:
            zone = INTERNAL
        entry = zones.setdefault(zone, {"zoneName": zone, "zoneState": {"available": False},
                                        "hosts": {}})
        up = view.alive and not view.disabled
        if up:
            entry["zoneState"]["available"] = True
        entry["hosts"].setdefault(view.host, {})[view.binary] = {
            "available": view.alive, "active": not view.disabled,
            "updated_at": micro(view.heartbeat_at),
        }
    return [zones[name] for name in sorted(zones)]
