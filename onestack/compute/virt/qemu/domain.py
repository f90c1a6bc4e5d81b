"""The machine for an instance: an ``InstanceSpec`` made a host ``GuestSpec`` (pure).

What libvirt's domain XML is to Nova. The disks in Nova's order (root,
ephemeral, swap, config drive, then volumes), one NIC per VIF, the flavor's
memory and vCPUs, SMBIOS as Nova sets it (cloud-init recognises OpenStack by
it), direct kernel boot when the image came with a kernel, and the image
properties Nova's libvirt driver honours:

* ``hw_machine_type``: ``q35`` (Nova's default for x86_64 since 2023.1; the
  fast machine) or ``pc``, versioned or not;
* ``hw_disk_bus``: ``virtio`` (default), ``scsi``, ``sata``, ``ide`` for the
  local disks (volumes and the config drive stay virtio: they are hot-plugged
  or must be read before any other driver loads);
* ``hw_cdrom_bus``: ``ide``/``sata`` puts the config drive on a CD-ROM, as
  Nova does (the test image cannot read it there: see docs/host.md);
* ``hw_vif_model``: ``virtio`` (default), ``e1000``, ``e1000e``, ``rtl8139``,
  ``pcnet``, ``ne2k_pci``;
* ``hw_rng_model``: ``virtio`` adds a virtio RNG (unless the flavor's
  ``hw_rng:allowed`` is false);
* ``hw_video_model``: the VNC console's video device (``none`` for none);
* ``hw_qemu_guest_agent``: a virtio-serial channel for qemu-ga (what
  ``changePassword`` goes through);
* ``os_command_line``: the kernel command line of direct kernel boot;
* ``hw_rescue_device`` (``disk``, ``cdrom``) and ``hw_rescue_bus`` of a rescue
  image (the agent copies them into the spec): a stable device rescue, as
  Nova's libvirt driver does it - every device keeps its place and the rescue
  disk comes last, with the first boot index (without them, the legacy
  rescue: the rescue disk first, the root disk second).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from onestack.compute.virt.base import BlockDevice, InstanceSpec, Vif, VirtError
from onestack.compute.virt.qemu import layout
from onestack.compute.virt.qemu.layout import InstanceFiles
from onestack.host.qemu_spec import (
    DISK_BUSES,
    MACHINE_RE,
    NIC_MODELS,
    VIDEO_MODELS,
    Disk,
    GuestSpec,
    Nic,
    assign_slots,
    root_ports,
    slotted,
)

# Nova's default kernel command line for direct kernel boot (libvirt driver)
DEFAULT_CMDLINE = "root=/dev/vda console=tty0 console=ttyS0 console=hvc0"
SMBIOS_MANUFACTURER = "OpenStack Foundation"
SMBIOS_PRODUCT = "OpenStack Nova"
SMBIOS_FAMILY = "Virtual Machine"
FALSE = ("false", "0", "no", "off")
TRUE = ("1", "t", "true", "on", "y", "yes")  # oslo strutils.TRUE_STRINGS


@dataclass(frozen=True)
class Options:
    """Per-host settings that shape every machine."""

    accel: str  # "kvm" | "tcg"
    hotplug_slots: int = 4
    vnc: bool = True
    default_video: str = "vga"
    default_netns: str | None = None  # where NIC-less guests run
    version: str = ""  # SMBIOS version (onestack's)
    tb_size_mb: int = 0  # TCG's translated-code buffer ([compute] tcg_tb_size_mb)


def device_id(prefix: str, ident: str) -> str:
    """A QEMU device id for a port or volume (letters first, 26 characters at
    most: its block nodes' names add a suffix and stop at 31)."""
    return prefix + "".join(c for c in ident if c.isalnum())[:23]


def vif_device(vif: Vif | str) -> str:
    return device_id("vif", vif if isinstance(vif, str) else vif.port_id)


def volume_device(device: BlockDevice | str) -> str:
    return device_id("vol", device if isinstance(device, str) else device.volume_id)


def tap_mac(mac: str) -> str:
    """The tap's own MAC: the guest's with its first byte fe, as libvirt sets
    it, so that the bridge never takes a guest's address as its own."""
    return "fe" + mac[2:]


def volume_serial(device: BlockDevice) -> str:
    serial = "".join(c for c in device.serial if c.isalnum() or c in "_.-")[:20]
    return serial or volume_device(device)[:20]


def machine(spec: InstanceSpec) -> str:
    value = spec.properties.get("hw_machine_type", "q35").strip()
    if not MACHINE_RE.fullmatch(value):
        raise VirtError(f"Machine type {value!r} is not supported (q35 or pc, versioned or not).")
    return value


def disk_bus(spec: InstanceSpec) -> str:
    value = spec.properties.get("hw_disk_bus", "virtio").strip()
    if value not in DISK_BUSES:
        raise VirtError(f"Disk bus {value!r} is not supported ({', '.join(DISK_BUSES)}).")
    return value


def vif_model(spec: InstanceSpec) -> str:
    value = spec.properties.get("hw_vif_model", "virtio").strip()
    if value not in NIC_MODELS:
        raise VirtError(f"VIF model {value!r} is not supported ({', '.join(NIC_MODELS)}).")
    return value


def video_model(spec: InstanceSpec, opts: Options) -> str:
    if not opts.vnc:
        return "none"
    value = spec.properties.get("hw_video_model", opts.default_video).strip()
    if value not in VIDEO_MODELS:
        raise VirtError(f"Video model {value!r} is not supported ({', '.join(VIDEO_MODELS)}).")
    return value


def wants_rng(spec: InstanceSpec) -> bool:
    model = spec.properties.get("hw_rng_model", "").strip()
    allowed = spec.properties.get("hw_rng:allowed", "true").strip().lower() not in FALSE
    if model and model != "virtio":
        raise VirtError(f"RNG model {model!r} is not supported (virtio).")
    return model == "virtio" and allowed


def wants_agent(spec: InstanceSpec) -> bool:
    """``hw_qemu_guest_agent`` (a flexible boolean, as Nova reads it): a
    virtio-serial channel for qemu-ga."""
    return spec.properties.get("hw_qemu_guest_agent", "").strip().lower() in TRUE


def kernel_cmdline(spec: InstanceSpec, accel: str) -> str:
    custom = spec.properties.get("os_command_line", "").strip()
    if custom:
        return custom
    return DEFAULT_CMDLINE + (" no_timer_check" if accel == "tcg" else "")


def netns_of(vifs: tuple[Vif, ...], default: str | None) -> str | None:
    """The namespace the guest runs in: its VIFs' (one for all), else the default."""
    spaces = {vif.netns for vif in vifs}
    if len(spaces) > 1:
        raise VirtError("The instance's ports are in more than one network namespace "
                        f"({', '.join(sorted(str(s) for s in spaces))}); one QEMU process "
                        "cannot reach them all.")
    return spaces.pop() if spaces else default


def nic(vif: Vif, model: str, slot: int | None = None) -> Nic:
    return Nic(tap=vif.tap, mac=vif.mac, id=vif_device(vif), mtu=vif.mtu, model=model, slot=slot)


def volume_disk(device: BlockDevice, slot: int | None = None) -> Disk:
    return Disk(str(device.path), device.format, volume_device(device),
                readonly=device.readonly, serial=volume_serial(device), slot=slot)


def stable_rescue(spec: InstanceSpec) -> tuple[bool, str] | None:
    """(a CD-ROM?, its bus) of a stable device rescue, or None for the legacy
    one: the rescue image's ``hw_rescue_device`` (default ``disk``) and
    ``hw_rescue_bus`` (default: the instance's bus for that kind of device)."""
    device = spec.properties.get("hw_rescue_device", "").strip()
    bus = spec.properties.get("hw_rescue_bus", "").strip()
    if not device and not bus:
        return None
    device = device or "disk"
    if device not in ("disk", "cdrom"):
        raise VirtError(f"Rescue device {device!r} is not supported (disk, cdrom).")
    cdrom = device == "cdrom"
    if not bus:
        bus = (spec.properties.get("hw_cdrom_bus", "").strip() or "ide") if cdrom \
            else disk_bus(spec)
    if bus not in DISK_BUSES or (cdrom and bus not in ("ide", "sata")):
        raise VirtError(f"Rescue bus {bus!r} is not supported for a {device} "
                        f"({', '.join(('ide', 'sata') if cdrom else DISK_BUSES)}).")
    return cdrom, bus


def build(spec: InstanceSpec, files: InstanceFiles, opts: Options, *,
          rescue: bool = False) -> GuestSpec:
    """The machine for ``spec`` with its disks in ``files`` (``rescue``: the
    rescue disk boots - first and the root disk second, or last with the
    other devices in their places for a stable device rescue)."""
    bus = disk_bus(spec)
    stable = stable_rescue(spec) if rescue and spec.image_path is not None else None
    disks: list[Disk] = []
    if spec.image_path is not None:
        if rescue and stable is None:
            disks.append(Disk(str(files / layout.RESCUE), "qcow2", "rescue", bus=bus))
        disks.append(Disk(str(files / layout.ROOT), "qcow2", "root", bus=bus))
    elif not spec.block_devices:
        raise VirtError("The instance has neither an image nor a volume to boot from.")
    if spec.ephemeral_gb:
        disks.append(Disk(str(files / layout.EPHEMERAL), "qcow2", "eph0", bus=bus))
    if spec.swap_mb:
        disks.append(Disk(str(files / layout.SWAP), "qcow2", "swap", bus=bus))
    if spec.config_drive is not None:
        cdrom_bus = spec.properties.get("hw_cdrom_bus", "").strip()
        cdrom = cdrom_bus in ("ide", "sata")
        disks.append(Disk(str(files / layout.CONFIG), "raw", "config", readonly=True,
                          cdrom=cdrom, cache="writeback"))
    disks += [volume_disk(d) for d in spec.block_devices]
    if stable is not None:
        cdrom, rescue_bus = stable
        disks.append(Disk(str(files / layout.RESCUE), "qcow2", "rescue", bus=rescue_bus,
                          cdrom=cdrom, readonly=cdrom, boot=True))
    model = vif_model(spec)
    smbios = (("manufacturer", SMBIOS_MANUFACTURER), ("product", SMBIOS_PRODUCT),
              ("version", opts.version or "onestack"), ("serial", spec.uuid),
              ("family", SMBIOS_FAMILY))
    kernel = spec.kernel_path is not None
    guest = GuestSpec(
        name=spec.uuid, memory_mb=spec.memory_mb, cpus=spec.vcpus, disks=tuple(disks),
        nics=tuple(nic(v, model) for v in spec.vifs),
        netns=netns_of(spec.vifs, opts.default_netns),
        kernel=str(spec.kernel_path) if kernel else None,
        initrd=str(spec.ramdisk_path) if kernel and spec.ramdisk_path else None,
        append=kernel_cmdline(spec, opts.accel) if kernel else None,
        uuid=spec.uuid, smbios=smbios, hotplug_slots=opts.hotplug_slots, accel=opts.accel,
        machine=machine(spec), rng=wants_rng(spec), vnc=opts.vnc, guest_agent=wants_agent(spec),
        video=video_model(spec, opts), tb_size_mb=opts.tb_size_mb)
    if stable is not None and stable == (False, "virtio"):
        # the last slot of the machine's devices: the others keep theirs
        last = len(slotted(guest))
        guest = replace(guest, disks=tuple(replace(d, slot=last) if d.id == "rescue" else d
                                           for d in guest.disks))
    return pin_slots(guest)


def pin_slots(guest: GuestSpec) -> GuestSpec:
    """The same machine with every slotted device's slot written down (what a
    restore and a later hot-plug go by)."""
    slots = assign_slots(guest)
    return replace(
        guest,
        disks=tuple(replace(d, slot=slots[d.id]) if d.id in slots else d for d in guest.disks),
        nics=tuple(replace(n, slot=slots[n.id]) for n in guest.nics))


def free_slot(guest: GuestSpec) -> int | None:
    """The lowest slot no device takes (for a hot-plug), or None."""
    used = set(assign_slots(guest).values())
    return next((n for n in range(1, root_ports(guest) + 1) if n not in used), None)


def with_device(guest: GuestSpec, device: Disk | Nic) -> GuestSpec:
    """The machine after ``device`` was hot-plugged into its slot (the slots
    stay as many: one empty slot fewer)."""
    if isinstance(device, Nic):
        guest = replace(guest, nics=(*guest.nics, device))
    else:
        guest = replace(guest, disks=(*guest.disks, device))
    return replace(guest, hotplug_slots=max(guest.hotplug_slots - 1, 0))


def without_device(guest: GuestSpec, dev_id: str) -> GuestSpec:
    """The machine after device ``dev_id`` was unplugged (its slot empty again)."""
    nics = tuple(n for n in guest.nics if n.id != dev_id)
    disks = tuple(d for d in guest.disks if d.id != dev_id)
    if len(nics) + len(disks) == len(guest.nics) + len(guest.disks):
        return guest
    return replace(guest, nics=nics, disks=disks, hotplug_slots=guest.hotplug_slots + 1)


def bases(spec: InstanceSpec, rescue_image: Path | None = None) -> list[str]:
    """The cached files the instance's disks and boot need."""
    found = [spec.image_path, spec.kernel_path, spec.ramdisk_path, rescue_image]
    return sorted({str(p) for p in found if p is not None})
