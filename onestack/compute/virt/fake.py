"""The fake driver: instances held in memory, for API and scale tests.

It keeps what a real hypervisor would show (power state, the spec it was
built with, NICs and volumes plugged, a console log, a kept disk during a
resize, a rescue) and follows the same rules (an action on a missing
instance fails, destroying one is idempotent), so every API behaviour can be
tested without QEMU. Snapshots are small files. The serial console is a real
unix socket that replays the console log and echoes what is typed, so the
console proxy can be tested end to end.

Selected per host with ``[compute] driver = "fake"``; ``fail_next`` makes
the next call of an action raise (error paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from onestack.compute.virt.base import (
    BlockDevice,
    CachedImage,
    CpuDiagnostics,
    Diagnostics,
    DiskDiagnostics,
    HostResources,
    ImageData,
    ImageRef,
    InstanceNotFound,
    InstanceSpec,
    InvalidInstanceState,
    NicDiagnostics,
    PowerState,
    Vif,
    VirtError,
)

LOG = logging.getLogger(__name__)


class FakeDriverError(VirtError):
    """An injected failure (``FakeDriver.fail_next``)."""


@dataclass
class FakeInstance:
    spec: InstanceSpec
    power: PowerState = PowerState.RUNNING
    vifs: dict[str, Vif] = field(default_factory=dict)
    volumes: dict[str, BlockDevice] = field(default_factory=dict)
    console: list[str] = field(default_factory=list)
    resize_from: InstanceSpec | None = None
    rescued: bool = False
    rescue_spec: InstanceSpec | None = None  # the spec the rescue was made with
    passwords: dict[str, str] = field(default_factory=dict)  # set through its "agent"
    boots: int = 1
    started: float = field(default_factory=time.monotonic)  # the guest's last (re)start


class FakeDriver:
    """An in-memory hypervisor implementing :class:`~onestack.compute.virt.base.Driver`."""

    def __init__(self, host: str = "fake-host", *, vcpus: int = 64, memory_mb: int = 262144,
                 local_gb: int = 4096, state_dir: Path | None = None,
                 spawn_delay: float = 0.0) -> None:
        self.host = host
        self._resources = HostResources(
            hypervisor_type="QEMU", hypervisor_version=7002000, hypervisor_hostname=host,
            vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb, accelerator="fake",
        )
        self.instances: dict[str, FakeInstance] = {}
        self.state_dir = state_dir or Path(tempfile.gettempdir()) / f"onestack-fake-{os.getpid()}"
        self.spawn_delay = spawn_delay
        self.fail_next: dict[str, str] = {}  # action -> message of the next call's failure
        self.calls: list[tuple[str, str]] = []  # (action, uuid), for tests
        self.images: dict[str, ImageRef] = {}
        self._servers: dict[str, asyncio.AbstractServer] = {}

    # --- helpers ------------------------------------------------------------------

    def _record(self, action: str, uuid: str) -> None:
        self.calls.append((action, uuid))
        message = self.fail_next.pop(action, None)
        if message is not None:
            raise FakeDriverError(message)

    def _get(self, uuid: str) -> FakeInstance:
        found = self.instances.get(uuid)
        if found is None:
            raise InstanceNotFound(f"Instance {uuid} could not be found.")
        return found

    def _boot_log(self, inst: FakeInstance) -> None:
        spec = inst.spec
        inst.started = time.monotonic()
        inst.console.extend([
            f"[    0.000000] Linux version 6.1.0-onestack-fake (boot {inst.boots})",
            f"[    0.100000] Memory: {spec.memory_mb}M, CPUs: {spec.vcpus}",
            *(f"[    0.200000] virtio_net: {v.mac} on {v.tap}" for v in spec.vifs),
            f"Welcome to the onestack test guest ({spec.hostname})",
            f"{spec.hostname} login: ",
        ])

    # --- the Driver protocol --------------------------------------------------------

    async def init_host(self, host: str) -> None:
        self.host = host
        self._resources = replace(self._resources, hypervisor_hostname=host)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    async def resources(self) -> HostResources:
        return self._resources

    async def list_instances(self) -> list[str]:
        return list(self.instances)

    async def power_state(self, uuid: str) -> PowerState:
        inst = self.instances.get(uuid)
        return inst.power if inst is not None else PowerState.NOSTATE

    async def fetch_image(self, image: ImageRef, data: ImageData) -> CachedImage:
        """Nothing is downloaded: the fake cache only remembers the image."""
        self._record("fetch_image", image.id)
        self.images[image.id] = image
        return CachedImage(path=self.state_dir / "_base" / image.id,
                           format="raw" if image.disk_format in ("aki", "ari") else "qcow2",
                           virtual_size=image.size or 0)

    async def spawn(self, spec: InstanceSpec) -> None:
        self._record("spawn", spec.uuid)
        if self.spawn_delay:
            await asyncio.sleep(self.spawn_delay)
        existing = self.instances.get(spec.uuid)
        if existing is not None and existing.spec == spec:
            return  # idempotent: already built with this spec
        inst = FakeInstance(spec=spec, vifs={v.port_id: v for v in spec.vifs},
                            volumes={b.volume_id: b for b in spec.block_devices})
        self._boot_log(inst)
        self.instances[spec.uuid] = inst

    async def destroy(self, uuid: str) -> None:
        self._record("destroy", uuid)
        self.instances.pop(uuid, None)
        server = self._servers.pop(uuid, None)
        if server is not None:
            server.close()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / f"{uuid}.serial").unlink()

    async def reboot(self, spec: InstanceSpec, hard: bool) -> None:
        self._record("reboot", spec.uuid)
        inst = self._get(spec.uuid)
        inst.spec = spec
        inst.power = PowerState.RUNNING
        inst.boots += 1
        inst.console.append("reboot: Restarting system" if not hard else "")
        self._boot_log(inst)

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        self._record("power_off", uuid)
        inst = self._get(uuid)
        inst.power = PowerState.SHUTDOWN
        inst.console.append("reboot: Power down")

    async def power_on(self, spec: InstanceSpec) -> None:
        self._record("power_on", spec.uuid)
        inst = self._get(spec.uuid)
        inst.spec = spec
        inst.power = PowerState.RUNNING
        inst.boots += 1
        self._boot_log(inst)

    async def pause(self, uuid: str) -> None:
        self._record("pause", uuid)
        self._get(uuid).power = PowerState.PAUSED

    async def unpause(self, uuid: str) -> None:
        self._record("unpause", uuid)
        self._get(uuid).power = PowerState.RUNNING

    async def suspend(self, uuid: str) -> None:
        self._record("suspend", uuid)
        self._get(uuid).power = PowerState.SUSPENDED

    async def resume(self, spec: InstanceSpec) -> None:
        self._record("resume", spec.uuid)
        inst = self._get(spec.uuid)
        inst.power = PowerState.RUNNING

    async def attach_interface(self, uuid: str, vif: Vif) -> None:
        self._record("attach_interface", uuid)
        inst = self._get(uuid)
        inst.vifs[vif.port_id] = vif
        inst.console.append(f"[  100.000000] virtio_net: {vif.mac} hot-plugged")

    async def detach_interface(self, uuid: str, port_id: str) -> None:
        self._record("detach_interface", uuid)
        self._get(uuid).vifs.pop(port_id, None)

    async def attach_volume(self, uuid: str, device: BlockDevice) -> None:
        self._record("attach_volume", uuid)
        self._get(uuid).volumes[device.volume_id] = device

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        self._record("detach_volume", uuid)
        self._get(uuid).volumes.pop(volume_id, None)

    async def snapshot(self, uuid: str, dest: Path) -> str:
        """A small qcow2 file standing for the root disk (a valid qcow2 header,
        so the image service accepts it as ``qcow2``)."""
        self._record("snapshot", uuid)
        inst = self._get(uuid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = max(inst.spec.root_gb, 1) << 30
        await asyncio.to_thread(_write_qcow2, dest, size)
        return "qcow2"

    async def rebuild(self, spec: InstanceSpec, power_on: bool = True) -> None:
        self._record("rebuild", spec.uuid)
        inst = self._get(spec.uuid)
        inst.spec = spec
        inst.power = PowerState.RUNNING if power_on else PowerState.SHUTDOWN
        inst.boots += 1
        inst.vifs = {v.port_id: v for v in spec.vifs}
        self._boot_log(inst)

    async def resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        self._record("resize", spec.uuid)
        inst = self._get(spec.uuid)
        if inst.resize_from is None:
            inst.resize_from = inst.spec
        inst.spec = spec
        inst.power = PowerState.RUNNING if power_on else PowerState.SHUTDOWN
        inst.boots += 1
        self._boot_log(inst)

    async def confirm_resize(self, uuid: str) -> None:
        self._record("confirm_resize", uuid)
        self._get(uuid).resize_from = None

    async def revert_resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        self._record("revert_resize", spec.uuid)
        inst = self._get(spec.uuid)
        inst.spec = spec
        inst.resize_from = None
        inst.power = PowerState.RUNNING if power_on else PowerState.SHUTDOWN
        inst.boots += 1
        self._boot_log(inst)

    async def rescue(self, spec: InstanceSpec, rescue_image: Path, rescue_format: str) -> None:
        self._record("rescue", spec.uuid)
        inst = self._get(spec.uuid)
        inst.rescued = True
        inst.rescue_spec = spec
        inst.power = PowerState.RUNNING
        inst.console.append(f"Booting the rescue image {rescue_image.name}")

    async def unrescue(self, spec: InstanceSpec) -> None:
        self._record("unrescue", spec.uuid)
        inst = self._get(spec.uuid)
        inst.rescued = False
        inst.spec = spec
        inst.power = PowerState.RUNNING
        self._boot_log(inst)

    async def console_output(self, uuid: str, max_bytes: int = 1 << 20) -> str:
        inst = self._get(uuid)
        text = "\n".join(inst.console) + "\n"
        return text[-max_bytes:]

    async def set_admin_password(self, uuid: str, user: str, password: str) -> None:
        """A fake guest always has an agent that answers (as Nova's fake driver)."""
        self._record("set_admin_password", uuid)
        inst = self._get(uuid)
        if inst.power != PowerState.RUNNING:
            raise InvalidInstanceState(f"Instance {uuid} is not running.")
        inst.passwords[user] = password

    async def diagnostics(self, uuid: str) -> Diagnostics:
        """A running guest's counters: its spec's CPUs, NICs and disks (the
        root disk, the ephemeral and swap disks, the config drive, the volumes),
        no traffic, the time since its last boot as uptime."""
        inst = self._get(uuid)
        if inst.power != PowerState.RUNNING:
            raise InvalidInstanceState(f"Instance {uuid} is not running.")
        spec = inst.spec
        disks = (1 + (spec.ephemeral_gb > 0) + (spec.swap_mb > 0)
                 + (spec.config_drive is not None) + len(inst.volumes))
        zero = DiskDiagnostics(read_bytes=0, read_requests=0, write_bytes=0, write_requests=0,
                               errors_count=0)
        return Diagnostics(
            state=inst.power, uptime=int(time.monotonic() - inst.started),
            config_drive=spec.config_drive is not None, num_cpus=spec.vcpus,
            memory_max_mb=spec.memory_mb, memory_used_mb=spec.memory_mb,
            cpu_details=tuple(CpuDiagnostics(id=i, time=0) for i in range(spec.vcpus)),
            nic_details=tuple(NicDiagnostics(mac_address=v.mac, rx_octets=0, rx_errors=0,
                                             rx_drop=0, rx_packets=0, tx_octets=0, tx_errors=0,
                                             tx_drop=0, tx_packets=0)
                              for v in inst.vifs.values()),
            disk_details=(zero,) * disks)

    async def serial_console(self, uuid: str) -> Path:
        """A unix socket that sends the console log, then echoes input."""
        inst = self._get(uuid)
        path = self.state_dir / f"{uuid}.serial"
        if uuid not in self._servers:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(("\r\n".join(inst.console) + "\r\n").encode())
                await writer.drain()
                try:
                    while data := await reader.read(4096):
                        writer.write(data)
                        await writer.drain()
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    writer.close()

            self._servers[uuid] = await asyncio.start_unix_server(serve, path=str(path))
        return path

    async def vnc_console(self, uuid: str) -> Path:
        self._get(uuid)
        raise NotImplementedError("the fake driver has no graphical console")

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()


def _write_qcow2(dest: Path, size: int) -> None:
    """An empty qcow2 image of ``size`` bytes (header, L1 table, refcounts)."""
    cluster_bits = 16
    cluster = 1 << cluster_bits
    l2_entries = cluster // 8
    l1_size = max(1, -(-size // (cluster * l2_entries)))
    header = bytearray(cluster)
    fields = [
        (0, b"QFI\xfb"), (4, (3).to_bytes(4, "big")),
        (20, cluster_bits.to_bytes(4, "big")), (24, size.to_bytes(8, "big")),
        (36, l1_size.to_bytes(4, "big")), (40, (3 * cluster).to_bytes(8, "big")),
        (48, cluster.to_bytes(8, "big")), (56, (1).to_bytes(4, "big")),
        (96, (4).to_bytes(4, "big")),  # refcount_order: 16-bit refcounts
        (100, (104).to_bytes(4, "big")),  # header_length
    ]
    for offset, value in fields:
        header[offset:offset + len(value)] = value
    refcount_table = bytearray(cluster)
    refcount_table[0:8] = (2 * cluster).to_bytes(8, "big")
    refcount_block = bytearray(cluster)
    for i in range(4):  # header, refcount table, refcount block, L1 table
        refcount_block[i * 2:i * 2 + 2] = (1).to_bytes(2, "big")
    with open(dest, "wb") as fh:
        fh.write(header + refcount_table + refcount_block + bytearray(cluster))
