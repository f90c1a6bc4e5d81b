"""A compute host's report and reconciliation with what the database says.

* ``report_node``: the host's resources as its driver sees them (the
  scheduler's capacity, ``os-hypervisors``), upserted with the allocation
  ratios and reserved amounts of the settings.
* ``run``: Nova's power-state sync at start and periodically: an instance
  on the host that no live server owns is destroyed (at start); a server
  whose guest stopped by itself becomes ``SHUTOFF``; one whose instance the
  host lost entirely is ``ERROR`` with a fault that says so. Servers with a
  task under way are left to their task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from onestack.common.ids import utcnow
from onestack.compute import states
from onestack.compute.models import ComputeNode, Server
from onestack.compute.service._common import fault
from onestack.compute.virt.base import HostResources, PowerState

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService
    from onestack.compute.virt.base import Driver

LOG = logging.getLogger(__name__)

# vm_states whose guest should run, and those whose guest should not.
_RUNNING = {states.ACTIVE, states.RESCUED, states.RESIZED}
_PAUSED = {states.PAUSED}
_STOPPED = {states.STOPPED, states.SUSPENDED}


def report_node(svc: ComputeService, host: str, res: HostResources, driver: str) -> None:
    conf = svc.conf
    now = utcnow()
    with svc.db.write() as s:
        node = s.execute(select(ComputeNode).where(ComputeNode.host == host)).scalars().first()
        if node is None:
            node = ComputeNode(uuid=str(uuid.uuid4()), host=host, created_at=now)
            s.add(node)
        node.hypervisor_hostname = res.hypervisor_hostname or host
        node.hypervisor_type = res.hypervisor_type
        node.hypervisor_version = res.hypervisor_version
        node.driver = driver
        node.accelerator = res.accelerator
        node.vcpus = res.vcpus
        node.memory_mb = res.memory_mb
        node.local_gb = res.local_gb
        node.cpu_allocation_ratio = conf.cpu_allocation_ratio
        node.ram_allocation_ratio = conf.ram_allocation_ratio
        node.disk_allocation_ratio = conf.disk_allocation_ratio
        node.reserved_memory_mb = conf.reserved_host_memory_mb
        node.reserved_disk_mb = conf.reserved_host_disk_mb
        node.availability_zone = conf.default_availability_zone
        node.cpu_info = {"arch": "x86_64", "model": res.accelerator, "vendor": "QEMU",
                         "topology": {"sockets": 1, "cores": res.vcpus, "threads": 1}}
        node.updated_at = now


def _servers_on(svc: ComputeService, host: str) -> list[Server]:
    with svc.db.read() as s:
        rows = list(s.execute(select(Server).where(Server.host == host,
                                                   Server.deleted.is_(False))).scalars())
        s.expunge_all()
        return rows


def _all_ids(svc: ComputeService, ids: list[str]) -> set[str]:
    """Which of ``ids`` are live servers anywhere (not deleted)."""
    if not ids:
        return set()
    with svc.db.read() as s:
        return set(s.execute(select(Server.id).where(Server.id.in_(ids),
                                                     Server.deleted.is_(False))).scalars())


def _pending(svc: ComputeService, server_ids: list[str]) -> set[str]:
    """Servers with an unfinished task (left to it)."""
    from onestack.common.models import UNFINISHED, Task

    if not server_ids:
        return set()
    keys = [f"server:{i}" for i in server_ids]
    with svc.db.read() as s:
        found = s.execute(select(Task.resource_key).where(Task.resource_key.in_(keys),
                                                          Task.state.in_(UNFINISHED))).scalars()
        return {k.split(":", 1)[1] for k in found if k}


async def run(svc: ComputeService, host: str, driver: Driver, *,
              destroy_strays: bool = True) -> dict[str, list[str]]:
    """Reconcile the host once; returns what was done (for logs and tests)."""
    done: dict[str, list[str]] = {"destroyed": [], "stopped": [], "lost": [], "power": []}
    on_host = await driver.list_instances()
    if destroy_strays:
        live = await asyncio.to_thread(_all_ids, svc, on_host)
        for stray in on_host:
            if stray not in live:
                LOG.warning("instance %s on %s has no server: destroying it", stray, host)
                await driver.destroy(stray)
                done["destroyed"].append(stray)
    servers = await asyncio.to_thread(_servers_on, svc, host)
    busy = await asyncio.to_thread(_pending, svc, [s.id for s in servers])
    observed: dict[str, PowerState] = {}
    for server in servers:
        if server.id in busy or server.task_state is not None:
            continue
        if server.vm_state not in _RUNNING | _PAUSED | _STOPPED:
            continue
        observed[server.id] = await driver.power_state(server.id)
    if observed:
        await asyncio.to_thread(_apply, svc, observed, done)
    for key, ids in done.items():
        if ids:
            LOG.info("host %s reconciled: %s %s", host, key, ", ".join(ids))
    return done


def _apply(svc: ComputeService, observed: dict[str, PowerState],
           done: dict[str, list[str]]) -> None:
    now = utcnow()
    with svc.db.write() as s:
        for server_id, power in observed.items():
            server = s.get(Server, server_id)
            if server is None or server.deleted or server.task_state is not None:
                continue
            if power == PowerState.NOSTATE:
                server.vm_state = states.ERROR
                server.power_state = int(PowerState.NOSTATE)
                server.fault = fault(f"Instance {server_id} was lost by its host {server.host}: "
                                     "no guest and no disk of it remain there.")
                server.updated_at = now
                done["lost"].append(server_id)
            elif server.vm_state in _RUNNING and power in (PowerState.SHUTDOWN,
                                                           PowerState.CRASHED):
                server.vm_state = states.STOPPED
                server.power_state = int(power)
                server.updated_at = now
                done["stopped"].append(server_id)
            elif server.power_state != int(power):
                server.power_state = int(power)
                server.updated_at = now
                done["power"].append(server_id)
