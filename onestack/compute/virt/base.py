"""The virt driver seam: what the compute agent asks of a hypervisor.

The compute agent (the durable-task handlers of ``boot``, ``reboot``,
``resize`` ...) decides *what* an instance should be; a driver makes the host
so, through ``onestack/host/`` only. Two drivers implement this protocol:
``virt/qemu/`` (real QEMU guests, KVM where it really runs a guest, TCG
otherwise) and ``virt/fake.py`` (in memory, for fast tests and for the
``bench/compute-scale`` scheduling figures).

It follows the shape of Nova's ``nova.virt.driver.ComputeDriver``, cut down to
what onestack serves. Every call is idempotent where Nova's is (destroying a
missing instance is not an error; spawning an instance that already runs with
the same spec is a no-op), so that a task retried after a crash converges.
Power states are Nova's numbers (``nova.compute.power_state``), which the API
shows as ``OS-EXT-STS:power_state``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class VirtError(Exception):
    """A driver could not do what it was asked; the message is fit for a
    server's ``fault`` (what failed and why, no host paths beyond need)."""


class InstanceNotFound(VirtError):
    """The instance does not exist on this host (for calls that need it to)."""


class InvalidInstanceState(VirtError):
    """The instance exists but is not in a state the call can act on (e.g.
    ``pause`` of a guest that does not run)."""


class GuestAgentNotEnabled(VirtError):
    """The image did not ask for a guest agent (``hw_qemu_guest_agent``): what
    needs one (setting the admin password) is refused, as Nova's
    ``QemuGuestAgentNotEnabled``."""


class GuestAgentUnresponsive(VirtError):
    """The guest agent's channel is there but no agent answers in the guest
    (Nova's libvirt driver raises NotImplementedError then)."""


class PowerState(enum.IntEnum):
    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True)
class Vif:
    """One NIC: a Networking port plugged as a tap on its network's bridge."""

    port_id: str
    mac: str
    tap: str  # the tap device's name ("tap" + port_id[:11], as Nova and Neutron name it)
    bridge: str  # the network's bridge the tap is enslaved to
    netns: str | None  # the namespace that holds the bridge (the data plane's root)
    mtu: int = 1500


@dataclass(frozen=True)
class BlockDevice:
    """A volume attached to the instance (Block Storage, later): a file the guest writes."""

    volume_id: str
    path: Path
    format: str  # "qcow2" | "raw"
    serial: str  # shown to the guest as /dev/disk/by-id/virtio-<serial> (first 20 chars)
    readonly: bool = False


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a driver needs to build (or rebuild) one instance."""

    uuid: str
    name: str  # Nova's instance name ("instance-0000002a"), also the guest's SMBIOS name
    hostname: str
    vcpus: int
    memory_mb: int
    root_gb: int  # 0: the image's own virtual size
    ephemeral_gb: int = 0
    swap_mb: int = 0
    image_path: Path | None = None  # the base image in the host's image cache
    image_format: str = "qcow2"  # the cached base image's format ("qcow2" | "raw")
    # Direct kernel boot, as Nova does for an image with ``kernel_id`` /
    # ``ramdisk_id`` (AMI/AKI/ARI): the cached kernel and ramdisk files. The
    # kernel command line is the image property ``os_command_line`` (in
    # ``properties``), else Nova's "root=/dev/vda console=tty0 console=ttyS0".
    kernel_path: Path | None = None
    ramdisk_path: Path | None = None
    vifs: tuple[Vif, ...] = ()
    block_devices: tuple[BlockDevice, ...] = ()
    # The files of a config drive (path inside the drive -> bytes, e.g.
    # "openstack/latest/meta_data.json"), or None for no config drive. The
    # driver makes it an ISO 9660 image labelled "config-2".
    config_drive: dict[str, bytes] | None = None
    # hw_* image properties and flavor extra specs the driver honours.
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostResources:
    """What the host offers, for the scheduler and os-hypervisors."""

    hypervisor_type: str  # "QEMU" (TCG or KVM: Nova's libvirt driver says "QEMU" for both)
    hypervisor_version: int  # e.g. 7002000 for QEMU 7.2.0, as Nova encodes it
    hypervisor_hostname: str
    vcpus: int
    memory_mb: int
    local_gb: int
    accelerator: str  # "kvm" | "tcg"


@dataclass(frozen=True)
class ImageRef:
    """An image to put into the host's image cache, as Image shows it."""

    id: str
    disk_format: str  # Glance's: "qcow2", "raw", "aki", "ari", "ami", "vmdk", "iso" ...
    size: int | None = None  # bytes of data, checked after the download
    os_hash_algo: str | None = None  # e.g. "sha512"; checked when given
    os_hash_value: str | None = None
    checksum: str | None = None  # MD5 (Glance's legacy checksum); checked when given


# Opens the image's data from the start (e.g. an adapter over
# ``onestack.image.interface``); called at most once per fetch.
ImageData = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class CachedImage:
    """A verified base image in the host's cache, shared by the instances on it."""

    path: Path
    format: str  # "qcow2" | "raw" (what InstanceSpec.image_format takes)
    virtual_size: int  # bytes the guest sees


@dataclass(frozen=True)
class CpuDiagnostics:
    id: int
    time: int | None  # nanoseconds of host CPU the vCPU used
    utilisation: int | None = None  # percent, where known


@dataclass(frozen=True)
class NicDiagnostics:
    """A NIC's counters as the guest sees them (its rx is what it received)."""

    mac_address: str
    rx_octets: int | None = None
    rx_errors: int | None = None
    rx_drop: int | None = None
    rx_packets: int | None = None
    rx_rate: int | None = None
    tx_octets: int | None = None
    tx_errors: int | None = None
    tx_drop: int | None = None
    tx_packets: int | None = None
    tx_rate: int | None = None


@dataclass(frozen=True)
class DiskDiagnostics:
    read_bytes: int | None = None
    read_requests: int | None = None
    write_bytes: int | None = None
    write_requests: int | None = None
    errors_count: int | None = None


@dataclass(frozen=True)
class Diagnostics:
    """What ``GET /servers/{id}/diagnostics`` shows (Nova's ``nova.virt.diagnostics``,
    the 2.48 format; the API makes the older one from it)."""

    state: PowerState
    uptime: int | None  # seconds since the guest's process started
    config_drive: bool
    num_cpus: int
    memory_max_mb: int
    memory_used_mb: int | None
    cpu_details: tuple[CpuDiagnostics, ...] = ()
    nic_details: tuple[NicDiagnostics, ...] = ()
    disk_details: tuple[DiskDiagnostics, ...] = ()


class Driver(Protocol):
    async def init_host(self, host: str) -> None:
        """Prepare the host (directories, probes) before the agent claims tasks."""
        ...

    async def resources(self) -> HostResources: ...

    async def list_instances(self) -> list[str]:
        """UUIDs of the instances that exist on this host (running or not)."""
        ...

    async def power_state(self, uuid: str) -> PowerState:
        """``NOSTATE`` when the host has nothing of the instance (never made,
        destroyed, or lost with its files), ``SHUTDOWN`` when its disks are
        there but no guest runs, ``SUSPENDED`` when its memory is saved."""
        ...

    async def fetch_image(self, image: ImageRef, data: ImageData) -> CachedImage:
        """The image in the host's cache: downloaded once (concurrent callers
        for one image share the download), verified (size, hash, the format
        it claims, no backing file) and converted to what the driver runs;
        kernels and ramdisks are kept as they are. Unused images are removed
        later by the cache's own rules (age, size)."""
        ...

    async def spawn(self, spec: InstanceSpec) -> None:
        """Create the disks (an overlay on the cached base image, grown to
        ``root_gb``), the config drive, the taps, and start the guest."""
        ...

    async def destroy(self, uuid: str) -> None:
        """Stop the guest and remove everything of it: process, disks, taps, files."""
        ...

    async def reboot(self, spec: InstanceSpec, hard: bool) -> None: ...

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """ACPI power button, then hard stop after ``timeout`` seconds (0: at once)."""
        ...

    async def power_on(self, spec: InstanceSpec) -> None: ...

    async def pause(self, uuid: str) -> None: ...

    async def unpause(self, uuid: str) -> None: ...

    async def suspend(self, uuid: str) -> None:
        """Save the guest's memory to disk and stop its process."""
        ...

    async def resume(self, spec: InstanceSpec) -> None: ...

    async def attach_interface(self, uuid: str, vif: Vif) -> None: ...

    async def detach_interface(self, uuid: str, port_id: str) -> None: ...

    async def attach_volume(self, uuid: str, device: BlockDevice) -> None: ...

    async def detach_volume(self, uuid: str, volume_id: str) -> None: ...

    async def snapshot(self, uuid: str, dest: Path) -> str:
        """Write a standalone copy of the root disk to ``dest`` (consistent:
        the guest is paused or stopped around the copy by the caller's rules);
        returns its format ("qcow2")."""
        ...

    async def rebuild(self, spec: InstanceSpec, power_on: bool = True) -> None:
        """A new root disk from ``spec.image_path``, the guest started again
        (left stopped with ``power_on=False``: Nova keeps a SHUTOFF server
        SHUTOFF through a rebuild)."""
        ...

    async def resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        """Stop, keep the old root disk aside, grow the disk and start with the
        new flavor (not started with ``power_on=False``: a stopped server stays
        stopped, as Nova's finish_migration); the old disk stays until confirm
        or revert."""
        ...

    async def confirm_resize(self, uuid: str) -> None: ...

    async def revert_resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        """Back to the kept disk with the old flavor's ``spec`` (started unless
        ``power_on=False``)."""
        ...

    async def rescue(self, spec: InstanceSpec, rescue_image: Path, rescue_format: str) -> None:
        """Boot from a fresh disk of the rescue image, the original root disk attached second."""
        ...

    async def unrescue(self, spec: InstanceSpec) -> None: ...

    async def console_output(self, uuid: str, max_bytes: int = 1 << 20) -> str: ...

    async def diagnostics(self, uuid: str) -> Diagnostics:
        """Usage counters of a running guest (``InvalidInstanceState`` when it
        does not run, as Nova's 409 for os-server-diagnostics)."""
        ...

    async def serial_console(self, uuid: str) -> Path:
        """The unix socket of the guest's serial port (for the console proxy)."""
        ...

    async def set_admin_password(self, uuid: str, user: str, password: str) -> None:
        """Sets ``user``'s password inside the running guest through its agent
        (``InvalidInstanceState`` when it does not run, ``GuestAgentNotEnabled``
        without an agent channel, ``GuestAgentUnresponsive`` when none answers)."""
        ...

    async def vnc_console(self, uuid: str) -> Path:
        """The unix socket of the guest's VNC server (for the noVNC proxy)."""
        ...
