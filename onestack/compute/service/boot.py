"""``POST /servers``: check the request, then write the servers (``BUILD`` /
``scheduling``), their group membership, the ``create`` instance action and a
``build`` task each, in one transaction that also holds the quota check.

The build task (:mod:`.conductor`) schedules, plugs the network and hands
the spawn to the chosen host's agent.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from onestack.common.auth import AuthContext
from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import INJECTED_FILES, Server, ServerGroupMember
from onestack.compute.service import boot_checks as checks
from onestack.compute.service._common import SERVERS, start_action
from onestack.compute.views.flavors import snapshot

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService


@dataclass
class BootRequest:
    """A validated ``server`` body, already read for the request's microversion."""

    name: str
    flavor_ref: Any
    image_ref: str = ""
    description: str | None = None
    hostname: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    networks: Any = None  # None (omitted), "auto", "none" or a list of dicts
    key_name: str | None = None
    user_data: str | None = None
    config_drive: bool = False
    security_groups: list[str] | None = None
    availability_zone: str | None = None
    min_count: int = 1
    max_count: int = 1
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    auto_disk_config: bool = False
    trusted_certs: list[str] | None = None
    requested_host: str | None = None
    requested_node: str | None = None
    block_device_mapping: list[dict[str, Any]] = field(default_factory=list)
    # personality (before 2.57): (path, base64 contents), for the config drive
    personality: list[tuple[str, str]] = field(default_factory=list)


def _reservation_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "r-" + "".join(secrets.choice(alphabet) for _ in range(8))


def _parse_zone(svc: ComputeService, ctx: AuthContext, zone: str | None,
                target: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """Nova's ``zone:host:node`` form (forcing a host is an admin's)."""
    if not zone or ":" not in zone:
        return zone, None, None
    parts = zone.split(":")
    if len(parts) > 3:
        raise checks.BadRequest(f"Unable to parse availability_zone '{zone}'")
    zone_name = parts[0] or None
    host = parts[1] if len(parts) > 1 and parts[1] else None
    node = parts[2] if len(parts) > 2 and parts[2] else None
    if host or node:
        svc.authorize(SERVERS + "create:forced_host", ctx, target)
    return zone_name, host, node


def create_servers(svc: ComputeService, ctx: AuthContext, req: BootRequest) -> tuple[list[Server], str]:
    """Make the servers of a boot request; returns them and the reservation id."""
    target = {"project_id": ctx.project_id, "user_id": ctx.user_id,
              "availability_zone": req.availability_zone}
    svc.authorize(SERVERS + "create", ctx, target)
    if req.trusted_certs:
        svc.authorize(SERVERS + "create:trusted_certs", ctx, target)
    zone, forced_host, forced_node = _parse_zone(svc, ctx, req.availability_zone, target)
    if (req.requested_host or req.requested_node):
        svc.authorize("compute:servers:create:requested_destination", ctx, target)
        if forced_host or forced_node:
            raise checks.BadRequest("One mechanism with host and/or hypervisor_hostname and "
                                    "another mechanism with zone:host:node are mutually "
                                    "exclusive.")
    if req.block_device_mapping:
        svc.authorize(SERVERS + "create:attach_volume", ctx, target)
        raise checks.BadRequest(
            "Block Storage is not available: a server cannot be booted with volumes.")
    if req.networks not in (None, "none", "auto") and req.networks:
        svc.authorize(SERVERS + "create:attach_network", ctx, target)
    if req.min_count > req.max_count:
        raise checks.BadRequest("min_count must be <= max_count")
    checks.check_not_ambiguous_hostname(req.hostname, req.max_count)
    if not req.image_ref:
        raise checks.BadRequest("Block Device Mapping is Invalid: Boot sequence for the "
                                "instance and image/block device mapping combination is not "
                                "valid.")

    image_id = checks.image_id_from_ref(req.image_ref)
    with svc.db.read() as s:
        flavor = checks.find_flavor(svc, ctx, s, req.flavor_ref)
        s.expunge(flavor)
    image = checks.get_image(svc, ctx, image_id)
    checks.check_image(svc, ctx, image, flavor)
    checks.check_user_data(req.user_data)
    checks.check_zone(svc, zone)
    networks = checks.resolve_networks(svc, ctx, req.networks, req.max_count)
    group_names = req.security_groups if req.security_groups else ["default"]
    if req.security_groups and networks:
        svc.network.security_group_ids(ctx, req.security_groups)

    image_props = checks.image_properties(image)
    hints = dict(req.scheduler_hints)
    now = utcnow()
    reservation = _reservation_id()
    requested = [{"network_id": r.network_id, "port_id": r.port_id, "fixed_ip": r.fixed_ip,
                  "tag": r.tag} for r in networks]
    system_metadata: dict[str, Any] = {f"image_{k}": v for k, v in image_props.items()}
    for key in ("min_ram", "min_disk", "disk_format", "container_format"):
        if image.get(key) is not None:
            system_metadata[f"image_{key}"] = str(image[key])
    system_metadata["image_base_image_ref"] = image_id
    if forced_host:
        hints["_forced_host"] = forced_host
    if forced_node:
        hints["_forced_node"] = forced_node
    created: list[Server] = []
    with svc.db.write() as s:
        key_data = None
        if req.key_name is not None:
            key_data = checks.find_keypair(s, ctx.user_id, req.key_name).public_key
        checks.check_metadata(svc, s, ctx.project_id, req.metadata)
        checks.check_injected_files(svc, s, ctx.project_id, req.personality)
        if req.personality:
            system_metadata[INJECTED_FILES] = [list(f) for f in req.personality]
        group = checks.find_group(svc, ctx, s, hints)
        count = checks.instances_allowed(svc, s, ctx.project_id, flavor, req.min_count,
                                         req.max_count)
        if group is not None:
            checks.check_group_members(svc, ctx, s, group, count)
        next_id = int(s.scalar(select(func.coalesce(func.max(Server.internal_id), 0))) or 0) + 1
        for index in range(count):
            server_id = str(uuid.uuid4())
            name = req.name if count == 1 else f"{req.name}-{index + 1}"
            hostname = req.hostname or checks.sanitize_hostname(req.name)
            if not hostname:
                hostname = f"Server-{server_id}"
            elif count > 1 and not req.hostname:
                hostname = f"{hostname}-{index + 1}"
            server = Server(
                id=server_id, internal_id=next_id + index, project_id=ctx.project_id,
                user_id=ctx.user_id, name=name, hostname=hostname, description=req.description,
                image_ref=image_id, flavor_id=flavor.flavorid, flavor=snapshot(flavor),
                vcpus=flavor.vcpus, memory_mb=flavor.memory_mb, root_gb=flavor.root_gb,
                vm_state=states.BUILDING, task_state=states.SCHEDULING, power_state=0,
                requested_availability_zone=zone, availability_zone=zone,
                key_name=req.key_name, key_data=key_data, user_data=req.user_data,
                config_drive=req.config_drive, metadata_=dict(req.metadata),
                system_metadata=dict(system_metadata, auto_disk_config=req.auto_disk_config),
                tags=list(dict.fromkeys(req.tags)), security_groups=list(group_names),
                network_info=[], requested_networks=requested, scheduler_hints=hints,
                trusted_certs=req.trusted_certs, access_ip_v4=req.access_ip_v4,
                access_ip_v6=req.access_ip_v6, launch_index=index, reservation_id=reservation,
                created_at=now, updated_at=now, deleted=False,
            )
            if req.requested_host:
                hints["_requested_host"] = req.requested_host
            if req.requested_node:
                hints["_requested_node"] = req.requested_node
            s.add(server)
            s.flush()
            if group is not None:
                s.add(ServerGroupMember(group_id=group.id, server_id=server_id))
            start_action(s, server, "create", ctx)
            svc.cloud.tasks.enqueue(
                s, kinds.BUILD, {"server": server_id}, resource_key=kinds.resource_key(server_id),
                idempotency_key=f"build:{server_id}",
            )
            created.append(server)
        s.flush()
        for server in created:
            s.expunge(server)
    return created, reservation
