"""The QEMU driver: Compute's ``Driver`` over ``onestack/host`` (QEMU, QMP, qemu-img, taps).

Instances are QEMU processes in sessions of their own (they outlive
onestack; the host layer adopts them again by their pid files), each with a
qcow2 overlay on a cached base image, virtio disks and NICs (or what the image
asks for: ``domain.py``), taps on their networks' bridges, a serial console
logged to a file and served on a socket, a VNC server on a socket, and the
config drive as a read-only virtio disk. KVM where ``/dev/kvm`` really runs a
guest, TCG otherwise (``[compute] accelerator`` forces either).

As in Nova, an instance is running (ACTIVE) once its QEMU process has built
the machine and started it, not once the guest has booted. Spawn makes the
disks, the config drive and the taps at once, then starts QEMU.

Every call is idempotent and leaves nothing behind when it fails: the
instance's record (``layout.py``) is written before anything is made, so a
failed or interrupted call is undone from it, and a retried one converges.
Lifecycle actions beyond power (hot-plug, snapshot, rebuild, resize, rescue)
are in ``actions.py``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

from onestack.compute.virt.base import (
    BlockDevice,
    CachedImage,
    Diagnostics,
    GuestAgentNotEnabled,
    GuestAgentUnresponsive,
    HostResources,
    ImageData,
    ImageRef,
    InstanceNotFound,
    InstanceSpec,
    InvalidInstanceState,
    PowerState,
    Vif,
    VirtError,
)
from onestack.compute.virt.qemu import actions, disks, domain, layout, taps
from onestack.compute.virt.qemu.imagecache import ImageCache
from onestack.compute.virt.qemu.machine import PAUSED_STATES, Instances
from onestack.config import Settings
from onestack.host.base import Host
from onestack.host.errors import HostError

log = logging.getLogger(__name__)

GiB = 1 << 30


class QemuDriver:
    """The real driver. ``host`` is ``linux_host(...)`` (or a ``FakeHost`` in tests)."""

    def __init__(self, host: Host, settings: Settings, *, accel: str | None = None) -> None:
        cfg = settings.compute
        self.host = host
        self.settings = settings
        self.directory = (Path(cfg.instances_dir).expanduser() if cfg.instances_dir
                          else settings.state_dir / "instances")
        self.cache = ImageCache(host, self.directory / "_base",
                                max_bytes=int(cfg.image_cache_max_gb * GiB),
                                min_age=cfg.image_cache_min_age_seconds,
                                force_raw=cfg.force_raw_images)
        self._accel = accel or (cfg.accelerator if cfg.accelerator in ("kvm", "tcg") else None)
        self._hostname = ""
        self._instances: Instances | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> QemuDriver:
        """The driver on this machine (the host layer's files under <state_dir>/run)."""
        from onestack.host.base import linux_host

        accel = settings.compute.accelerator
        forced = accel if accel in ("kvm", "tcg") else None
        return cls(linux_host(settings.state_dir / "run", accel=forced), settings)

    @property
    def instances(self) -> Instances:
        if self._instances is None:
            raise VirtError("The QEMU driver was not initialised (init_host).")
        return self._instances

    # --- the host ------------------------------------------------------------------

    async def init_host(self, host: str) -> None:
        """Directories, temporaries a crash left, the cache's housekeeping, and
        the accelerator probe started (once per process, ~1.4 s here when
        /dev/kvm cannot run a guest: the first spawn waits for it, nothing
        else). Running guests need nothing: every call adopts them."""
        self._hostname = host
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(os.chmod, self.directory, 0o700)
        probe = None if self._accel else asyncio.create_task(self.host.guests.accelerator())
        cfg = self.settings.compute
        netns = cfg.default_netns or None
        if netns is not None and netns not in await self.host.net.list_netns(netns):
            netns = None
        opts = domain.Options(accel=self._accel or "tcg", hotplug_slots=cfg.hotplug_slots,
                              vnc=cfg.vnc_enabled, default_video=cfg.default_video_model,
                              default_netns=netns, version=_version(),
                              tb_size_mb=cfg.tcg_tb_size_mb)
        self._instances = Instances(self.host, self.directory, self.cache, opts, probe)
        await asyncio.to_thread(self.cache.sweep_partial)
        await self.prune_images()
        log.info("QEMU driver on %s: instances in %s", host, self.directory)

    async def resources(self) -> HostResources:
        def read() -> HostResources:
            meminfo = Path("/proc/meminfo").read_text()
            m = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
            st = os.statvfs(self.directory)
            return HostResources(
                hypervisor_type="QEMU", hypervisor_version=_qemu_version(),
                hypervisor_hostname=self._hostname or os.uname().nodename,
                vcpus=os.cpu_count() or 1, memory_mb=int(m.group(1)) // 1024 if m else 0,
                local_gb=st.f_blocks * st.f_frsize // GiB,
                accelerator=accel)

        accel = (await self.instances.options()).accel
        return await asyncio.to_thread(read)

    async def list_instances(self) -> list[str]:
        """Instances with files here, and QEMU processes and directories of this
        host's run directory (a stray whose instance files are gone is listed
        too, so that the agent's reconcile destroys it)."""
        names = set(await asyncio.to_thread(self.instances.names))
        names |= set(await self.host.guests.running())  # QEMU processes
        names |= set(await self.host.guests.names())  # their directories (console logs)
        names = {n for n in names if layout.is_instance_name(n)}
        return sorted(names)

    async def power_state(self, uuid: str) -> PowerState:
        status = await self.instances.status(uuid)
        if status is not None:
            if status in ("running",):
                return PowerState.RUNNING
            if status in ("guest-panicked", "internal-error", "io-error"):
                return PowerState.CRASHED
            if status == "shutdown":
                return PowerState.SHUTDOWN
            if status in PAUSED_STATES:
                return PowerState.PAUSED
            return PowerState.NOSTATE
        record = await self.instances.record(uuid)
        if record is None:
            return (PowerState.SHUTDOWN if await asyncio.to_thread(
                self.instances.files(uuid).directory.is_dir) else PowerState.NOSTATE)
        return PowerState.SUSPENDED if record.suspended else PowerState.SHUTDOWN

    # --- images ----------------------------------------------------------------------

    async def fetch_image(self, image: ImageRef, data: ImageData) -> CachedImage:
        got = await self.cache.fetch(image, data)
        await self.prune_images()
        return got

    async def prune_images(self) -> list[Path]:
        in_use = await self.instances.in_use()
        return await asyncio.to_thread(self.cache.prune, in_use)

    # --- life ------------------------------------------------------------------------

    async def spawn(self, spec: InstanceSpec) -> None:
        inst = self.instances
        async with inst.lock(spec.uuid):
            record = await inst.record(spec.uuid)
            if record is not None and record.spec_digest == layout.spec_digest(spec) \
                    and await inst.running(spec.uuid) is not None:
                # a retried spawn of a guest that runs (QEMU starts only once
                # everything else was made, so it is complete)
                if record.building:
                    await inst.save(replace(record, building=False))
                return
            if record is not None or await asyncio.to_thread(
                    inst.files(spec.uuid).directory.exists):
                await inst.remove(spec.uuid)  # what an earlier attempt left
            record = await inst.new_record(spec)
            files = inst.files(spec.uuid)
            await inst.save(record)  # before anything is made
            try:
                size = (await asyncio.to_thread(self.cache.virtual_size, spec.image_path)
                        if spec.image_path else None)
                await disks.gather([disks.make_local(self.host, spec, files, image_size=size),
                                    taps.plug(self.host, spec.vifs)])
                await inst.start(record, spawning=True)
            except BaseException as exc:
                await inst.remove(spec.uuid)
                if isinstance(exc, HostError):
                    raise VirtError(f"Building the instance failed: {exc}") from exc
                raise

    async def destroy(self, uuid: str) -> None:
        inst = self.instances
        async with inst.lock(uuid):
            await inst.remove(uuid)
        await self.prune_images()

    async def reboot(self, spec: InstanceSpec, hard: bool) -> None:
        inst = self.instances
        async with inst.lock(spec.uuid):
            record = await inst.need(spec.uuid)
            if not hard and await inst.status(spec.uuid) == "running":
                wait = self.settings.compute.wait_soft_reboot_seconds
                if await inst.shut_down(spec.uuid, wait):
                    await inst.stop(record, 0)  # the taps
                    await self._boot(spec, record)
                    return
                log.info("instance %s did not shut down within %s s: hard reboot",
                         spec.uuid, wait)
            await inst.stop(record, 0)
            await asyncio.to_thread(inst.files(spec.uuid).state.unlink, True)
            await self._boot(spec, record)

    async def _boot(self, spec: InstanceSpec, record: layout.Record) -> None:
        """Starts the instance afresh from ``spec`` (its disks as they are)."""
        inst = self.instances
        fresh = await inst.new_record(spec)
        fresh = replace(fresh, resize_guest=record.resize_guest,
                        resize_bases=record.resize_bases, building=False)
        files = inst.files(spec.uuid)
        if spec.config_drive is not None and not await asyncio.to_thread(
                (files / layout.CONFIG).exists):
            await disks.make_config_drive(self.host, spec, files)
        await inst.start(fresh)

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        inst = self.instances
        async with inst.lock(uuid):
            record = await inst.need(uuid)
            await inst.stop(record, timeout)

    async def power_on(self, spec: InstanceSpec) -> None:
        inst = self.instances
        async with inst.lock(spec.uuid):
            record = await inst.need(spec.uuid)
            if await inst.running(spec.uuid) is not None:
                return
            await asyncio.to_thread(inst.files(spec.uuid).state.unlink, True)
            await self._boot(spec, record)

    async def pause(self, uuid: str) -> None:
        async with self.instances.lock(uuid):
            await self.instances.need(uuid)
            async with self.instances.qmp(uuid) as q:
                if await q.status() != "paused":
                    await q.pause()

    async def unpause(self, uuid: str) -> None:
        async with self.instances.lock(uuid):
            await self.instances.need(uuid)
            async with self.instances.qmp(uuid) as q:
                if await q.status() == "paused":
                    await q.resume()

    async def suspend(self, uuid: str) -> None:
        """The guest's memory to ``state.sav`` (QMP migrate to a file), then
        QEMU stops; resume restores it into the same machine."""
        inst = self.instances
        async with inst.lock(uuid):
            record = await inst.need(uuid)
            if record.suspended and await inst.running(uuid) is None:
                return
            files = inst.files(uuid)
            try:  # the record says suspended only once the state is complete
                async with inst.qmp(uuid) as q:
                    await q.save(files.state)
            except HostError as exc:
                await asyncio.to_thread(files.state.unlink, True)
                raise VirtError(f"Suspending the instance failed: {exc}") from exc
            record = replace(record, suspended=True)
            await inst.save(record)
            await inst.stop(record, 0)

    async def resume(self, spec: InstanceSpec) -> None:
        inst = self.instances
        async with inst.lock(spec.uuid):
            record = await inst.need(spec.uuid)
            if await inst.running(spec.uuid) is not None:
                return
            if not record.suspended:
                raise InvalidInstanceState(f"Instance {spec.uuid} is not suspended.")
            await inst.restore(record)

    # --- devices, disks, rebuild, resize, rescue: actions.py -----------------------------

    async def attach_interface(self, uuid: str, vif: Vif) -> None:
        async with self.instances.lock(uuid):
            await actions.attach_interface(self.instances, uuid, vif)

    async def detach_interface(self, uuid: str, port_id: str) -> None:
        async with self.instances.lock(uuid):
            await actions.detach_interface(self.instances, uuid, port_id)

    async def attach_volume(self, uuid: str, device: BlockDevice) -> None:
        async with self.instances.lock(uuid):
            await actions.attach_volume(self.instances, uuid, device)

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        async with self.instances.lock(uuid):
            await actions.detach_volume(self.instances, uuid, volume_id)

    async def snapshot(self, uuid: str, dest: Path) -> str:
        async with self.instances.lock(uuid):
            return await actions.snapshot(self.instances, uuid, dest)

    async def rebuild(self, spec: InstanceSpec, power_on: bool = True) -> None:
        async with self.instances.lock(spec.uuid):
            await actions.rebuild(self.instances, spec, self.settings.compute.shutdown_timeout,
                                  power_on)
        await self.prune_images()

    async def resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        async with self.instances.lock(spec.uuid):
            await actions.resize(self.instances, spec, self.settings.compute.shutdown_timeout,
                                 power_on)

    async def confirm_resize(self, uuid: str) -> None:
        async with self.instances.lock(uuid):
            await actions.confirm_resize(self.instances, uuid)
        await self.prune_images()

    async def revert_resize(self, spec: InstanceSpec, power_on: bool = True) -> None:
        async with self.instances.lock(spec.uuid):
            await actions.revert_resize(self.instances, spec, power_on)

    async def rescue(self, spec: InstanceSpec, rescue_image: Path, rescue_format: str) -> None:
        async with self.instances.lock(spec.uuid):
            await actions.rescue(self.instances, spec, rescue_image, rescue_format,
                                 self.settings.compute.shutdown_timeout)

    async def unrescue(self, spec: InstanceSpec) -> None:
        async with self.instances.lock(spec.uuid):
            await actions.unrescue(self.instances, spec)
        await self.prune_images()

    # --- consoles ----------------------------------------------------------------------

    async def console_output(self, uuid: str, max_bytes: int = 1 << 20) -> str:
        inst = self.instances
        if await inst.record(uuid) is None and await inst.running(uuid) is None:
            raise InstanceNotFound(f"Instance {uuid} could not be found.")
        return await self.host.guests.console_output(uuid, max_bytes)

    async def diagnostics(self, uuid: str) -> Diagnostics:
        from onestack.compute.virt.qemu import diagnostics

        return await diagnostics.collect(self.instances, uuid, await self.power_state(uuid))

    async def serial_console(self, uuid: str) -> Path:
        guest = await self.instances.running(uuid)
        if guest is None:
            await self.instances.need(uuid)
            raise InvalidInstanceState(f"Instance {uuid} is not running.")
        return guest.serial_path

    async def vnc_console(self, uuid: str) -> Path:
        guest = await self.instances.running(uuid)
        if guest is None:
            await self.instances.need(uuid)
            raise InvalidInstanceState(f"Instance {uuid} is not running.")
        if not guest.spec.vnc:
            raise VirtError("VNC consoles are not enabled on this host.")
        return guest.vnc_path

    async def set_admin_password(self, uuid: str, user: str, password: str) -> None:
        """Through the guest's qemu-ga (``guest-set-user-password``), as Nova's
        libvirt driver does; the image must have asked for the agent."""
        from onestack.host.qga import AgentError, AgentUnresponsive

        guest = await self.instances.running(uuid)
        if guest is None:
            await self.instances.need(uuid)
            raise InvalidInstanceState(f"Instance {uuid} is not running.")
        if not guest.spec.guest_agent:
            raise GuestAgentNotEnabled("QEMU guest agent is not enabled")
        try:
            await self.host.guests.guest_agent(uuid, "guest-set-user-password", {
                "username": user, "password": base64.b64encode(password.encode()).decode(),
                "crypted": False})
        except AgentUnresponsive as exc:
            raise GuestAgentUnresponsive(str(exc)) from None
        except AgentError as exc:
            raise VirtError(f"Error from the guest agent while setting the password for "
                            f"username \"{user}\": {exc.desc}") from None


_qemu_version_cache: list[int] = []


def _qemu_version() -> int:
    """QEMU's version as Nova encodes it (7.2.22 -> 7002022); 0 if unknown."""
    if not _qemu_version_cache:
        from onestack.host import kvm

        binary = kvm.qemu_binary()
        value = 0
        if binary:
            try:
                out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                     timeout=10).stdout
                m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
                if m:
                    major, minor, micro = (int(x) for x in m.groups())
                    value = major * 1000000 + minor * 1000 + micro
            except (OSError, subprocess.SubprocessError):
                pass
        _qemu_version_cache.append(value)
    return _qemu_version_cache[0]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("onestack")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "onestack"

