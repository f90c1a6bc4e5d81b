"""Host filters, as Nova's scheduler has them: each keeps the hosts that can
take the request. The first filter that leaves no host is the reason of
Nova's ``No valid host was found``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from onestack.compute.scheduler.hosts import HostState


@dataclass(frozen=True)
class Request:
    """What a server asks of its host."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    zone: str | None = None
    image_properties: dict[str, str] = field(default_factory=dict)
    group_policy: str | None = None  # affinity, anti-affinity, soft-*
    group_hosts: tuple[str, ...] = ()  # hosts of the group's other members (one per member)
    max_server_per_host: int = 1
    same_host: tuple[str, ...] = ()  # hosts of the servers in the same_host hint
    different_host: tuple[str, ...] = ()
    requested_host: str | None = None
    requested_node: str | None = None
    ignore_hosts: tuple[str, ...] = ()  # e.g. the source of a migration


Filter = Callable[[HostState, Request], bool]


def compute_filter(host: HostState, req: Request) -> bool:
    """The host's compute service is up and enabled."""
    return host.alive and not host.disabled


def availability_zone_filter(host: HostState, req: Request) -> bool:
    return req.zone is None or host.zone == req.zone


def resources_filter(host: HostState, req: Request) -> bool:
    """VCPU, MEMORY_MB and DISK_GB fit within capacity x allocation ratio."""
    return host.fits(req.vcpus, req.memory_mb, req.disk_gb)


_HYPERVISOR_NAMES = {"qemu", "kvm"}


def image_properties_filter(host: HostState, req: Request) -> bool:
    """The image's ``hypervisor_type`` / ``architecture`` / ``hw_vm_mode`` match."""
    props = req.image_properties
    hv = (props.get("img_hv_type") or props.get("hypervisor_type") or "").lower()
    if hv and hv not in _HYPERVISOR_NAMES and hv != host.hypervisor_type.lower():
        return False
    arch = (props.get("hw_architecture") or props.get("architecture") or "").lower()
    if arch and arch not in ("x86_64", "amd64", "x64"):
        return False
    mode = (props.get("hw_vm_mode") or props.get("vm_mode") or "").lower()
    return not mode or mode in ("hvm",)


def group_affinity_filter(host: HostState, req: Request) -> bool:
    if req.group_policy != "affinity" or not req.group_hosts:
        return True
    return host.host in req.group_hosts


def group_anti_affinity_filter(host: HostState, req: Request) -> bool:
    if req.group_policy != "anti-affinity":
        return True
    return req.group_hosts.count(host.host) < max(req.max_server_per_host, 1)


def same_host_filter(host: HostState, req: Request) -> bool:
    return not req.same_host or host.host in req.same_host


def different_host_filter(host: HostState, req: Request) -> bool:
    return host.host not in req.different_host


def requested_destination_filter(host: HostState, req: Request) -> bool:
    if req.requested_host and host.host != req.requested_host:
        return False
    if req.requested_node and host.node != req.requested_node:
        return False
    return host.host not in req.ignore_hosts


FILTERS: list[tuple[str, Filter]] = [
    ("ComputeFilter", compute_filter),
    ("RequestedDestinationFilter", requested_destination_filter),
    ("AvailabilityZoneFilter", availability_zone_filter),
    ("ResourcesFilter", resources_filter),
    ("ImagePropertiesFilter", image_properties_filter),
    ("ServerGroupAffinityFilter", group_affinity_filter),
    ("ServerGroupAntiAffinityFilter", group_anti_affinity_filter),
    ("SameHostFilter", same_host_filter),
    ("DifferentHostFilter", different_host_filter),
]


def run(hosts: list[HostState], req: Request) -> tuple[list[HostState], str | None]:
    """The hosts every filter keeps, and the name of the filter that left none."""
    for name, check in FILTERS:
        hosts = [h for h in hosts if check(h, req)]
        if not hosts:
            return [], name
    return hosts, None
