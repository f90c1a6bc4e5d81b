"""The QEMU driver against the in-memory host: what it asks of the machine for each call.

Every test drives ``QemuDriver`` over ``FakeHost`` (no QEMU, no root): the
calls it makes (qemu-img, taps, QEMU, QMP), the machine it builds, the power
states it reports, that a retried call converges and that a failed or
finished one leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.virt.base import (
    BlockDevice,
    GuestAgentNotEnabled,
    GuestAgentUnresponsive,
    InstanceNotFound,
    InstanceSpec,
    InvalidInstanceState,
    PowerState,
    Vif,
    VirtError,
)
from onestack.compute.virt.qemu.domain import vif_device, volume_device
from onestack.compute.virt.qemu.driver import QemuDriver
from onestack.compute.virt.qemu.layout import read_record
from onestack.config import load_settings
from onestack.host.errors import HostError
from onestack.host.fake import FakeHost
from onestack.host.qemu import GuestSpec

NS = "onestack-dp"
BRIDGE = "brq-net1"
UUID = "6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0001"
PORT1 = "8a7c2d1e-0000-4000-8000-000000000001"
PORT2 = "9b8d3e2f-0000-4000-8000-000000000002"
VOL1 = "1b2c3d4e-0000-4000-8000-0000000000aa"
GiB = 1 << 30


def vif(port: str, mac: str = "fa:16:3e:00:00:01", ns: str | None = NS) -> Vif:
    return Vif(port_id=port, mac=mac, tap="tap" + port[:11], bridge=BRIDGE, netns=ns, mtu=1450)


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.host = FakeHost()
        self.settings = load_settings(tmp_path / "state", {}, env={})
        self.settings.compute.hotplug_slots = 2
        self.settings.compute.shutdown_timeout = 5
        self.settings.compute.wait_soft_reboot_seconds = 1
        self.settings.compute.tcg_tb_size_mb = 96
        self.driver = QemuDriver(self.host, self.settings, accel="tcg")
        self.base = tmp_path / "base.qcow2"
        self.kernel = tmp_path / "vmlinux"
        self.ramdisk = tmp_path / "initrd"

    async def setup(self) -> None:
        await self.host.net.ensure_netns(NS)
        await self.host.net.netlink(NS, lambda nl: nl.ensure_bridge(BRIDGE))
        await self.host.images.create(self.base, "qcow2", 128 << 20)
        await self.driver.init_host("compute1")

    def spec(self, **changes: Any) -> InstanceSpec:
        spec = InstanceSpec(uuid=UUID, name="instance-00000001", hostname="vm1", vcpus=1,
                            memory_mb=128, root_gb=1, image_path=self.base, vifs=(vif(PORT1),),
                            config_drive={"openstack/latest/meta_data.json": b'{"uuid": "x"}'})
        return dataclasses.replace(spec, **changes)

    @property
    def inst_dir(self) -> Path:
        return self.driver.directory / UUID

    def guest(self) -> GuestSpec:
        return self.host.guests.guests[UUID].spec

    def taps(self) -> list[str]:
        return [n for n, link in self.host.net.spaces[NS].links.items() if link.kind == "tun"]

    def qmp(self) -> list[str]:
        return [c for (kind, name, c) in
                (x for x in self.host.calls if x[0] == "qmp") if name == UUID]

    def assert_gone(self) -> None:
        assert UUID not in self.host.guests.guests
        assert self.taps() == []
        assert not self.inst_dir.exists()


def run(tmp_path: Path, body: Callable[[Rig], Awaitable[None]]) -> Rig:
    rig = Rig(tmp_path)

    async def go() -> None:
        await rig.setup()
        await body(rig)

    asyncio.run(go())
    return rig


def test_spawn_makes_disks_taps_and_the_guest_at_once(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(kernel_path=r.kernel, ramdisk_path=r.ramdisk,
                                    properties={"hw_rng_model": "virtio",
                                                "os_command_line": "root=LABEL=x quiet"}))
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        assert await r.driver.list_instances() == [UUID]
        g = r.guest()
        assert (g.memory_mb, g.cpus, g.netns, g.accel, g.machine) == (128, 1, NS, "tcg", "q35")
        assert [(d.id, Path(d.path).name, d.format, d.readonly) for d in g.disks] == [
            ("root", "disk", "qcow2", False), ("config", "disk.config", "raw", True)]
        assert [(n.tap, n.mac, n.mtu, n.model, n.slot) for n in g.nics] == [
            ("tap8a7c2d1e-00", "fa:16:3e:00:00:01", 1450, "virtio", 2)]
        assert g.disks[1].slot == 1 and g.hotplug_slots == 2 and g.tb_size_mb == 96
        assert (g.kernel, g.initrd, g.append) == (str(r.kernel), str(r.ramdisk),
                                                  "root=LABEL=x quiet")
        assert g.rng and g.vnc and g.video == "vga" and g.uuid == UUID
        assert ("product", "OpenStack Nova") in g.smbios and ("serial", UUID) in g.smbios
        # the root disk: an overlay on the cached base, of the flavor's size
        root = r.host.images.files[r.inst_dir / "disk"]
        assert (root.backing, root.backing_format, root.size) == (r.base, "qcow2", GiB)
        assert r.host.images.isos[r.inst_dir / "disk.config"] == (
            "config-2", {"openstack/latest/meta_data.json": b'{"uuid": "x"}'})
        # the tap: on the bridge, the network's MTU, the guest's MAC with fe
        tap = r.host.net.spaces[NS].links["tap8a7c2d1e-00"]
        assert (tap.master, tap.mtu, tap.mac, tap.up) == (BRIDGE, 1450, "fe:16:3e:00:00:01",
                                                          True)
        starts = [c for c in r.host.calls if c[0] == "guest.start"]
        # a retried spawn of the same spec changes nothing
        await r.driver.spawn(r.spec(kernel_path=r.kernel, ramdisk_path=r.ramdisk,
                                    properties={"hw_rng_model": "virtio",
                                                "os_command_line": "root=LABEL=x quiet"}))
        assert [c for c in r.host.calls if c[0] == "guest.start"] == starts
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and not record.building
        assert record.bases == sorted([str(r.base), str(r.kernel), str(r.ramdisk)])

    run(tmp_path, body)


def test_default_kernel_command_line_is_novas(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(kernel_path=r.kernel, config_drive=None))
        assert r.guest().append == ("root=/dev/vda console=tty0 console=ttyS0 console=hvc0"
                                    " no_timer_check")
        assert [d.id for d in r.guest().disks] == ["root"]

    run(tmp_path, body)


def test_image_properties_pick_machine_buses_and_models(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        props = {"hw_machine_type": "pc", "hw_disk_bus": "ide", "hw_vif_model": "e1000",
                 "hw_video_model": "cirrus", "hw_cdrom_bus": "ide"}
        await r.driver.spawn(r.spec(properties=props, ephemeral_gb=1, swap_mb=64))
        g = r.guest()
        assert (g.machine, g.video, g.rng) == ("pc", "cirrus", False)
        assert [(d.id, d.bus, d.cdrom) for d in g.disks] == [
            ("root", "ide", False), ("eph0", "ide", False), ("swap", "ide", False),
            ("config", "virtio", True)]
        assert g.nics[0].model == "e1000"
        files = r.host.images.files
        assert files[r.inst_dir / "disk.eph0"].size == GiB
        assert files[r.inst_dir / "disk.swap"].size == 64 << 20

    run(tmp_path, body)


@pytest.mark.parametrize("props, message", [
    ({"hw_machine_type": "microvm"}, "Machine type 'microvm' is not supported"),
    ({"hw_disk_bus": "fdc"}, "Disk bus 'fdc' is not supported"),
    ({"hw_vif_model": "vmxnet3"}, "VIF model 'vmxnet3' is not supported"),
    ({"hw_rng_model": "egd"}, "RNG model 'egd' is not supported"),
])
def test_unsupported_properties_fail_before_anything_is_made(
        tmp_path: Path, props: dict[str, str], message: str) -> None:
    async def body(r: Rig) -> None:
        before = len(r.host.calls)
        with pytest.raises(VirtError, match=message):
            await r.driver.spawn(r.spec(properties=props))
        r.assert_gone()
        assert r.host.calls[before:] == []

    run(tmp_path, body)


def test_a_failed_spawn_leaves_nothing(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        # QEMU refuses to start: the disks, the config drive and the taps made go
        async def refuse(spec: GuestSpec) -> Any:
            raise HostError("qemu-system-x86_64: could not open tap")

        r.host.guests.start = refuse  # type: ignore[method-assign]
        with pytest.raises(VirtError, match="could not open tap"):
            await r.driver.spawn(r.spec())
        r.assert_gone()
        assert ("netlink", NS, "delete", "tap8a7c2d1e-00") in r.host.calls
        assert await r.driver.power_state(UUID) == PowerState.NOSTATE
        assert await r.driver.list_instances() == []

    run(tmp_path, body)


def test_spawn_refuses_what_cannot_work(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        with pytest.raises(VirtError, match="Flavor's disk is too small for requested image"):
            await r.driver.spawn(_small(r))
        r.assert_gone()
        bad = dataclasses.replace(vif(PORT1), bridge="brq-missing")
        with pytest.raises(VirtError, match="bridge brq-missing"):
            await r.driver.spawn(r.spec(vifs=(bad,)))
        r.assert_gone()
        with pytest.raises(VirtError, match="more than one network namespace"):
            await r.driver.spawn(r.spec(vifs=(vif(PORT1), vif(PORT2, ns="other"))))
        with pytest.raises(VirtError, match="neither an image nor a volume"):
            await r.driver.spawn(r.spec(image_path=None))
        r.assert_gone()

    run(tmp_path, body)


def _small(r: Rig) -> InstanceSpec:
    big = r.base.with_name("big.qcow2")
    r.host.images.files[big] = dataclasses.replace(r.host.images.files[r.base], size=2 * GiB)
    return r.spec(image_path=big, root_gb=1)


def test_a_retried_spawn_after_a_crash_starts_clean(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.host.guests.stop(UUID)  # QEMU died before the agent recorded ACTIVE
        assert await r.driver.power_state(UUID) == PowerState.SHUTDOWN
        starts = len([c for c in r.host.calls if c[0] == "guest.start"])
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None
        (r.inst_dir / "record.json").write_text(
            record.to_json().replace('"building": false', '"building": true'))
        await r.driver.spawn(r.spec())
        assert len([c for c in r.host.calls if c[0] == "guest.start"]) == starts + 1
        assert await r.driver.power_state(UUID) == PowerState.RUNNING

    run(tmp_path, body)


def test_destroy_removes_everything_and_twice_is_fine(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.destroy(UUID)
        r.assert_gone()
        assert await r.driver.power_state(UUID) == PowerState.NOSTATE
        await r.driver.destroy(UUID)
        with pytest.raises(InstanceNotFound):
            await r.driver.console_output(UUID)

    run(tmp_path, body)


def test_a_stray_guest_is_listed_and_destroyed(tmp_path: Path) -> None:
    """A QEMU of this host whose instance files are gone (the reconcile's leftover)."""
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        import shutil
        shutil.rmtree(r.inst_dir)
        assert await r.driver.list_instances() == [UUID]
        await r.driver.destroy(UUID)
        r.assert_gone()  # its tap too, found in the running guest's own spec
        assert await r.driver.list_instances() == []
        # a QEMU directory alone (a console log) is listed and removed too
        await r.host.guests.start(GuestSpec(name=UUID))
        await r.host.guests.stop(UUID)
        r.host.guests.console[UUID] = "log"
        r.host.guests.names = lambda: _names([UUID])  # type: ignore[method-assign]
        assert await r.driver.list_instances() == [UUID]

    run(tmp_path, body)


def test_power_off_and_on(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.power_off(UUID, timeout=3)
        assert "system_powerdown" in r.qmp()
        assert r.host.guests.exits[-1] == (UUID, "guest-shutdown")
        assert await r.driver.power_state(UUID) == PowerState.SHUTDOWN
        assert r.taps() == []  # the taps go with the process, as libvirt's do
        with pytest.raises(InvalidInstanceState):
            await r.driver.pause(UUID)
        with pytest.raises(InvalidInstanceState):
            await r.driver.serial_console(UUID)
        await r.driver.power_off(UUID)  # again: nothing to do
        await r.driver.power_on(r.spec())
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        assert r.taps() == ["tap8a7c2d1e-00"]
        await r.driver.power_on(r.spec())  # running: nothing to do
        assert len([c for c in r.host.calls if c[0] == "guest.start"]) == 2

    run(tmp_path, body)


def test_reboots(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.reboot(r.spec(), hard=False)  # the guest powers off: started again
        assert "system_powerdown" in r.qmp()
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        await r.driver.reboot(r.spec(memory_mb=256), hard=True)  # a new machine from the spec
        assert r.guest().memory_mb == 256
        assert len([c for c in r.host.calls if c[0] == "guest.start"]) == 3
        await r.driver.power_off(UUID, 0)
        await r.driver.reboot(r.spec(), hard=False)  # a stopped guest just starts
        assert await r.driver.power_state(UUID) == PowerState.RUNNING

    run(tmp_path, body)


def test_a_soft_reboot_the_guest_ignores_turns_hard(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from onestack.host.fake_guests import FakeQMP

    async def ignore(self: FakeQMP) -> None:
        self._rec("system_powerdown")

    monkeypatch.setattr(FakeQMP, "powerdown", ignore)
    monkeypatch.setattr("onestack.compute.virt.qemu.machine.POWER_BUTTON_RETRY", 0.3)

    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.reboot(r.spec(), hard=False)
        # pressed again while it did not go (a guest still booting), then stopped
        assert r.qmp().count("system_powerdown") >= 3
        assert ("guest.stop", UUID, 0) in r.host.calls
        assert await r.driver.power_state(UUID) == PowerState.RUNNING

    run(tmp_path, body)


def test_pause_and_unpause(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.pause(UUID)
        assert await r.driver.power_state(UUID) == PowerState.PAUSED
        await r.driver.pause(UUID)
        await r.driver.unpause(UUID)
        await r.driver.unpause(UUID)
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        assert [c for c in r.qmp() if c in ("stop", "cont")] == ["stop", "cont"]

    run(tmp_path, body)


def test_suspend_and_resume_keep_the_hotplugged_layout(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(config_drive=None))
        await r.driver.attach_volume(UUID, BlockDevice(VOL1, Path("/v/vol1"), "raw", VOL1))
        await r.driver.suspend(UUID)
        assert await r.driver.power_state(UUID) == PowerState.SUSPENDED
        assert UUID not in r.host.guests.guests and r.taps() == []
        await r.driver.suspend(UUID)  # again: nothing to do
        saved = dict(r.host.guests.saved)
        assert list(saved) == [r.inst_dir / "state.sav"]
        await r.driver.resume(r.spec(config_drive=None))
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        g = r.guest()
        assert g.incoming == str(r.inst_dir / "state.sav")
        assert [(n.id, n.slot) for n in g.nics] == [(vif_device(PORT1), 1)]
        assert [(d.id, d.slot) for d in g.disks] == [("root", None), (volume_device(VOL1), 2)]
        assert g.hotplug_slots == 1  # 3 slots as before: one NIC, one volume, one free
        assert r.taps() == ["tap8a7c2d1e-00"]
        await r.driver.resume(r.spec(config_drive=None))  # running: nothing to do
        await r.driver.power_off(UUID, 0)
        with pytest.raises(InvalidInstanceState, match="not suspended"):
            await r.driver.resume(r.spec())

    run(tmp_path, body)


def test_interfaces_hotplug_into_free_slots(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(config_drive=None))
        second = vif(PORT2, "fa:16:3e:00:00:02")
        await r.driver.attach_interface(UUID, second)
        await r.driver.attach_interface(UUID, second)  # a retry: nothing more
        fq = r.host.guests.guests[UUID]
        adds = [a for c, a in fq.commands if c == "device_add"]
        assert [(a["id"], a["bus"], a["tap"]) for a in adds] == [
            (vif_device(PORT2), "rp2", "tap9b8d3e2f-00")]
        assert sorted(r.taps()) == ["tap8a7c2d1e-00", "tap9b8d3e2f-00"]
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and [v.port_id for v in record.vifs] == [PORT1, PORT2]
        await r.driver.detach_interface(UUID, PORT2)
        await r.driver.detach_interface(UUID, PORT2)  # gone already
        assert [c for c, _ in fq.commands if c == "device_del"] == ["device_del"]
        assert r.taps() == ["tap8a7c2d1e-00"]
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and [v.port_id for v in record.vifs] == [PORT1]
        assert record.guest.hotplug_slots == 2
        with pytest.raises(VirtError, match="network namespace"):
            await r.driver.attach_interface(UUID, vif(PORT2, ns=None))

    run(tmp_path, body)


def test_the_slots_run_out(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(config_drive=None))
        for i in range(2):
            dev = BlockDevice(f"vol-{i}", Path(f"/v/{i}"), "qcow2", f"vol-{i}")
            await r.driver.attach_volume(UUID, dev)
        with pytest.raises(VirtError, match="no free PCI slot"):
            await r.driver.attach_volume(UUID, BlockDevice("vol-9", Path("/v/9"), "raw", "v9"))
        await r.driver.detach_volume(UUID, "vol-0")
        await r.driver.attach_volume(UUID, BlockDevice("vol-9", Path("/v/9"), "raw", "v9"))
        fq = r.host.guests.guests[UUID]
        assert [(a["id"], a["bus"], a["serial"]) for c, a in fq.commands if c == "device_add"] \
            == [("volvol0", "rp2", "vol-0"), ("volvol1", "rp3", "vol-1"),
                ("volvol9", "rp2", "v9")]

    run(tmp_path, body)


def test_devices_of_a_stopped_instance_change_only_its_record(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(config_drive=None))
        await r.driver.power_off(UUID, 0)
        await r.driver.attach_volume(UUID, BlockDevice(VOL1, Path("/v/1"), "raw", VOL1))
        await r.driver.attach_interface(UUID, vif(PORT2, "fa:16:3e:00:00:02"))
        assert not [c for c in r.host.calls if c[0] == "qmp"]
        assert r.taps() == []
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and len(record.guest.nics) == 2
        await r.driver.detach_interface(UUID, PORT2)
        await r.driver.detach_volume(UUID, VOL1)

    run(tmp_path, body)


def test_snapshot_pauses_a_running_guest_around_the_copy(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        dest = tmp_path / "snap.qcow2"
        assert await r.driver.snapshot(UUID, dest) == "qcow2"
        i = r.host.calls.index(("qemu-img.convert", r.inst_dir / "disk", "qcow2", dest, "qcow2"))
        assert r.host.calls[i - 1] == ("qmp", UUID, "stop")
        assert r.host.calls[i + 1] == ("qmp", UUID, "cont")
        await r.driver.pause(UUID)
        await r.driver.snapshot(UUID, dest)  # paused: it stays paused
        assert await r.driver.power_state(UUID) == PowerState.PAUSED
        await r.driver.power_off(UUID, 0)
        await r.driver.snapshot(UUID, dest)  # stopped: copied as it is
        assert await r.driver.power_state(UUID) == PowerState.SHUTDOWN

    run(tmp_path, body)


def test_rebuild_makes_new_disks_from_the_new_image(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        other = tmp_path / "other.qcow2"
        await r.host.images.create(other, "qcow2", 256 << 20)
        await r.driver.rebuild(r.spec(image_path=other))
        root = r.host.images.files[r.inst_dir / "disk"]
        assert root.backing == other
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and record.bases == [str(other)]
        await r.driver.power_off(UUID, 0)
        await r.driver.rebuild(r.spec(), power_on=False)  # stopped stays stopped
        assert await r.driver.power_state(UUID) == PowerState.SHUTDOWN

    run(tmp_path, body)


def test_resize_confirm_and_revert(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        await r.driver.resize(r.spec(memory_mb=256, vcpus=2, root_gb=2))
        assert ("qemu-img.resize", r.inst_dir / "disk", 2 * GiB) in r.host.calls
        assert ("copy", r.inst_dir / "disk", r.inst_dir / "resize" / "disk") in r.host.calls
        assert (r.guest().memory_mb, r.guest().cpus) == (256, 2)
        await r.driver.resize(r.spec(memory_mb=256, vcpus=2, root_gb=2))  # a retry
        assert len([c for c in r.host.calls if c[0] == "copy"]) == 2  # disk, config drive
        await r.driver.confirm_resize(UUID)
        assert not (r.inst_dir / "resize").exists()
        await r.driver.confirm_resize(UUID)
        # down again is refused (Nova's message), nothing changed
        with pytest.raises(VirtError, match="Unable to resize disk down"):
            await r.driver.resize(r.spec(root_gb=1))
        await r.driver.revert_resize(r.spec(memory_mb=256, vcpus=2, root_gb=2))
        # a resize reverted: the old machine again
        await r.driver.resize(r.spec(memory_mb=512, vcpus=2, root_gb=3))
        assert r.guest().memory_mb == 512
        await r.driver.revert_resize(r.spec(memory_mb=256, vcpus=2, root_gb=2))
        assert r.guest().memory_mb == 256
        assert not (r.inst_dir / "resize").exists()
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and record.resize_guest is None
        # a stopped server stays stopped through a resize
        await r.driver.power_off(UUID, 0)
        await r.driver.resize(r.spec(memory_mb=512, root_gb=3), power_on=False)
        assert await r.driver.power_state(UUID) == PowerState.SHUTDOWN

    run(tmp_path, body)


def test_rescue_boots_the_rescue_disk_first(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec(config_drive=None))
        rescue_image = tmp_path / "rescue.qcow2"
        await r.host.images.create(rescue_image, "qcow2", 64 << 20)
        await r.driver.rescue(r.spec(config_drive=None), rescue_image, "qcow2")
        g = r.guest()
        assert [(d.id, Path(d.path).name) for d in g.disks] == [("rescue", "disk.rescue"),
                                                               ("root", "disk")]
        assert r.host.images.files[r.inst_dir / "disk.rescue"].backing == rescue_image
        await r.driver.rescue(r.spec(config_drive=None), rescue_image, "qcow2")  # a retry
        await r.driver.unrescue(r.spec(config_drive=None))
        assert [d.id for d in r.guest().disks] == ["root"]
        assert await r.driver.power_state(UUID) == PowerState.RUNNING

    run(tmp_path, body)


def test_a_stable_device_rescue_keeps_every_device_in_its_place(tmp_path: Path) -> None:
    """The rescue image's hw_rescue_device / hw_rescue_bus: the rescue disk last,
    with the boot index (Nova's <boot order='1'>), the other devices where they
    were; bad values fail the rescue and leave the guest as it was."""
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        before = r.guest()
        rescue_image = tmp_path / "rescue.qcow2"
        await r.host.images.create(rescue_image, "qcow2", 64 << 20)
        for device, rescue_bus, bus, cdrom in (("disk", "usb", "usb", False),
                                               ("disk", "scsi", "scsi", False),
                                               ("cdrom", "", "ide", True),
                                               ("", "virtio", "virtio", False)):
            asked = {k: v for k, v in (("hw_rescue_device", device), ("hw_rescue_bus", rescue_bus))
                     if v}
            spec = r.spec(properties=asked)
            await r.driver.rescue(spec, rescue_image, "qcow2")
            g = r.guest()
            assert [d.id for d in g.disks] == [d.id for d in before.disks] + ["rescue"]
            rescue = g.disks[-1]
            assert (rescue.bus, rescue.cdrom, rescue.boot) == (bus, cdrom, True)
            assert [(d.id, d.slot, d.boot) for d in g.disks[:-1]] == \
                [(d.id, d.slot, False) for d in before.disks]
            assert [(n.id, n.slot) for n in g.nics] == [(n.id, n.slot) for n in before.nics]
            await r.driver.unrescue(r.spec())
            assert r.guest().disks == before.disks
        with pytest.raises(VirtError, match="Rescue bus 'virtio' is not supported for a cdrom"):
            await r.driver.rescue(r.spec(properties={"hw_rescue_device": "cdrom",
                                                     "hw_rescue_bus": "virtio"}),
                                  rescue_image, "qcow2")
        assert await r.driver.power_state(UUID) == PowerState.RUNNING
        assert r.guest().disks == before.disks

    run(tmp_path, body)


def test_consoles(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        r.host.guests.console[UUID] = "onestack-test-guest\naddresses: eth0=10.0.0.5/26\n"
        assert (await r.driver.console_output(UUID)).endswith("eth0=10.0.0.5/26\n")
        assert await r.driver.console_output(UUID, max_bytes=10) == ".0.0.5/26\n"
        assert (await r.driver.serial_console(UUID)).name == "serial.sock"
        assert (await r.driver.vnc_console(UUID)).name == "vnc.sock"
        with pytest.raises(InstanceNotFound):
            await r.driver.serial_console("00000000-0000-4000-8000-000000000000")

    run(tmp_path, body)


def test_resources(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        res = await r.driver.resources()
        assert (res.hypervisor_type, res.hypervisor_hostname, res.accelerator) == (
            "QEMU", "compute1", "tcg")
        assert res.vcpus >= 1 and res.memory_mb > 0 and res.local_gb > 0

    run(tmp_path, body)


def test_a_retried_spawn_adopts_a_guest_that_started(tmp_path: Path) -> None:
    """Killed after QEMU started but before the spawn returned: the retry keeps it."""
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None
        (r.inst_dir / "record.json").write_text(
            record.to_json().replace('"building": false', '"building": true'))
        pid = r.host.guests.guests[UUID].pid
        await r.driver.spawn(r.spec())
        assert r.host.guests.guests[UUID].pid == pid
        record = read_record(r.driver.instances.files(UUID))
        assert record is not None and not record.building

    run(tmp_path, body)


async def _names(names: list[str]) -> list[str]:
    return names


def test_init_host_does_not_wait_for_the_accelerator_probe(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        gate = asyncio.Event()

        async def slow_probe() -> str:
            await gate.wait()
            return "kvm"

        r.host.guests.accelerator = slow_probe  # type: ignore[method-assign]
        driver = QemuDriver(r.host, r.settings)
        await asyncio.wait_for(driver.init_host("compute1"), 5)  # the probe still runs
        spawn = asyncio.create_task(driver.spawn(r.spec()))
        await asyncio.sleep(0.05)
        assert not spawn.done()  # the first spawn waits for it
        gate.set()
        await spawn
        assert r.guest().accel == "kvm"
        assert (await driver.resources()).accelerator == "kvm"

    run(tmp_path, body)


def test_diagnostics(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        r.host.net.spaces[NS].links["tap8a7c2d1e-00"].counters.update(
            rx_packets=5, rx_bytes=500, tx_packets=7, tx_bytes=700, tx_dropped=1)
        d = await r.driver.diagnostics(UUID)
        assert (d.state, d.num_cpus, d.memory_max_mb, d.config_drive) == (
            PowerState.RUNNING, 1, 128, True)
        assert len(d.disk_details) == 2  # (no such process here: no uptime)
        (nic,) = d.nic_details
        # the host's tx is the guest's rx
        assert (nic.mac_address, nic.rx_packets, nic.rx_octets, nic.rx_drop, nic.tx_packets,
                nic.tx_octets) == ("fa:16:3e:00:00:01", 7, 700, 1, 5, 500)
        await r.driver.power_off(UUID, 0)
        with pytest.raises(InvalidInstanceState):
            await r.driver.diagnostics(UUID)

    run(tmp_path, body)


def test_the_admin_password_through_the_guest_agent(tmp_path: Path) -> None:
    """hw_qemu_guest_agent gives the guest qemu-ga's channel; the password goes
    through it (base64, clear text); without the property the agent is not
    enabled, without an agent answering it is unresponsive."""
    async def body(r: Rig) -> None:
        await r.driver.spawn(r.spec())
        assert not r.guest().guest_agent
        with pytest.raises(GuestAgentNotEnabled, match="QEMU guest agent is not enabled"):
            await r.driver.set_admin_password(UUID, "root", "s3cret")
        await r.driver.destroy(UUID)
        await r.driver.spawn(r.spec(properties={"hw_qemu_guest_agent": "yes"}))
        assert r.guest().guest_agent
        with pytest.raises(GuestAgentUnresponsive):
            await r.driver.set_admin_password(UUID, "root", "s3cret")
        r.host.guests.agents.add(UUID)
        await r.driver.set_admin_password(UUID, "root", "s3cret")
        assert r.host.guests.agent_commands[-1] == (UUID, "guest-set-user-password", {
            "username": "root", "password": "czNjcmV0", "crypted": False})
        await r.driver.power_off(UUID, 0)
        with pytest.raises(InvalidInstanceState):
            await r.driver.set_admin_password(UUID, "root", "s3cret")

    run(tmp_path, body)
