"""An asyncio client of the QEMU Machine Protocol, with the commands Compute needs.

QEMU's QMP socket serves one client at a time: connect, do the work, close
(``async with connect(path) as qmp: ...``); a second client waits until then.
Replies are matched to commands by ``id``; events that arrive meanwhile are
kept, so that :meth:`QMP.wait_event` sees one that came before it was called
(``DEVICE_DELETED`` after ``device_del``, ``SHUTDOWN`` after a power-down).

Hot-plug follows what works on q35 (see ``/work/shared/notes/guest-boot.md``):
a device goes onto a free ``pcie-root-port`` made when the guest started; a
NIC is a ``tap`` netdev plus a ``virtio-net-pci``; a disk is a ``file`` node
under a format node (``blockdev-add``, format always given) plus a
``virtio-blk-pci``. Unplugging asks the guest and waits for its
``DEVICE_DELETED`` before the backend is removed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from onestack.host.errors import HostError
from onestack.host.qemu_spec import NIC_MODELS


class QMPError(HostError):
    """QEMU refused a command (its error class and description)."""

    def __init__(self, command: str, error: dict[str, Any]) -> None:
        self.command = command
        self.error_class = str(error.get("class", ""))
        self.desc = str(error.get("desc", ""))
        super().__init__(f"QMP {command}: {self.error_class}: {self.desc}")


class QMP:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.events: list[dict[str, Any]] = []
        self.greeting: dict[str, Any] = {}

    @classmethod
    async def connect(cls, path: Path, timeout: float = 10.0) -> QMP:
        """Connects (retrying while the socket is not there yet) and negotiates."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(path),
                                                                    limit=1 << 24)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise HostError(f"no QMP socket at {path}") from None
                await asyncio.sleep(0.05)
        client = cls(reader, writer)
        try:
            left = max(deadline - time.monotonic(), 1.0)
            client.greeting = await asyncio.wait_for(client._read(), left)
            await client.execute("qmp_capabilities")
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass

    async def _read(self) -> dict[str, Any]:
        line = await self._reader.readline()
        if not line:
            raise HostError("QMP connection closed by QEMU")
        return dict(json.loads(line))

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 60.0) -> Any:
        """Runs one command with these arguments; its ``return`` value, or
        :class:`QMPError`."""
        async with self._lock:
            ident = f"os-{next(self._ids)}"
            msg: dict[str, Any] = {"execute": command, "id": ident}
            if arguments:
                msg["arguments"] = arguments
            self._writer.write(json.dumps(msg).encode() + b"\n")
            await self._writer.drain()
            deadline = time.monotonic() + timeout
            while True:
                reply = await asyncio.wait_for(self._read(), max(deadline - time.monotonic(), 0))
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if reply.get("id") != ident:
                    continue
                if "error" in reply:
                    raise QMPError(command, reply["error"])
                return reply.get("return")

    async def wait_event(self, name: str, timeout: float = 30.0,
                         **data: Any) -> dict[str, Any]:
        """The first event ``name`` whose data has these values (one that
        already arrived counts; it is consumed)."""
        def matches(ev: dict[str, Any]) -> bool:
            got = ev.get("data") or {}
            return ev.get("event") == name and all(got.get(k) == v for k, v in data.items())

        async with self._lock:
            deadline = time.monotonic() + timeout
            while True:
                for ev in self.events:
                    if matches(ev):
                        self.events.remove(ev)
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no QMP event {name} {data or ''} within {timeout:g} s")
                try:
                    reply = await asyncio.wait_for(self._read(), left)
                except TimeoutError:
                    continue
                if "event" in reply:
                    self.events.append(reply)

    # --- run state -------------------------------------------------------------

    async def status(self) -> str:
        """``running``, ``paused``, ``shutdown``, ``inmigrate``, ``postmigrate``..."""
        return str((await self.execute("query-status"))["status"])

    async def pause(self) -> None:
        await self.execute("stop")

    async def resume(self) -> None:
        await self.execute("cont")

    async def powerdown(self) -> None:
        """The ACPI power button (what a clean ``server stop`` sends first)."""
        await self.execute("system_powerdown")

    async def reset(self) -> None:
        await self.execute("system_reset")

    async def quit(self) -> None:
        try:
            await self.execute("quit")
        except HostError:  # QEMU may close the socket before it answers
            pass

    # --- hot-plug ----------------------------------------------------------------

    async def free_ports(self) -> list[str]:
        """The ids of PCIe root ports with nothing plugged in."""
        free = []
        for bus in await self.execute("query-pci"):
            for dev in bus.get("devices", []):
                bridge = dev.get("pci_bridge")
                if bridge is not None and dev.get("qdev_id", "").startswith("rp") \
                        and not bridge.get("devices"):
                    free.append(str(dev["qdev_id"]))
        return free

    async def _port(self, bus: str | None) -> str:
        if bus is not None:
            return bus
        free = await self.free_ports()
        if not free:
            raise HostError("no free PCIe root port left for a hot-plugged device")
        return free[0]

    async def add_nic(self, device_id: str, tap: str, mac: str, *, bus: str | None = None,
                      mtu: int | None = None, addr: str | None = None,
                      model: str = "virtio") -> str:
        """Plugs a NIC (virtio unless ``model`` says otherwise) on tap ``tap``
        into ``bus`` (and ``addr`` on it), or the first free root port;
        returns the bus it went to."""
        if model not in NIC_MODELS:
            raise HostError(f"unsupported NIC model {model!r}")
        port = await self._port(bus)
        netdev = f"{device_id}-net"
        await self.execute("netdev_add", {"type": "tap", "id": netdev, "ifname": tap,
                                          "script": "no", "downscript": "no"})
        args: dict[str, Any] = {"driver": NIC_MODELS[model], "id": device_id, "netdev": netdev,
                                "mac": mac, "bus": port, "romfile": ""}
        if addr is not None:
            args["addr"] = addr
        if mtu is not None and model == "virtio":
            args["host_mtu"] = mtu
        try:
            await self.execute("device_add", args)
        except BaseException:
            await self.execute("netdev_del", {"id": netdev})
            raise
        return port

    async def remove_nic(self, device_id: str, timeout: float = 60.0) -> None:
        await self._unplug(device_id, timeout)
        await self.execute("netdev_del", {"id": f"{device_id}-net"})

    async def add_disk(self, device_id: str, path: Path, fmt: str, *, bus: str | None = None,
                       readonly: bool = False, serial: str | None = None,
                       addr: str | None = None) -> str:
        """Plugs a virtio disk backed by ``path`` (format ``fmt``, never probed)
        into ``bus`` (and ``addr`` on it), or the first free root port."""
        port = await self._port(bus)
        node = f"{device_id}-fmt"
        add: dict[str, Any] = {"driver": fmt, "node-name": node,
                               "file": {"driver": "file", "filename": str(path)}}
        if readonly:
            add["read-only"] = True
        await self.execute("blockdev-add", add)
        args: dict[str, Any] = {"driver": "virtio-blk-pci", "id": device_id, "drive": node,
                                "bus": port}
        if serial:
            args["serial"] = serial
        if addr is not None:
            args["addr"] = addr
        try:
            await self.execute("device_add", args)
        except BaseException:
            await self.execute("blockdev-del", {"node-name": node})
            raise
        return port

    async def remove_disk(self, device_id: str, timeout: float = 60.0) -> None:
        await self._unplug(device_id, timeout)
        await self.execute("blockdev-del", {"node-name": f"{device_id}-fmt"})

    async def _unplug(self, device_id: str, timeout: float) -> None:
        await self.execute("device_del", {"id": device_id})
        await self.wait_event("DEVICE_DELETED", timeout, device=device_id)

    # --- suspend to a file ---------------------------------------------------------

    async def save(self, path: Path, timeout: float = 600.0) -> None:
        """Pauses the guest and writes its whole state to ``path`` (the guest
        stays paused; quit QEMU afterwards). Restore by starting the same guest
        with ``incoming=path``."""
        await self.pause()
        await self.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(path))}"})
        deadline = time.monotonic() + timeout
        while True:
            state = await self.execute("query-migrate")
            status = state.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise HostError(f"saving the guest failed: {state.get('error-desc', status)}")
            if time.monotonic() > deadline:
                await self.execute("migrate_cancel")
                raise HostError(f"saving the guest took over {timeout:g} s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def connect(path: Path, timeout: float = 10.0) -> AsyncIterator[QMP]:
    client = await QMP.connect(path, timeout)
    try:
        yield client
    finally:
        await client.close()
