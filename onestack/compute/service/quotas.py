"""Quota sets and limits: Nova's ``os-quota-sets`` and ``/limits``.

Limits are ``common.quota`` rows of the ``compute`` service; usage is counted
from the database when asked (Nova's counting quotas, no reservations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest
from onestack.compute import schemas

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-quota-sets:"


def visible_resources(version_236: bool, version_257: bool) -> list[str]:
    if version_257:
        return list(schemas.QUOTA_RESOURCES_V257)
    if version_236:
        return list(schemas.QUOTA_RESOURCES_V236)
    return list(schemas.QUOTA_RESOURCES_ALL)


def verify_project(svc: ComputeService, project_id: str) -> None:
    """Nova's identity check of a project id named in a URL (400 if unknown)."""
    from onestack.identity import interface as identity

    if identity.get_project(svc.cloud, project_id) is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")


def show(svc: ComputeService, ctx: AuthContext, project_id: str, names: list[str]) -> dict[str, int]:
    svc.authorize(_ROOT + "show", ctx, {"project_id": project_id})
    verify_project(svc, project_id)
    with svc.db.read() as s:
        limits = svc.quotas.limits(s, project_id)
    return {name: limits[name] for name in names}


def detail(svc: ComputeService, ctx: AuthContext, project_id: str,
           names: list[str]) -> dict[str, dict[str, int]]:
    svc.authorize(_ROOT + "detail", ctx, {"project_id": project_id})
    verify_project(svc, project_id)
    with svc.db.read() as s:
        usage = svc.quotas.usage(s, project_id, names)
    return {name: {"in_use": u.in_use, "limit": u.limit, "reserved": 0}
            for name, u in usage.items()}


def defaults(svc: ComputeService, ctx: AuthContext, project_id: str,
             names: list[str]) -> dict[str, int]:
    svc.authorize(_ROOT + "defaults", ctx, {"project_id": project_id})
    verify_project(svc, project_id)
    with svc.db.read() as s:
        values = svc.quotas.class_limits(s)
    return {name: values[name] for name in names}


def update(svc: ComputeService, ctx: AuthContext, project_id: str, values: dict[str, Any],
           names: list[str]) -> dict[str, int]:
    svc.authorize(_ROOT + "update", ctx, {"project_id": project_id})
    verify_project(svc, project_id)
    force = schemas.is_true(values.pop("force", False))
    limits = {name: int(value) for name, value in values.items()}
    with svc.db.write() as s:
        if not force:
            usage = svc.quotas.usage(s, project_id, list(limits))
            for name, limit in limits.items():
                in_use = usage[name].in_use
                if limit != -1 and limit < in_use:
                    raise BadRequest(
                        f"Quota limit {limit} for {name} must be greater than or equal to "
                        f"already used and reserved {in_use}.")
        svc.quotas.set_limits(s, project_id, limits)
        current = svc.quotas.limits(s, project_id)
    return {name: current[name] for name in names}


def reset(svc: ComputeService, ctx: AuthContext, project_id: str) -> None:
    svc.authorize(_ROOT + "delete", ctx, {"project_id": project_id})
    verify_project(svc, project_id)
    with svc.db.write() as s:
        svc.quotas.reset(s, project_id)


# --- /limits -------------------------------------------------------------------------

_ABSOLUTE = {
    "ram": ["maxTotalRAMSize"],
    "instances": ["maxTotalInstances"],
    "cores": ["maxTotalCores"],
    "key_pairs": ["maxTotalKeypairs"],
    "floating_ips": ["maxTotalFloatingIps"],
    "metadata_items": ["maxServerMeta", "maxImageMeta"],
    "injected_files": ["maxPersonality"],
    "injected_file_content_bytes": ["maxPersonalitySize"],
    "security_groups": ["maxSecurityGroups"],
    "security_group_rules": ["maxSecurityGroupRules"],
    "server_groups": ["maxServerGroups"],
    "server_group_members": ["maxServerGroupMembers"],
}
_USED = {
    "totalRAMUsed": "ram",
    "totalCoresUsed": "cores",
    "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
_FILTERED_236 = {"floating_ips", "security_groups", "security_group_rules"}
_FILTERED_257 = _FILTERED_236 | {"injected_files", "injected_file_content_bytes"}


def limits(svc: ComputeService, ctx: AuthContext, tenant_id: str | None, *, v236: bool,
           v239: bool, v257: bool) -> dict[str, Any]:
    svc.authorize("os_compute_api:limits", ctx, {})
    project_id = ctx.project_id
    if tenant_id is not None:
        svc.authorize("os_compute_api:limits:other_project", ctx)
        project_id = tenant_id
    filtered = _FILTERED_257 if v257 else _FILTERED_236 if v236 else set()
    wanted = [n for n in _ABSOLUTE if n not in filtered]
    with svc.db.read() as s:
        usage = svc.quotas.usage(s, project_id, wanted)
    absolute: dict[str, int] = {}
    for name in wanted:
        for shown in _ABSOLUTE[name]:
            if v239 and shown == "maxImageMeta":
                continue
            absolute[shown] = usage[name].limit
    for shown, name in _USED.items():
        if name in usage:
            absolute[shown] = usage[name].in_use
    return {"rate": [], "absolute": absolute}
