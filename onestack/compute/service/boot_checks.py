"""The checks a boot request passes before anything is written, with Nova's
errors: flavor, image (status, ``min_ram``, ``min_disk``, size), key pair,
user data, metadata, networks and ports, security groups, server group,
availability zone and the instance quotas (``min_count``..``max_count``)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from onestack.compute.models import Flavor, KeyPair, ServerGroup
from onestack.compute.networking.base import (
    NetworkAmbiguous,
    PortInUse,
    PortNotFound,
    RequestedNetwork,
)
from onestack.compute.service import flavors as flavor_service
from onestack.compute.usage import count_group_members, count_servers

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

GiB = 1 << 30

# Glance's own image attributes; every other key of an image is a property.
IMAGE_ATTRIBUTES = {
    "id", "name", "status", "visibility", "owner", "disk_format", "container_format", "size",
    "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "min_disk", "min_ram",
    "protected", "os_hidden", "tags", "created_at", "updated_at", "self", "file", "schema",
    "locations", "direct_url", "stores",
}


def image_properties(image: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in image.items() if k not in IMAGE_ATTRIBUTES and v is not None}


def find_flavor(svc: ComputeService, ctx: AuthContext, s: Session, flavor_ref: Any) -> Flavor:
    """The requested flavor (an id or a link ending in one); Nova's 400 if unknown."""
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    try:
        flavor = flavor_service.find(svc, ctx, s, flavor_id)
    except NotFound:
        raise BadRequest(f"Flavor {flavor_id} could not be found.") from None
    if flavor.disabled:
        raise BadRequest(f"Flavor {flavor_id} could not be found.")
    return flavor


def image_id_from_ref(image_ref: str) -> str:
    return image_ref.rstrip("/").rsplit("/", 1)[-1]


def get_image(svc: ComputeService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    """The image as the caller sees it; ``Can not find requested image`` (400)."""
    from onestack.image import interface as image_api

    try:
        return image_api.get_image(svc.cloud, ctx, image_id)
    except (NotFound, Forbidden):
        raise BadRequest("Can not find requested image") from None


def check_image(svc: ComputeService, ctx: AuthContext, image: dict[str, Any],
                flavor: Flavor) -> None:
    """Nova's flavor/image checks: active, RAM and disk big enough."""
    if image.get("status") != "active":
        raise BadRequest(f"Image {image['id']} is not active.")
    if flavor.memory_mb < int(image.get("min_ram") or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    min_disk = int(image.get("min_disk") or 0) * GiB
    size = int(image.get("size") or 0)
    dest = flavor.root_gb * GiB
    if dest:
        if size > dest:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk is "
                             f"{dest} bytes, image is {size} bytes.")
        if min_disk > dest:
            raise BadRequest(f"Flavor's disk is smaller than the minimum size specified in image "
                             f"metadata. Flavor disk is {dest} bytes, minimum size is "
                             f"{min_disk} bytes.")
    elif not svc.allowed("os_compute_api:servers:create:zero_disk_flavor", ctx):
        raise Forbidden("Only volume-backed servers are allowed for flavors with zero disk.")
    option = image_properties(image).get("img_config_drive", "optional")
    if option not in ("optional", "mandatory"):
        raise BadRequest(f"Image's config drive option '{option}' is invalid")


def find_keypair(s: Session, user_id: str, key_name: str) -> KeyPair:
    row = s.execute(select(KeyPair).where(KeyPair.user_id == user_id,
                                          KeyPair.name == key_name)).scalars().first()
    if row is None:
        raise BadRequest("Invalid key_name provided.")
    return row


def check_user_data(user_data: str | None) -> None:
    if user_data is None:
        return
    try:
        base64.b64decode(user_data.encode("latin-1"))  # as lenient as Nova's decode
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BadRequest("User data needs to be valid base 64.") from None


def check_metadata(svc: ComputeService, s: Session, project_id: str | None,
                   metadata: dict[str, Any]) -> None:
    limit = svc.quotas.limits(s, project_id)["metadata_items"]
    if limit >= 0 and len(metadata) > limit:
        raise Forbidden(f"Maximum number of metadata items exceeds {limit}")


def check_injected_files(svc: ComputeService, s: Session, project_id: str | None,
                         files: list[tuple[str, str]]) -> None:
    """Nova's ``_check_injected_file_quota`` for personality files (before
    2.57): their number, then the longest path and the longest (base64)
    content; a path over its limit is reported before a content."""
    if not files:
        return
    limits = svc.quotas.limits(s, project_id)
    if 0 <= limits["injected_files"] < len(files):
        raise Forbidden("Personality file limit exceeded")
    path_limit = limits["injected_file_path_bytes"]
    if 0 <= path_limit < max(len(path) for path, _ in files):
        raise Forbidden(f"Personality file path exceeds maximum {path_limit}")
    content_limit = limits["injected_file_content_bytes"]
    if 0 <= content_limit < max(len(content) for _, content in files):
        raise Forbidden(f"Personality file content exceeds maximum {content_limit}")


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """Nova's ``sanitize_hostname``: RFC 952/1123 characters, lower case."""
    hostname = name.encode("latin-1", "ignore").decode("latin-1")[:63]
    hostname = re.sub(r"[ _\.]", "-", hostname)
    hostname = re.sub(r"[^\w.-]+", "", hostname, flags=re.ASCII)
    hostname = hostname.lower().strip(".-")
    if not hostname and default is not None:
        return default[:63]
    return hostname


def resolve_networks(svc: ComputeService, ctx: AuthContext, requested: Any,
                     max_count: int) -> list[RequestedNetwork]:
    """The NICs a boot asks for, validated against Networking (Nova's
    ``validate_networks``): ``none``, ``auto`` or omitted (the project's one
    network; get-me-a-network for ``auto`` when there is none), or a list of
    networks, ports and fixed IPs."""
    net = svc.network
    if requested == "none":
        return []
    if requested is None or requested == "auto":
        available = net.available_networks(ctx)
        if len(available) > 1:
            raise NetworkAmbiguous()
        if available:
            return [RequestedNetwork(network_id=available[0]["id"])]
        if requested == "auto":
            return [RequestedNetwork(network_id=net.auto_allocate(ctx)["id"])]
        return []
    out: list[RequestedNetwork] = []
    ports_seen: list[str] = []
    for entry in requested:
        port_id = entry.get("port")
        fixed_ip = entry.get("fixed_ip")
        tag = entry.get("tag")
        if port_id:
            if port_id in ports_seen:
                raise BadRequest(f"Port ID '{port_id}' was specified twice: you cannot attach "
                                 "a port multiple times.")
            if fixed_ip is not None:
                raise BadRequest(f"Specified Fixed IP '{fixed_ip}' cannot be used with port "
                                 f"'{port_id}': the two cannot be specified together.")
            ports_seen.append(port_id)
            try:
                port = net.get_port(ctx, port_id)
            except PortNotFound as exc:
                raise BadRequest(exc.message) from None
            if port.get("device_id"):
                raise PortInUse(port_id)
            out.append(RequestedNetwork(network_id=port["network_id"], port_id=port_id, tag=tag))
            continue
        if "uuid" not in entry:
            raise BadRequest("Bad network format: missing 'uuid'")
        network_id = entry["uuid"]
        if not re.match(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$", network_id):
            raise BadRequest(f"Bad networks format: network uuid is not in proper format "
                             f"({network_id})")
        network = net.get_network(ctx, network_id)
        if network.get("router:external") and not network.get("shared") \
                and not svc.allowed("network:attach_external_network", ctx):
            raise Forbidden(f"It is not allowed to create an interface on external network "
                            f"{network_id}")
        if not network.get("subnets"):
            raise BadRequest(f"Network {network_id} requires a subnet in order to boot "
                             "instances on.")
        out.append(RequestedNetwork(network_id=network_id, fixed_ip=fixed_ip, tag=tag))
    if max_count > 1:
        if any(r.fixed_ip for r in out):
            raise BadRequest("Failed to launch instances: max_count cannot be greater than 1 "
                             "if an fixed_ip is specified.")
        if any(r.port_id for r in out):
            raise BadRequest("Failed to launch instances: The number of defined ports: "
                             f"{sum(1 for r in out if r.port_id)} is over the limit: 1")
    return out


def find_group(svc: ComputeService, ctx: AuthContext, s: Session,
               hints: dict[str, Any]) -> ServerGroup | None:
    hint = hints.get("group")
    if isinstance(hint, list):
        hint = hint[0] if hint else None
    if not hint:
        return None
    group = s.get(ServerGroup, hint)
    if group is None or (group.project_id != ctx.project_id and not svc.is_admin(ctx)):
        raise BadRequest(f"Instance group {hint} could not be found.")
    return group


def check_group_members(svc: ComputeService, ctx: AuthContext, s: Session,
                        group: ServerGroup, adding: int) -> None:
    limit = svc.quotas.limits(s, ctx.project_id)["server_group_members"]
    if limit >= 0 and count_group_members(s, group.id) + adding > limit:
        raise Forbidden("Quota exceeded, too many servers in group")


def check_zone(svc: ComputeService, zone: str | None) -> None:
    """The requested zone must be one with a compute host that is up."""
    if zone is None:
        return
    from onestack.compute.service import zones

    if zone not in zones.available_zone_names(svc):
        raise BadRequest("The requested availability zone is not available")


def instances_allowed(svc: ComputeService, s: Session, project_id: str | None, flavor: Flavor,
                      min_count: int, max_count: int) -> int:
    """How many of ``min_count``..``max_count`` servers the quota lets the
    project make (Nova's ``check_num_instances_quota``); its 403 if not even
    ``min_count``. Call it in the write transaction that makes them."""
    quotas = svc.quotas
    quotas.lock(s, project_id)
    limits = quotas.limits(s, project_id)
    wanted = {"instances": limits["instances"], "cores": limits["cores"], "ram": limits["ram"]}
    if all(v < 0 for v in wanted.values()):
        return max_count
    used = dict(zip(("instances", "cores", "ram"), count_servers(s, project_id), strict=True))
    deltas = {"instances": max_count, "cores": max_count * flavor.vcpus,
              "ram": max_count * flavor.memory_mb}
    overs = sorted(r for r, lim in wanted.items() if lim >= 0 and used[r] + deltas[r] > lim)
    if not overs:
        return max_count
    headroom = {r: (wanted[r] - used[r]) for r in wanted}
    if wanted["cores"] < 0:
        headroom["cores"] = (headroom["instances"] * flavor.vcpus
                             if wanted["instances"] >= 0 else max_count * flavor.vcpus)
    if wanted["ram"] < 0:
        headroom["ram"] = (headroom["instances"] * flavor.memory_mb
                           if wanted["instances"] >= 0 else max_count * flavor.memory_mb)
    allowed = headroom["instances"] if wanted["instances"] >= 0 else max_count
    if flavor.vcpus:
        allowed = min(allowed, headroom["cores"] // flavor.vcpus)
    if flavor.memory_mb:
        allowed = min(allowed, headroom["ram"] // flavor.memory_mb)
    if min_count <= allowed <= max_count:
        return allowed
    count = str(min_count) if min_count == max_count else f"{min_count}-{max_count}"
    requested = {"instances": count, "cores": str(max_count * flavor.vcpus),
                 "ram": str(max_count * flavor.memory_mb)}
    raise _too_many(overs, requested, wanted, used)


def _too_many(overs: list[str], requested: dict[str, str], limits: dict[str, int],
              used: dict[str, int]) -> ApiError:
    names = ", ".join(overs)
    return Forbidden(
        f"Quota exceeded for {names}: Requested {', '.join(requested[o] for o in overs)}, "
        f"but already used {', '.join(str(used[o]) for o in overs)} of "
        f"{', '.join(str(limits[o]) for o in overs)} {names}")


def check_not_ambiguous_hostname(hostname: str | None, max_count: int) -> None:
    if hostname and max_count > 1:
        raise BadRequest("Unable to allocate a single hostname to multiple instances")


def conflict(message: str) -> Conflict:
    return Conflict(message)
