"""What a QEMU guest is made of (:class:`GuestSpec`), and QEMU's command line for it.

Pure: nothing here starts a process (``onestack.host.qemu`` does). The
machine is what ``/work/shared/notes/guest-boot.md`` measured fastest while
keeping hot-plug: ``q35`` (any ``pc-q35-*`` version too) without SMM, HPET,
SATA (unless a disk needs it), SMBus, VMware port or USB; ``pc`` (i440FX) is
offered for images that ask for it.

Device placement is deterministic, so that a guest saved to a file can be
started again with the very same PCI layout (a restore fails otherwise):

* the boot disk sits on the root bus (``pcie.0``/``pci.0``, first);
* on q35, ``root_ports`` = (devices that need one) + ``hotplug_slots``
  ``pcie-root-port`` devices ``rp1`` ... ``rpN`` come next, in order; every
  other virtio disk and every NIC goes onto one of them - the one its
  ``slot`` names, else the lowest one no device claimed - so it can be
  unplugged, and the empty ones take hot-plugged devices (q35 cannot
  hot-plug onto ``pcie.0``);
* on pc, the same slot numbers are addresses on ``pci.0`` (``0x10 + slot``);
* then the root-bus extras: a virtio-scsi, AHCI or xHCI (USB) controller when
  a disk needs one, the guest agent's virtio-serial channel when asked, the
  RNG, the video device.

The first disk boots, unless another one is marked ``boot`` (it gets the
boot index and the first disk keeps its place on the root bus).

A config drive should be a read-only virtio disk: the test image's Debian
cloud kernel has no ``ahci`` driver at all, so a SATA CD-ROM on q35 goes
unseen there (``cdrom=True`` exists for images that have one). The serial
console is a socket chardev with a log file: everything the guest prints is
in ``console.log`` whether or not anyone is attached to ``serial.sock``.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from onestack.host.errors import HostError
from onestack.host.links import check_ifname
from onestack.host.qemu_img import FORMATS

MACHINE_OPTIONS = "smm=off,hpet=off,smbus=off,vmport=off,usb=off"
MACHINE_Q35 = "q35," + MACHINE_OPTIONS
MACHINE_RE = re.compile(r"^(q35|pc|pc-q35-\d{1,2}\.\d{1,2}|pc-i440fx-\d{1,2}\.\d{1,2})$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# device ids: the block nodes made for a disk add "-file"/"-fmt", and QEMU's
# node names stop at 31 characters
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,25}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,20}$")  # virtio-blk keeps 20 bytes
# NIC models (Nova's hw_vif_model names) -> QEMU devices
NIC_MODELS = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e",
              "rtl8139": "rtl8139", "pcnet": "pcnet", "ne2k_pci": "ne2k_pci"}
DISK_BUSES = ("virtio", "scsi", "sata", "ide", "usb")
# video models (Nova's hw_video_model names) -> QEMU devices
VIDEO_MODELS = {"none": None, "vga": "VGA", "cirrus": "cirrus-vga", "vmvga": "vmware-svga",
                "qxl": "qxl-vga", "virtio": "virtio-vga", "bochs": "bochs-display"}
PC_SLOT_BASE = 0x10  # pc: device slot n sits at pci.0 address 0x10 + n
MAX_SLOTS = 32


@dataclass(frozen=True)
class Disk:
    path: str
    format: str = "qcow2"
    id: str = "disk0"
    readonly: bool = False
    cdrom: bool = False  # an IDE/SATA CD-ROM (slower to boot from; see the module's note)
    serial: str | None = None  # /dev/disk/by-id/virtio-<serial> for virtio disks
    cache: str = "none"  # "none" (O_DIRECT), "writeback" or "unsafe" (throwaway test disks)
    bus: str = "virtio"  # "virtio" | "scsi" | "sata" | "ide" | "usb" (usb-storage on an xHCI)
    slot: int | None = None  # the root port (q35) or pci.0 slot (pc) of a virtio disk
    # boots first (bootindex) though it is not the first disk: a stable device
    # rescue's rescue disk, added last so that every other device keeps its place
    boot: bool = False


@dataclass(frozen=True)
class Nic:
    tap: str
    mac: str
    id: str = "nic0"
    mtu: int | None = None  # told to the guest through virtio-net's host_mtu
    model: str = "virtio"  # a key of NIC_MODELS
    slot: int | None = None  # as Disk.slot


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
    tb_size_mb: int = 0  # TCG's translated-code buffer (tb-size); 0: QEMU's default
    incoming: str | None = None  # restore the state saved to this file
    machine: str = "q35"  # q35 | pc | pc-q35-X.Y | pc-i440fx-X.Y
    rng: bool = False  # a virtio RNG fed from the host's /dev/urandom
    vnc: bool = False  # a VNC server on the unix socket vnc.sock
    video: str = "none"  # a key of VIDEO_MODELS (what VNC shows)
    # a virtio-serial channel for the QEMU guest agent (qemu-ga) on qga.sock
    guest_agent: bool = False
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

    @property
    def q35(self) -> bool:
        return self.machine == "q35" or self.machine.startswith("pc-q35-")


def slotted(spec: GuestSpec) -> list[Disk | Nic]:
    """The devices that sit in a slot of their own (every one but the boot
    disk and the disks of a controller), in the spec's order."""
    devices: list[Disk | Nic] = [d for d in spec.disks[1:] if d.bus == "virtio" and not d.cdrom]
    return [*devices, *spec.nics]


def root_ports(spec: GuestSpec) -> int:
    """How many slots (root ports on q35) the guest has: one per slotted device
    plus ``hotplug_slots`` empty ones."""
    return len(slotted(spec)) + spec.hotplug_slots


def assign_slots(spec: GuestSpec) -> dict[str, int]:
    """Device id -> slot number (1-based): a device's own ``slot``, else the
    lowest one no device claimed."""
    devices = slotted(spec)
    total = root_ports(spec)
    taken: dict[str, int] = {d.id: d.slot for d in devices if d.slot is not None}
    if len(set(taken.values())) != len(taken):
        raise HostError(f"two devices claim one slot: {taken}")
    if any(not 1 <= s <= total for s in taken.values()):
        raise HostError(f"a device's slot is outside 1-{total}: {taken}")
    free = iter(sorted(set(range(1, total + 1)) - set(taken.values())))
    return {d.id: taken[d.id] if d.slot is not None else next(free) for d in devices}


def validate(spec: GuestSpec) -> None:
    if not NAME_RE.fullmatch(spec.name):
        raise HostError(f"invalid guest name {spec.name!r}")
    if not 16 <= spec.memory_mb <= 1 << 20 or not 1 <= spec.cpus <= 255:
        raise HostError("memory or CPU count out of range")
    if not 0 <= spec.hotplug_slots <= MAX_SLOTS:
        raise HostError(f"hotplug_slots must be 0-{MAX_SLOTS}")
    if not MACHINE_RE.fullmatch(spec.machine):
        raise HostError(f"unsupported machine type {spec.machine!r}")
    if spec.video not in VIDEO_MODELS:
        raise HostError(f"unsupported video model {spec.video!r}")
    ids = [d.id for d in spec.disks] + [n.id for n in spec.nics]
    if len(set(ids)) != len(ids) or not all(ID_RE.fullmatch(i) for i in ids):
        raise HostError(f"device ids must be unique and plain: {ids}")
    for disk in spec.disks:
        if disk.format not in FORMATS:
            raise HostError(f"unsupported disk format {disk.format!r}")
        if disk.cache not in ("none", "writeback", "unsafe"):
            raise HostError(f"invalid cache mode {disk.cache!r}")
        if disk.bus not in DISK_BUSES:
            raise HostError(f"unsupported disk bus {disk.bus!r}")
        if "," in disk.path:
            raise HostError(f"a disk path may not contain ',': {disk.path!r}")
        if disk.serial is not None and not SERIAL_RE.fullmatch(disk.serial):
            raise HostError(f"invalid disk serial {disk.serial!r} (1-20 of A-Z a-z 0-9 _ . -)")
    if sum(d.boot for d in spec.disks) > 1:
        raise HostError("only one disk can be the boot disk")
    if len(_ide_disks(spec)) > (6 if spec.q35 else 4):
        raise HostError("too many IDE/SATA disks for the machine")
    for nic in spec.nics:
        if not MAC_RE.fullmatch(nic.mac):
            raise HostError(f"invalid MAC address {nic.mac!r}")
        if "," in check_ifname(nic.tap):
            raise HostError(f"invalid tap name {nic.tap!r}")
        if nic.mtu is not None and not 68 <= nic.mtu <= 65535:
            raise HostError(f"invalid MTU {nic.mtu}")
        if nic.model not in NIC_MODELS:
            raise HostError(f"unsupported NIC model {nic.model!r}")
    if root_ports(spec) > MAX_SLOTS:
        raise HostError(f"more than {MAX_SLOTS} devices and hot-plug slots")
    assign_slots(spec)
    if spec.uuid is not None:
        try:
            uuid.UUID(spec.uuid)
        except ValueError:
            raise HostError(f"invalid UUID {spec.uuid!r}") from None
    for key, value in spec.smbios:
        if not re.match(r"^[a-z_]+$", key) or "," in value:
            raise HostError(f"invalid SMBIOS field {key}={value!r}")
    for path in (spec.kernel, spec.initrd):
        if path is not None and "," in path:
            raise HostError(f"a kernel or initrd path may not contain ',': {path!r}")


def _ide_disks(spec: GuestSpec) -> list[Disk]:
    return [d for d in spec.disks if d.cdrom or d.bus in ("sata", "ide")]


def machine_arg(spec: GuestSpec) -> str:
    """``-machine``: the fast options; SATA (q35's AHCI) only when a disk needs it."""
    sata = spec.q35 and bool(_ide_disks(spec))
    return f"{spec.machine},{MACHINE_OPTIONS}" + ("" if sata else ",sata=off")


def slot_address(spec: GuestSpec, slot: int) -> tuple[str, str | None]:
    """(bus, addr) of ``slot``: its root port on q35, an address on pci.0 on pc
    (what a hot-plug into that slot passes to ``device_add``)."""
    if spec.q35:
        return f"rp{slot}", None
    return "pci.0", f"{PC_SLOT_BASE + slot:#x}"


def slot_bus(spec: GuestSpec, slot: int) -> str:
    """The ``bus=...`` (and ``addr=``) options that put a device into ``slot``."""
    bus, addr = slot_address(spec, slot)
    return f"bus={bus}" + (f",addr={addr}" if addr else "")


def accel_arg(spec: GuestSpec, accel: str) -> str:
    """``-accel``'s value: under TCG with the size of its translated-code buffer
    when one is set (QEMU's default reserves 1 GiB; what a guest fills of it is
    most of QEMU's own memory under TCG)."""
    if accel == "tcg" and spec.tb_size_mb > 0:
        return f"tcg,tb-size={spec.tb_size_mb}"
    return accel


def command(spec: GuestSpec, directory: Path, accel: str, binary: str = "qemu-system-x86_64"
            ) -> list[str]:
    """QEMU's command line for ``spec`` (pure)."""
    validate(spec)
    d = directory
    cpu = spec.cpu_model or ("host" if accel == "kvm" else "qemu64,+rdrand")
    argv = [
        binary, "-name", f"guest={spec.name},debug-threads=on",
        "-machine", machine_arg(spec), "-accel", accel_arg(spec, accel), "-cpu", cpu,
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
    if spec.vnc:
        argv += ["-vnc", f"unix:{d / 'vnc.sock'}"]
    if spec.uuid:
        argv += ["-uuid", spec.uuid]
    if spec.smbios:
        argv += ["-smbios", "type=1," + ",".join(f"{k}={v}" for k, v in spec.smbios)]
    slots = assign_slots(spec)
    devices: list[str] = []  # in the order they are made: the root bus's layout
    first = spec.disks[0].id if spec.disks and not spec.disks[0].cdrom else None
    boot = next((d.id for d in spec.disks if d.boot), first)
    ide_unit = 0
    scsi = usb = False
    for disk in spec.disks:
        node = f"{disk.id}-fmt"
        ro = ",read-only=on" if disk.readonly or disk.cdrom else ""
        cache = (f",cache.direct={'on' if disk.cache == 'none' else 'off'}"
                 f",cache.no-flush={'on' if disk.cache == 'unsafe' else 'off'}")
        argv += ["-blockdev", (f"driver=file,node-name={disk.id}-file,filename={disk.path}"
                               f"{cache}{ro}"),
                 "-blockdev", f"driver={disk.format},node-name={node},file={disk.id}-file{cache}{ro}"]
        if disk.cdrom or disk.bus in ("sata", "ide"):
            kind = "ide-cd" if disk.cdrom else "ide-hd"
            # q35's AHCI has one unit per bus (ide.0-5); PIIX two per bus (ide.0-1)
            where = (f"bus=ide.{ide_unit}" if spec.q35
                     else f"bus=ide.{ide_unit // 2},unit={ide_unit % 2}")
            ide_unit += 1
            device = f"{kind},drive={node},id={disk.id},{where}"
        elif disk.bus == "scsi":
            scsi = True
            device = f"scsi-hd,drive={node},id={disk.id},bus=scsi0.0"
        elif disk.bus == "usb":
            usb = True
            device = f"usb-storage,drive={node},id={disk.id},bus=usb0.0"
        elif disk.id == first:
            device = f"virtio-blk-pci,drive={node},id={disk.id}"
        else:
            device = f"virtio-blk-pci,drive={node},id={disk.id},{slot_bus(spec, slots[disk.id])}"
        if disk.bus == "virtio" and not disk.cdrom and disk.serial:
            device += f",serial={disk.serial}"
        if disk.id == boot and not spec.kernel:
            device += ",bootindex=1"
        if disk.id == first and disk.bus == "virtio":
            argv += ["-device", device]  # first on the root bus
        else:
            devices.append(device)
    for nic in spec.nics:
        argv += ["-netdev", f"tap,id={nic.id}-net,ifname={nic.tap},script=no,downscript=no"]
        devices.append(f"{NIC_MODELS[nic.model]},netdev={nic.id}-net,id={nic.id},mac={nic.mac},"
                       f"romfile=,{slot_bus(spec, slots[nic.id])}"
                       + (f",host_mtu={nic.mtu}" if nic.mtu and nic.model == "virtio" else ""))
    if spec.q35:
        for port in range(1, root_ports(spec) + 1):
            argv += ["-device", f"pcie-root-port,id=rp{port},chassis={port},slot={port}"]
    if scsi:
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
    if usb:
        argv += ["-device", "qemu-xhci,id=usb0"]
    if spec.guest_agent:
        argv += ["-chardev", f"socket,id=qga0,path={d / 'qga.sock'},server=on,wait=off",
                 "-device", "virtio-serial-pci,id=vserial0",
                 "-device", "virtserialport,bus=vserial0.0,chardev=qga0,"
                            "name=org.qemu.guest_agent.0"]
    if spec.rng:
        argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", "virtio-rng-pci,rng=rng0"]
    video = VIDEO_MODELS[spec.video]
    if video:
        argv += ["-device", video]
    for device in devices:
        argv += ["-device", device]
    if spec.kernel:
        argv += ["-kernel", spec.kernel]
        if spec.initrd:
            argv += ["-initrd", spec.initrd]
        if spec.append:
            argv += ["-append", spec.append]
    if spec.incoming:
        argv += ["-incoming", f"exec:cat {shlex.quote(spec.incoming)}"]
    return argv + list(spec.extra)
