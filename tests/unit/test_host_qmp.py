"""The QMP client against a scripted QMP server on a unix socket (no QEMU)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.host import qmp
from onestack.host.errors import HostError

Handler = Callable[[str, dict[str, Any]], tuple[Any, list[dict[str, Any]]]]

PCI = [{"bus": 0, "devices": [
    {"qdev_id": "disk0", "class_info": {"desc": "SCSI controller"}},
    {"qdev_id": "rp1", "pci_bridge": {"bus": {"number": 1}, "devices": [{"qdev_id": "nic0"}]}},
    {"qdev_id": "rp2", "pci_bridge": {"bus": {"number": 2}, "devices": []}},
    {"qdev_id": "rp3", "pci_bridge": {"bus": {"number": 3}}},
    {"qdev_id": "other-bridge", "pci_bridge": {"bus": {"number": 4}, "devices": []}},
]}]


class Server:
    """Answers each command with handler(command, arguments) -> (return or
    {"error": ...}, events to send before the reply); records what it got."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.got: list[tuple[str, dict[str, Any]]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}).encode() + b"\n")
        while line := await reader.readline():
            msg = json.loads(line)
            cmd, args = msg["execute"], msg.get("arguments", {})
            self.got.append((cmd, args))
            result, events = ({}, []) if cmd == "qmp_capabilities" else self.handler(cmd, args)
            for ev in events:
                writer.write(json.dumps(ev).encode() + b"\n")
            if isinstance(result, dict) and "error" in result:
                reply = {"error": result["error"], "id": msg.get("id")}
            else:
                reply = {"return": result, "id": msg.get("id")}
            writer.write(b'{"return": {}, "id": "someone-else"}\n')  # not ours: skipped
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()


def run(tmp_path: Path, handler: Handler, body: Callable[[qmp.QMP], Any]) -> tuple[Any, Server]:
    server = Server(handler)

    async def go() -> Any:
        path = tmp_path / "qmp.sock"
        srv = await asyncio.start_unix_server(server.serve, str(path))
        try:
            async with qmp.connect(path, timeout=2) as client:
                return await body(client)
        finally:
            srv.close()

    return asyncio.run(go()), server


def event(name: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "data": data, "timestamp": {"seconds": 0, "microseconds": 0}}


def test_commands_status_and_errors(tmp_path: Path) -> None:
    def handler(cmd: str, args: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if cmd == "query-status":
            return {"status": "paused", "running": False}, [event("STOP")]
        if cmd == "device_del":
            return {"error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}}, []
        return {}, []

    async def body(q: qmp.QMP) -> Any:
        status = await q.status()
        with pytest.raises(qmp.QMPError) as err:
            await q.execute("device_del", {"id": "x"})
        assert (err.value.error_class, err.value.desc) == ("DeviceNotFound",
                                                          "Device 'x' not found")
        stop = await q.wait_event("STOP", timeout=1)  # arrived earlier: kept
        with pytest.raises(TimeoutError):
            await q.wait_event("SHUTDOWN", timeout=0.2)
        return status, stop["event"]

    (status, stop), server = run(tmp_path, handler, body)
    assert (status, stop) == ("paused", "STOP")
    assert [c for c, _ in server.got] == ["qmp_capabilities", "query-status", "device_del"]


def test_hotplug_goes_to_a_free_root_port_and_waits_for_the_guest(tmp_path: Path) -> None:
    def handler(cmd: str, args: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if cmd == "query-pci":
            return PCI, []
        if cmd == "device_del":
            return {}, [event("DEVICE_DELETED", device="other"),
                        event("DEVICE_DELETED", device=args["id"], path="/x")]
        return {}, []

    async def body(q: qmp.QMP) -> Any:
        assert await q.free_ports() == ["rp2", "rp3"]
        port = await q.add_nic("nic1", "tap1", "fa:16:3e:00:00:01", mtu=1450)
        disk = await q.add_disk("vol1", Path("/v/1.raw"), "raw", bus="rp9", readonly=True,
                                serial="v1")
        await q.remove_nic("nic1", timeout=1)
        await q.remove_disk("vol1", timeout=1)
        return port, disk

    (port, disk), server = run(tmp_path, handler, body)
    assert (port, disk) == ("rp2", "rp9")
    assert server.got[1:] == [
        ("query-pci", {}), ("query-pci", {}),
        ("netdev_add", {"type": "tap", "id": "nic1-net", "ifname": "tap1", "script": "no",
                        "downscript": "no"}),
        ("device_add", {"driver": "virtio-net-pci", "id": "nic1", "netdev": "nic1-net",
                        "mac": "fa:16:3e:00:00:01", "bus": "rp2", "romfile": "",
                        "host_mtu": 1450}),
        ("blockdev-add", {"driver": "raw", "node-name": "vol1-fmt", "read-only": True,
                          "file": {"driver": "file", "filename": "/v/1.raw"}}),
        ("device_add", {"driver": "virtio-blk-pci", "id": "vol1", "drive": "vol1-fmt",
                        "bus": "rp9", "serial": "v1"}),
        ("device_del", {"id": "nic1"}), ("netdev_del", {"id": "nic1-net"}),
        ("device_del", {"id": "vol1"}), ("blockdev-del", {"node-name": "vol1-fmt"}),
    ]


def test_a_failed_device_add_takes_its_backend_away(tmp_path: Path) -> None:
    def handler(cmd: str, args: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if cmd == "query-pci":
            return [{"bus": 0, "devices": []}], []
        if cmd == "device_add":
            return {"error": {"class": "GenericError", "desc": "Bus 'rp1' is full"}}, []
        return {}, []

    async def body(q: qmp.QMP) -> None:
        with pytest.raises(HostError, match="no free PCIe root port"):
            await q.add_nic("nic1", "tap1", "fa:16:3e:00:00:01")
        with pytest.raises(qmp.QMPError, match="is full"):
            await q.add_nic("nic1", "tap1", "fa:16:3e:00:00:01", bus="rp1")
        with pytest.raises(qmp.QMPError, match="is full"):
            await q.add_disk("vol1", Path("/v"), "qcow2", bus="rp1")

    _, server = run(tmp_path, handler, body)
    assert [c for c, _ in server.got[1:]] == [
        "query-pci", "netdev_add", "device_add", "netdev_del", "blockdev-add", "device_add",
        "blockdev-del"]


def test_save_pauses_then_migrates_to_the_file(tmp_path: Path) -> None:
    states = iter(["active", "active", "completed"])

    def handler(cmd: str, args: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        if cmd == "query-migrate":
            return {"status": next(states)}, []
        return {}, []

    async def body(q: qmp.QMP) -> None:
        await q.save(Path("/state/vm 1.bin"))

    _, server = run(tmp_path, handler, body)
    assert server.got[1:3] == [("stop", {}), ("migrate", {"uri": "exec:cat > '/state/vm 1.bin'"})]
    assert [c for c, _ in server.got[3:]] == ["query-migrate"] * 3


def test_no_socket(tmp_path: Path) -> None:
    async def go() -> None:
        await qmp.QMP.connect(tmp_path / "none.sock", timeout=0.2)

    with pytest.raises(HostError, match="no QMP socket"):
        asyncio.run(go())


def test_hotplug_into_a_named_slot_with_another_model(tmp_path: Path) -> None:
    """A pc machine's slot is an address on pci.0; an e1000 gets no host_mtu."""
    _, server = run(tmp_path, lambda cmd, args: ({}, []), lambda q: _plug_pc(q))
    assert server.got[1:] == [
        ("netdev_add", {"type": "tap", "id": "nic2-net", "ifname": "tap2", "script": "no",
                        "downscript": "no"}),
        ("device_add", {"driver": "e1000", "id": "nic2", "netdev": "nic2-net",
                        "mac": "fa:16:3e:00:00:02", "bus": "pci.0", "romfile": "",
                        "addr": "0x13"}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "vol2-fmt",
                          "file": {"driver": "file", "filename": "/v/2"}}),
        ("device_add", {"driver": "virtio-blk-pci", "id": "vol2", "drive": "vol2-fmt",
                        "bus": "pci.0", "addr": "0x14"}),
    ]


async def _plug_pc(q: qmp.QMP) -> None:
    with pytest.raises(HostError, match="unsupported NIC model"):
        await q.add_nic("nic9", "tap9", "fa:16:3e:00:00:09", model="3c905")
    await q.add_nic("nic2", "tap2", "fa:16:3e:00:00:02", bus="pci.0", addr="0x13",
                    mtu=1450, model="e1000")
    await q.add_disk("vol2", Path("/v/2"), "qcow2", bus="pci.0", addr="0x14")
