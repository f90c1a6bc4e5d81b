"""Host states: each compute host with its capacity and what is claimed on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, not_, select
from sqlalchemy.orm import Session

from onestack.common.models import HostService
from onestack.compute.models import Aggregate, Allocation, ComputeNode

COMPUTE_BINARY = "nova-compute"


@dataclass
class HostState:
    host: str
    node: str
    zone: str
    hypervisor_type: str
    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    reserved_memory_mb: int
    reserved_disk_mb: int
    used_vcpus: int = 0
    used_memory_mb: int = 0
    used_disk_gb: int = 0
    alive: bool = True
    disabled: bool = False

    @property
    def total_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio

    @property
    def total_memory_mb(self) -> float:
        return (self.memory_mb - self.reserved_memory_mb) * self.ram_allocation_ratio

    @property
    def total_disk_gb(self) -> float:
        return (self.local_gb - self.reserved_disk_mb / 1024) * self.disk_allocation_ratio

    @property
    def free_vcpus(self) -> float:
        return self.total_vcpus - self.used_vcpus

    @property
    def free_memory_mb(self) -> float:
        return self.total_memory_mb - self.used_memory_mb

    @property
    def free_disk_gb(self) -> float:
        return self.total_disk_gb - self.used_disk_gb

    def fits(self, vcpus: int, memory_mb: int, disk_gb: int) -> bool:
        return (self.used_vcpus + vcpus <= self.total_vcpus
                and self.used_memory_mb + memory_mb <= self.total_memory_mb
                and self.used_disk_gb + disk_gb <= self.total_disk_gb)


def usage(s: Session, host: str) -> tuple[int, int, int]:
    """(vCPUs, MiB, GiB) claimed on ``host``."""
    row = s.execute(
        select(func.coalesce(func.sum(Allocation.vcpus), 0),
               func.coalesce(func.sum(Allocation.memory_mb), 0),
               func.coalesce(func.sum(Allocation.disk_gb), 0))
        .where(Allocation.host == host)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def load(s: Session, alive_clause: Any) -> list[HostState]:
    """Every compute host with its claims and liveness (by the database's
    clock: ``alive_clause`` is the host registry's)."""
    service = (
        select(HostService.host, alive_clause.label("alive"), HostService.disabled)
        .where(HostService.binary == COMPUTE_BINARY)
        .subquery()
    )
    rows = s.execute(
        select(ComputeNode, service.c.alive, service.c.disabled)
        .outerjoin(service, service.c.host == ComputeNode.host)
        .order_by(ComputeNode.host)
    ).all()
    states: dict[str, HostState] = {}
    for node, alive, disabled in rows:
        states[node.host] = HostState(
            host=node.host, node=node.hypervisor_hostname, zone=node.availability_zone or "",
            hypervisor_type=node.hypervisor_type, vcpus=node.vcpus, memory_mb=node.memory_mb,
            local_gb=node.local_gb, cpu_allocation_ratio=node.cpu_allocation_ratio,
            ram_allocation_ratio=node.ram_allocation_ratio,
            disk_allocation_ratio=node.disk_allocation_ratio,
            reserved_memory_mb=node.reserved_memory_mb, reserved_disk_mb=node.reserved_disk_mb,
            alive=bool(alive), disabled=bool(disabled),
        )
    if not states:
        return []
    for zone_hosts, metadata in s.execute(select(Aggregate.hosts, Aggregate.metadata_)):
        zone = (metadata or {}).get("availability_zone")
        if not zone:
            continue
        for host in zone_hosts or []:
            if str(host) in states:
                states[str(host)].zone = str(zone)
    for host, vcpus, memory, disk in s.execute(
        select(Allocation.host, func.sum(Allocation.vcpus), func.sum(Allocation.memory_mb),
               func.sum(Allocation.disk_gb)).group_by(Allocation.host)
    ):
        state = states.get(str(host))
        if state is not None:
            state.used_vcpus, state.used_memory_mb, state.used_disk_gb = (
                int(vcpus), int(memory), int(disk))
    return list(states.values())


def alive_and_enabled(alive: Any) -> Any:
    return and_(alive, not_(HostService.disabled))
