"""A running guest's usage counters, for os-server-diagnostics (Nova's libvirt driver's).

vCPU times from the kernel's accounting of QEMU's vCPU threads (``query-cpus-fast``
names them), disk counters from ``query-blockstats`` (by the disks' block
node names), NIC counters from the taps (what the host sent is what the guest
received: swapped, as libvirt reports them), uptime from the process's start.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from onestack.compute.virt.base import (
    CpuDiagnostics,
    Diagnostics,
    DiskDiagnostics,
    InvalidInstanceState,
    NicDiagnostics,
    PowerState,
)
from onestack.compute.virt.qemu import layout
from onestack.compute.virt.qemu.machine import Instances
from onestack.host.base import NetlinkOps


async def collect(inst: Instances, uuid: str, state: PowerState) -> Diagnostics:
    record = await inst.need(uuid)
    running = await inst.running(uuid)
    if running is None:
        raise InvalidInstanceState(f"Instance {uuid} is not running.")
    guest = record.guest
    async with inst.qmp(uuid) as q:
        vcpus = await q.execute("query-cpus-fast")
        blocks = await q.execute("query-blockstats")
    cpu_times = await asyncio.to_thread(_thread_times, running.pid,
                                        [c.get("thread-id") for c in _list(vcpus)])
    cpus = tuple(CpuDiagnostics(id=i, time=t) for i, t in enumerate(cpu_times))
    stats = {str(b.get("node-name") or ""): b.get("stats") or {} for b in _list(blocks)}
    disks = tuple(_disk(stats.get(f"{d.id}-fmt")) for d in guest.disks)

    def read(nl: NetlinkOps) -> list[dict[str, int] | None]:
        return [nl.counters(nic.tap) for nic in guest.nics]

    counters = await inst.host.net.netlink(guest.netns, read) if guest.nics else []
    nics = tuple(_nic(n.mac, c) for n, c in zip(guest.nics, counters, strict=True))
    return Diagnostics(
        state=state, uptime=await asyncio.to_thread(_uptime, running.pid),
        config_drive=any(d.path.endswith(layout.CONFIG) for d in guest.disks),
        num_cpus=guest.cpus, memory_max_mb=guest.memory_mb, memory_used_mb=guest.memory_mb,
        cpu_details=cpus, nic_details=nics, disk_details=disks)


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _disk(stats: dict[str, Any] | None) -> DiskDiagnostics:
    if stats is None:
        return DiskDiagnostics()
    return DiskDiagnostics(
        read_bytes=stats.get("rd_bytes"), read_requests=stats.get("rd_operations"),
        write_bytes=stats.get("wr_bytes"), write_requests=stats.get("wr_operations"),
        errors_count=(stats.get("failed_rd_operations", 0)
                      + stats.get("failed_wr_operations", 0)
                      + stats.get("failed_flush_operations", 0)))


def _nic(mac: str, c: dict[str, int] | None) -> NicDiagnostics:
    if c is None:
        return NicDiagnostics(mac_address=mac)
    # the tap's tx is what the guest received
    return NicDiagnostics(
        mac_address=mac, rx_octets=c["tx_bytes"], rx_errors=c["tx_errors"],
        rx_drop=c["tx_dropped"], rx_packets=c["tx_packets"], tx_octets=c["rx_bytes"],
        tx_errors=c["rx_errors"], tx_drop=c["rx_dropped"], tx_packets=c["rx_packets"])


def _stat(path: Path) -> list[str] | None:
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _thread_times(pid: int, threads: list[Any]) -> list[int | None]:
    """Nanoseconds of CPU each vCPU thread used (user + system)."""
    tick = os.sysconf("SC_CLK_TCK")
    times: list[int | None] = []
    for tid in threads:
        fields = _stat(Path(f"/proc/{pid}/task/{tid}/stat")) if tid else None
        times.append((int(fields[11]) + int(fields[12])) * 1_000_000_000 // tick
                     if fields else None)
    return times


def _uptime(pid: int) -> int | None:
    fields = _stat(Path(f"/proc/{pid}/stat"))
    try:
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    if not fields:
        return None
    return max(int(since_boot - int(fields[19]) / os.sysconf("SC_CLK_TCK")), 0)
