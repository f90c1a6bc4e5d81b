"""In-memory QEMU guests and their QMP, for :class:`onestack.host.fake.FakeHost`.

A fake guest has a run state (``running``, ``paused``; gone once it powers
off or quits), the devices of its spec plus what was hot-plugged, and the
same number of PCIe root ports as a real one, so hot-plug runs out where it
would. ``console`` holds what a test wants the guest to have printed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from onestack.host import qemu_spec
from onestack.host.errors import HostError, NotFound
from onestack.host.qemu import Guest, GuestSpec
from onestack.host.qmp import QMPError

_pids = itertools.count(50000)


@dataclass
class FakeGuest:
    spec: GuestSpec
    pid: int
    status: str = "running"
    # device id -> (kind "nic"/"disk", root port or "" for pcie.0)
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class FakeQMP:
    """The GuestControl of one fake guest."""

    def __init__(self, guests: FakeGuests, name: str) -> None:
        self._guests = guests
        self._name = name
        self.events: list[dict[str, Any]] = []

    @property
    def _g(self) -> FakeGuest:
        guest = self._guests.guests.get(self._name)
        if guest is None:
            raise HostError("QMP connection closed by QEMU")
        return guest

    def _rec(self, command: str, **arguments: Any) -> None:
        self._g.commands.append((command, arguments))
        self._guests.calls.append(("qmp", self._name, command))

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 60.0) -> Any:
        self._rec(command, **(arguments or {}))
        if command == "query-status":
            return {"status": self._g.status, "running": self._g.status == "running"}
        return {}

    async def wait_event(self, name: str, timeout: float = 30.0,
                         **data: Any) -> dict[str, Any]:
        for ev in self.events:
            got = ev.get("data") or {}
            if ev.get("event") == name and all(got.get(k) == v for k, v in data.items()):
                self.events.remove(ev)
                return ev
        raise TimeoutError(f"no QMP event {name} {data or ''} within {timeout:g} s")

    async def status(self) -> str:
        return self._g.status

    async def pause(self) -> None:
        self._rec("stop")
        self._g.status = "paused"

    async def resume(self) -> None:
        self._rec("cont")
        self._g.status = "running"

    async def powerdown(self) -> None:
        self._rec("system_powerdown")
        self._guests.exit(self._name, "guest-shutdown")

    async def reset(self) -> None:
        self._rec("system_reset")

    async def quit(self) -> None:
        self._rec("quit")
        self._guests.exit(self._name, "host-qmp-quit")

    async def free_ports(self) -> list[str]:
        used = {port for _kind, port in self._g.devices.values()}
        return [p for p in self._g.ports if p not in used]

    async def _port(self, bus: str | None, addr: str | None = None) -> str:
        free = await self.free_ports()
        if bus is not None:
            key = _key(bus, addr)
            if key not in free:
                raise QMPError("device_add", {"class": "GenericError",
                                              "desc": f"Bus '{bus}' is full"})
            return key
        if not free:
            raise HostError("no free PCIe root port left for a hot-plugged device")
        return free[0]

    def _plug(self, device_id: str, kind: str, port: str) -> None:
        if device_id in self._g.devices:
            raise QMPError("device_add", {"class": "GenericError",
                                          "desc": f"Duplicate device ID '{device_id}'"})
        self._g.devices[device_id] = (kind, port)

    async def add_nic(self, device_id: str, tap: str, mac: str, *, bus: str | None = None,
                      mtu: int | None = None, addr: str | None = None,
                      model: str = "virtio") -> str:
        if model not in qemu_spec.NIC_MODELS:
            raise HostError(f"unsupported NIC model {model!r}")
        port = await self._port(bus, addr)
        self._plug(device_id, "nic", port)
        self._rec("device_add", driver=qemu_spec.NIC_MODELS[model], id=device_id, tap=tap,
                  mac=mac, bus=port)
        return port.split("@")[0]

    async def add_disk(self, device_id: str, path: Path, fmt: str, *, bus: str | None = None,
                       readonly: bool = False, serial: str | None = None,
                       addr: str | None = None) -> str:
        port = await self._port(bus, addr)
        self._plug(device_id, "disk", port)
        self._rec("device_add", driver="virtio-blk-pci", id=device_id, path=str(path),
                  format=fmt, bus=port, serial=serial, readonly=readonly)
        return port.split("@")[0]

    async def _unplug(self, device_id: str, kind: str) -> None:
        have = self._g.devices.get(device_id)
        if have is None or have[0] != kind:
            raise QMPError("device_del", {"class": "DeviceNotFound",
                                          "desc": f"Device '{device_id}' not found"})
        if have[1] == "":
            raise QMPError("device_del", {"class": "GenericError",
                                          "desc": "Bus 'pcie.0' does not support hotplugging"})
        self._rec("device_del", id=device_id)
        del self._g.devices[device_id]

    async def remove_nic(self, device_id: str, timeout: float = 60.0) -> None:
        await self._unplug(device_id, "nic")

    async def remove_disk(self, device_id: str, timeout: float = 60.0) -> None:
        await self._unplug(device_id, "disk")

    async def save(self, path: Path, timeout: float = 600.0) -> None:
        self._rec("migrate", uri=f"exec:cat > {path}")
        self._g.status = "paused"
        self._guests.saved[Path(path)] = self._name


def _key(bus: str, addr: str | None = None) -> str:
    """A slot's name: its root port (q35), or pci.0@<address> (pc)."""
    return bus if addr is None else f"{bus}@{addr}"


class FakeGuests:
    def __init__(self, calls: list[tuple[Any, ...]],
                 netns_exists: Callable[[str | None], bool]) -> None:
        self.calls = calls
        self._netns_exists = netns_exists
        self.guests: dict[str, FakeGuest] = {}
        self.console: dict[str, str] = {}
        self.saved: dict[Path, str] = {}  # state file -> guest name
        self.exits: list[tuple[str, str]] = []  # (guest, reason)
        self.agents: set[str] = set()  # guests whose qemu-ga answers
        self.agent_commands: list[tuple[str, str, dict[str, Any]]] = []
        self.accel = "tcg"

    def exit(self, name: str, reason: str) -> None:
        if self.guests.pop(name, None) is not None:
            self.exits.append((name, reason))

    async def start(self, spec: GuestSpec) -> Guest:
        qemu_spec.validate(spec)
        if not self._netns_exists(spec.netns):
            raise NotFound(f"network namespace {spec.netns!r} does not exist")
        if spec.name in self.guests:
            raise HostError(f"guest {spec.name} is already running")
        # the slots (root ports on q35) the real machine would have
        ports = [_key(*qemu_spec.slot_address(spec, n))
                 for n in range(1, qemu_spec.root_ports(spec) + 1)]
        slots = qemu_spec.assign_slots(spec)
        devices: dict[str, tuple[str, str]] = {}
        for disk in spec.disks:
            devices[disk.id] = ("disk", ports[slots[disk.id] - 1] if disk.id in slots else "")
        for nic in spec.nics:
            devices[nic.id] = ("nic", ports[slots[nic.id] - 1])
        guest = FakeGuest(spec, next(_pids), "inmigrate" if spec.incoming else "running",
                          devices, ports)
        self.guests[spec.name] = guest
        self.calls.append(("guest.start", spec.name))
        return self._view(spec.name)

    def _view(self, name: str) -> Guest:
        g = self.guests[name]
        return Guest(name, g.pid, Path("/fake/qemu") / name, g.spec, self.accel)

    async def restore(self, spec: GuestSpec, state: Path, timeout: float = 600.0) -> Guest:
        if Path(state) not in self.saved:
            raise HostError(f"no saved state in {state}")
        guest = await self.start(replace(spec, incoming=str(state)))
        self.guests[spec.name].status = "running"
        del self.saved[Path(state)]
        return guest

    async def get(self, name: str) -> Guest | None:
        return self._view(name) if name in self.guests else None

    async def names(self) -> list[str]:
        return sorted(self.guests)

    async def running(self) -> dict[str, int]:
        return {name: g.pid for name, g in self.guests.items()}

    @asynccontextmanager
    async def qmp(self, name: str, timeout: float = 10.0) -> AsyncIterator[FakeQMP]:
        if name not in self.guests:
            raise NotFound(f"guest {name} is not running")
        yield FakeQMP(self, name)

    async def stop(self, name: str, graceful_timeout: float = 0.0) -> bool:
        if name not in self.guests:
            return False
        self.calls.append(("guest.stop", name, graceful_timeout))
        self.exit(name, "guest-shutdown" if graceful_timeout > 0 else "host-signal")
        return True

    async def remove(self, name: str) -> bool:
        was = await self.stop(name)
        return self.console.pop(name, None) is not None or was

    async def console_output(self, name: str, max_bytes: int = 1 << 20) -> str:
        return self.console.get(name, "")[-max_bytes:]

    async def guest_agent(self, name: str, command: str, arguments: dict[str, Any] | None = None,
                          timeout: float = 5.0) -> Any:
        """A guest's agent: answers when the spec has its channel and the test
        put the guest's name in ``agents``; else unresponsive, as a guest
        without qemu-ga."""
        from onestack.host.qga import AgentUnresponsive

        guest = self.guests.get(name)
        if guest is None:
            raise NotFound(f"guest {name} is not running")
        if not guest.spec.guest_agent:
            raise HostError(f"guest {name} has no guest agent channel")
        self.calls.append(("guest.agent", name, command))
        if name not in self.agents:
            raise AgentUnresponsive(f"the guest agent did not answer within {timeout:g} s")
        self.agent_commands.append((name, command, dict(arguments or {})))
        return {}

    async def accelerator(self) -> str:
        return self.accel
