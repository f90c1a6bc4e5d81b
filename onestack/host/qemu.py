"""QEMU guests as processes that outlive us: start, adopt, stop, list.

Each guest has a directory ``<run_dir>/<name>/``: its spec (``spec.json``), pid
file, QMP socket, serial console socket and console log. QEMU starts with
``-daemonize`` from a thread inside the guest's network namespace (where its
taps are): the command returns once the machine is built (non-zero with the
reason if it could not be), and the guest then lives in a session of its own,
so a restart of onestack leaves it running; :meth:`Guests.get` adopts it again
(pid file, checked against ``/proc/<pid>/cmdline``, which carries the QMP
socket's path as a unique mark) and :meth:`Guests.running` finds every guest
started from this run directory, pid files or not.

The machine is what ``/work/shared/notes/guest-boot.md`` measured fastest while
keeping hot-plug: ``q35`` without SMM, HPET, SATA (unless a CD-ROM is asked
for), SMBus, VMware port or USB; the boot disk on ``pcie.0``; every other disk
and every NIC on a ``pcie-root-port`` of its own (so that it can be unplugged
later) and ``hotplug_slots`` empty root ports for devices plugged in later (q35
cannot hot-plug onto ``pcie.0``). A config drive should be a read-only virtio
disk: the test image's Debian cloud kernel has no ``ahci`` driver at all, so a
SATA CD-ROM on q35 goes unseen there (``cdrom=True`` exists for images that have one). The serial
console is a socket chardev with a log file: everything the guest prints is in
``console.log`` whether or not anyone is attached to ``serial.sock``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onestack.host import kvm, netns, procs
from onestack.host.errors import CommandError, HostError, NotFound
from onestack.host.links import check_ifname
from onestack.host.qemu_img import FORMATS
from onestack.host.qmp import QMP, connect

MACHINE_Q35 = "q35,smm=off,hpet=off,smbus=off,vmport=off,usb=off"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,20}$")  # virtio-blk keeps 20 bytes
SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class Disk:
    path: str
    format: str = "qcow2"
    id: str = "disk0"
    readonly: bool = False
    cdrom: bool = False  # a SATA CD-ROM (slower to boot from; see the module's note)
    serial: str | None = None  # virtio-blk serial: /dev/disk/by-id/virtio-<serial>
    cache: str = "none"  # "none" (O_DIRECT), "writeback" or "unsafe" (throwaway test disks)


@dataclass(frozen=True)
class Nic:
    tap: str
    mac: str
    id: str = "nic0"
    mtu: int | None = None  # told to the guest through virtio-net's host_mtu


@dataclass(frozen=True)
class GuestSpec:
    name: str  # unique under the run directory (an instance's UUID)
    memory_mb: int = 256
    cpus: int = 1
    disks: tuple[Disk, ...] = ()  # the first one boots
    nics: tuple[Nic, ...] = ()
    netns: str | None = None  # where the taps are
    kernel: str | None = None  # direct kernel boot (vmlinux with a PVH note boots fastest)
    initrd: str | None = None
    append: str | None = None
    uuid: str | None = None  # SMBIOS system UUID (the instance id)
    smbios: tuple[tuple[str, str], ...] = ()  # type 1 fields: manufacturer, product, serial...
    hotplug_slots: int = 4
    accel: str | None = None  # None: kvm.accelerator()
    cpu_model: str | None = None  # None: host (KVM) or qemu64,+rdrand (TCG)
    incoming: str | None = None  # restore the state saved to this file
    extra: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GuestSpec:
        doc = json.loads(text)
        doc["disks"] = tuple(Disk(**d) for d in doc.get("disks", ()))
        doc["nics"] = tuple(Nic(**n) for n in doc.get("nics", ()))
        doc["smbios"] = tuple(tuple(x) for x in doc.get("smbios", ()))
        doc["extra"] = tuple(doc.get("extra", ()))
        return cls(**doc)


def validate(spec: GuestSpec) -> None:
    if not NAME_RE.fullmatch(spec.name):
        raise HostError(f"invalid guest name {spec.name!r}")
    if not 16 <= spec.memory_mb <= 1 << 20 or not 1 <= spec.cpus <= 255:
        raise HostError("memory or CPU count out of range")
    if not 0 <= spec.hotplug_slots <= 32:
        raise HostError("hotplug_slots must be 0-32")
    ids = [d.id for d in spec.disks] + [n.id for n in spec.nics]
    if len(set(ids)) != len(ids) or not all(ID_RE.fullmatch(i) for i in ids):
        raise HostError(f"device ids must be unique and plain: {ids}")
    for disk in spec.disks:
        if disk.format not in FORMATS:
            raise HostError(f"unsupported disk format {disk.format!r}")
        if disk.cache not in ("none", "writeback", "unsafe"):
            raise HostError(f"invalid cache mode {disk.cache!r}")
        if "," in disk.path:
            raise HostError(f"a disk path may not contain ',': {disk.path!r}")
    for disk in spec.disks:
        if disk.serial is not None and not SERIAL_RE.fullmatch(disk.serial):
            raise HostError(f"invalid disk serial {disk.serial!r} (1-20 of A-Z a-z 0-9 _ . -)")
    for nic in spec.nics:
        if not MAC_RE.fullmatch(nic.mac):
            raise HostError(f"invalid MAC address {nic.mac!r}")
        if "," in check_ifname(nic.tap):
            raise HostError(f"invalid tap name {nic.tap!r}")
        if nic.mtu is not None and not 68 <= nic.mtu <= 65535:
            raise HostError(f"invalid MTU {nic.mtu}")
    if spec.uuid is not None:
        try:
            uuid.UUID(spec.uuid)
        except ValueError:
            raise HostError(f"invalid UUID {spec.uuid!r}") from None
    for key, value in spec.smbios:
        if not re.match(r"^[a-z_]+$", key) or "," in value:
            raise HostError(f"invalid SMBIOS field {key}={value!r}")


def command(spec: GuestSpec, directory: Path, accel: str, binary: str = "qemu-system-x86_64"
            ) -> list[str]:
    """QEMU's command line for ``spec`` (pure)."""
    validate(spec)
    d = directory
    cdrom = any(disk.cdrom for disk in spec.disks)
    machine = MACHINE_Q35 + ("" if cdrom else ",sata=off")
    cpu = spec.cpu_model or ("host" if accel == "kvm" else "qemu64,+rdrand")
    argv = [
        binary, "-name", f"guest={spec.name},debug-threads=on",
        "-machine", machine, "-accel", accel, "-cpu", cpu,
        "-m", str(spec.memory_mb), "-smp", str(spec.cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-msg", "timestamp=on",
        # -D: QEMU's messages after it detached (a failed restore...) go there
        "-daemonize", "-pidfile", str(d / "pid"), "-D", str(d / "qemu.log"),
        "-chardev", f"socket,id=qmp,path={d / 'qmp.sock'},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", (f"socket,id=serial0,path={d / 'serial.sock'},server=on,wait=off,"
                     f"logfile={d / 'console.log'},logappend=on"),
        "-serial", "chardev:serial0",
    ]
    if spec.uuid:
        argv += ["-uuid", spec.uuid]
    if spec.smbios:
        argv += ["-smbios", "type=1," + ",".join(f"{k}={v}" for k, v in spec.smbios)]
    port = 0

    def root_port() -> str:
        nonlocal port
        port += 1
        argv.extend(["-device", f"pcie-root-port,id=rp{port},chassis={port},slot={port}"])
        return f"rp{port}"

    for i, disk in enumerate(spec.disks):
        node = f"{disk.id}-fmt"
        ro = ",read-only=on" if disk.readonly or disk.cdrom else ""
        cache = (f",cache.direct={'on' if disk.cache == 'none' else 'off'}"
                 f",cache.no-flush={'on' if disk.cache == 'unsafe' else 'off'}")
        argv += ["-blockdev", (f"driver=file,node-name={disk.id}-file,filename={disk.path}"
                               f"{cache}{ro}"),
                 "-blockdev", f"driver={disk.format},node-name={node},file={disk.id}-file{cache}{ro}"]
        if disk.cdrom:
            device = f"ide-cd,drive={node},id={disk.id},bus=ide.{i}"
        else:
            bus = "" if i == 0 else f",bus={root_port()}"
            device = f"virtio-blk-pci,drive={node},id={disk.id}{bus}"
            if disk.serial:
                device += f",serial={disk.serial}"
        if i == 0 and not spec.kernel:
            device += ",bootindex=1"
        argv += ["-device", device]
    for nic in spec.nics:
        argv += ["-netdev", f"tap,id={nic.id}-net,ifname={nic.tap},script=no,downscript=no",
                 "-device", (f"virtio-net-pci,netdev={nic.id}-net,id={nic.id},mac={nic.mac},"
                             f"romfile=,bus={root_port()}"
                             + (f",host_mtu={nic.mtu}" if nic.mtu else ""))]
    for _ in range(spec.hotplug_slots):
        root_port()
    if spec.kernel:
        argv += ["-kernel", spec.kernel]
        if spec.initrd:
            argv += ["-initrd", spec.initrd]
        if spec.append:
            argv += ["-append", spec.append]
    if spec.incoming:
        argv += ["-incoming", f"exec:cat {shlex.quote(spec.incoming)}"]
    return argv + list(spec.extra)


@dataclass(frozen=True)
class Guest:
    name: str
    pid: int
    directory: Path
    spec: GuestSpec
    accel: str

    @property
    def qmp_path(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def serial_path(self) -> Path:
        return self.directory / "serial.sock"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"


class Guests:
    """The QEMU guests under one run directory."""

    def __init__(self, run_dir: Path, binary: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.binary = binary

    def directory(self, name: str) -> Path:
        if not NAME_RE.fullmatch(name):
            raise HostError(f"invalid guest name {name!r}")
        return self.run_dir / name

    def _marker(self, name: str) -> str:
        return str(self.directory(name) / "qmp.sock")

    def get(self, name: str) -> Guest | None:
        """The running guest ``name`` (adopted from its pid file), or None."""
        d = self.directory(name)
        pid = procs.running(d / "pid", self._marker(name))
        if pid is None:
            return None
        try:
            spec = GuestSpec.from_json((d / "spec.json").read_text())
            accel = (d / "accel").read_text().strip()
        except (FileNotFoundError, ValueError, TypeError):
            raise HostError(f"guest {name} runs but its spec.json is missing or bad") from None
        return Guest(name, pid, d, spec, accel)

    def names(self) -> list[str]:
        """Guests that have a directory here (running or not)."""
        if not self.run_dir.is_dir():
            return []
        return sorted(p.name for p in self.run_dir.iterdir()
                      if p.is_dir() and (p / "spec.json").exists())

    def running(self) -> dict[str, int]:
        """Every live QEMU started from this run directory, by guest name,
        including ones whose directory is gone."""
        found: dict[str, int] = {}
        prefix = f"socket,id=qmp,path={self.run_dir}/"
        for pid in procs.find(prefix):
            for arg in procs.cmdline(pid) or []:
                if arg.startswith(prefix):
                    found[arg[len(prefix):].split("/", 1)[0]] = pid
        return found

    def _prepare(self, spec: GuestSpec) -> tuple[Path, str]:
        validate(spec)
        d = self.directory(spec.name)
        if len(str(d / "serial.sock")) > SOCKET_PATH_MAX:
            raise HostError(f"run directory path too long for a socket: {d}")
        if procs.find(self._marker(spec.name)):  # pid file or not
            raise HostError(f"guest {spec.name} is already running")
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        for stale in ("pid", "qmp.sock", "serial.sock"):
            (d / stale).unlink(missing_ok=True)
        accel = kvm.accelerator(spec.accel)
        (d / "spec.json").write_text(spec.to_json())
        (d / "accel").write_text(accel + "\n")
        return d, accel

    def _launch(self, spec: GuestSpec) -> Guest:
        d, accel = self._prepare(spec)
        binary = self.binary or kvm.qemu_binary()
        if binary is None:
            raise HostError("qemu-system-x86_64 is not installed (Debian package "
                            "qemu-system-x86)")
        argv = command(spec, d, accel, binary)
        proc = netns.popen(spec.netns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise HostError(f"QEMU for {spec.name} did not start within 120 s") from None
        if proc.returncode != 0:
            self._cleanup_runtime(d)
            raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
        guest = self.get(spec.name)
        if guest is None:
            raise HostError(f"QEMU for {spec.name} exited after it started: "
                            f"{self.log_tail(spec.name)}")
        return guest

    def log_tail(self, name: str, max_bytes: int = 2000) -> str:
        """The end of QEMU's own messages for guest ``name``."""
        try:
            return (self.directory(name) / "qemu.log").read_text(errors="replace")[-max_bytes:]
        except FileNotFoundError:
            return ""

    async def start(self, spec: GuestSpec) -> Guest:
        """Starts the guest; returns once QEMU has built the machine (the guest
        runs, or waits for its saved state when ``spec.incoming`` is set)."""
        return await asyncio.to_thread(self._launch, spec)

    async def restore(self, spec: GuestSpec, state: Path, timeout: float = 600.0) -> Guest:
        """Starts the guest from a state :meth:`QMP.save` wrote and resumes it;
        the state file is removed once it is loaded.

        ``spec`` must describe the machine as it was when it was saved,
        hot-plugged devices included: a device that went onto the first free
        root port sits exactly where listing it after the others in the spec
        puts it (with one hot-plug slot fewer), so the PCI layout matches."""
        from dataclasses import replace

        guest = await self.start(replace(spec, incoming=str(state)))
        try:
            async with self.qmp(guest.name) as q:
                deadline = time.monotonic() + timeout
                while (status := await q.status()) in ("inmigrate", "restore-vm"):
                    if time.monotonic() > deadline:
                        raise HostError(f"restoring {spec.name} took over {timeout:g} s")
                    await asyncio.sleep(0.05)
                if status == "paused":
                    await q.resume()
        except (OSError, HostError) as exc:
            await asyncio.sleep(0.2)  # let QEMU finish writing why
            raise HostError(f"restoring {spec.name} failed: {exc}: "
                            f"{self.log_tail(spec.name)}") from exc
        state.unlink(missing_ok=True)
        return guest

    @asynccontextmanager
    async def qmp(self, name: str, timeout: float = 10.0) -> AsyncIterator[QMP]:
        guest = self.get(name)
        if guest is None:
            raise NotFound(f"guest {name} is not running")
        async with connect(guest.qmp_path, timeout) as client:
            yield client

    async def stop(self, name: str, graceful_timeout: float = 0.0) -> bool:
        """Ends guest ``name``: with ``graceful_timeout`` > 0 the ACPI power
        button first, waiting that long for the guest to power off; then QMP
        ``quit``, SIGTERM, SIGKILL. Runtime files go; the directory (spec,
        console log) stays. True if it was running."""
        marker = self._marker(name)
        pids = procs.find(marker)
        if not pids:
            self._cleanup_runtime(self.directory(name))
            return False
        if graceful_timeout > 0:
            try:
                async with self.qmp(name) as q:
                    await q.powerdown()
            except HostError:
                pass
            await _wait_all_gone(pids, graceful_timeout)
        if any(not procs.gone(p) for p in pids):
            try:
                async with self.qmp(name, timeout=2) as q:
                    await q.quit()
            except (TimeoutError, HostError, OSError):
                pass
            await _wait_all_gone(pids, 5)
        for pid in pids:
            await asyncio.to_thread(procs.terminate, pid, marker)
        self._cleanup_runtime(self.directory(name))
        return True

    async def remove(self, name: str) -> bool:
        """Stops the guest and removes its directory; True if there was anything."""
        was = await self.stop(name)
        d = self.directory(name)
        existed = d.exists()
        shutil.rmtree(d, ignore_errors=True)
        return was or existed

    def console_output(self, name: str, max_bytes: int = 1 << 20) -> str:
        """The end of what the guest printed on its serial console."""
        path = self.directory(name) / "console.log"
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(size - max_bytes, 0))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def _cleanup_runtime(d: Path) -> None:
        for name in ("pid", "qmp.sock", "serial.sock"):
            (d / name).unlink(missing_ok=True)


async def _wait_all_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(not procs.gone(p) for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def guest_env() -> dict[str, Any]:
    """What this host offers guests (for an agent's report)."""
    usable, why = kvm.kvm_usable()
    return {"accelerator": kvm.accelerator(), "kvm": usable, "kvm_reason": why,
            "qemu": kvm.qemu_binary()}
