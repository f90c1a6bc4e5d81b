"""Host weighers, as Nova's: each gives a host a weight normalised to 0..1
over the candidates, multiplied by its multiplier; the heaviest host wins.
Spreading by free RAM and vCPUs (Nova's default multipliers), packing or
spreading the members of a soft-(anti-)affinity server group."""

from __future__ import annotations

from collections.abc import Callable

from onestack.compute.scheduler.filters import Request
from onestack.compute.scheduler.hosts import HostState

Weigher = Callable[[HostState, Request], float]


def _ram(host: HostState, req: Request) -> float:
    return host.free_memory_mb


def _cpu(host: HostState, req: Request) -> float:
    return host.free_vcpus


def _disk(host: HostState, req: Request) -> float:
    return host.free_disk_gb


def _soft_affinity(host: HostState, req: Request) -> float:
    if req.group_policy != "soft-affinity":
        return 0.0
    return float(req.group_hosts.count(host.host))


def _soft_anti_affinity(host: HostState, req: Request) -> float:
    if req.group_policy != "soft-anti-affinity":
        return 0.0
    return -float(req.group_hosts.count(host.host))


WEIGHERS: list[tuple[Weigher, float]] = [
    (_ram, 1.0),
    (_cpu, 1.0),
    (_disk, 1.0),
    (_soft_affinity, 1.0),
    (_soft_anti_affinity, 1.0),
]


def _normalize(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [0.0 for _ in values]
    return [(v - low) / (high - low) for v in values]


def order(hosts: list[HostState], req: Request) -> list[HostState]:
    """Hosts heaviest first (ties keep the hosts' order)."""
    if len(hosts) < 2:
        return list(hosts)
    totals = [0.0] * len(hosts)
    for weigher, multiplier in WEIGHERS:
        for i, weight in enumerate(_normalize([weigher(h, req) for h in hosts])):
            totals[i] += multiplier * weight
    ranked = sorted(range(len(hosts)), key=lambda i: -totals[i])
    return [hosts[i] for i in ranked]
