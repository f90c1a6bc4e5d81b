"""QEMU's command line for a guest spec, and the spec's checks (nothing started)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from onestack.host import qemu, qemu_spec
from onestack.host.errors import HostError
from onestack.host.qemu import Disk, GuestSpec, Nic

D = Path("/run/os/qemu/vm1")


def after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_tcg_gets_the_translated_code_buffer_size_and_kvm_ignores_it() -> None:
    spec = GuestSpec(name="vm1", disks=(Disk("/i/root.qcow2"),), tb_size_mb=96)
    assert after(qemu.command(spec, D, "tcg"), "-accel") == ["tcg,tb-size=96"]
    assert after(qemu.command(spec, D, "kvm"), "-accel") == ["kvm"]
    unset = dataclasses.replace(spec, tb_size_mb=0)  # QEMU's default
    assert after(qemu.command(unset, D, "tcg"), "-accel") == ["tcg"]
    assert GuestSpec.from_json(spec.to_json()) == spec  # kept in the instance's record


def test_the_fast_q35_machine_with_hotplug_ports() -> None:
    spec = GuestSpec(
        name="vm1", memory_mb=512, cpus=2, netns="onestack-dp",
        disks=(Disk("/i/root.qcow2"), Disk("/i/vol.raw", "raw", "vol1", serial="abc")),
        nics=(Nic("tap1", "fa:16:3e:00:00:01", "nic1", mtu=1450),),
        uuid="6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0001",
        smbios=(("manufacturer", "OpenStack Foundation"), ("product", "OpenStack Nova")),
        hotplug_slots=2)
    argv = qemu.command(spec, D, "tcg", "/usr/bin/qemu-system-x86_64")
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert after(argv, "-machine") == ["q35,smm=off,hpet=off,smbus=off,vmport=off,usb=off,sata=off"]
    assert after(argv, "-accel") == ["tcg"]
    assert after(argv, "-cpu") == ["qemu64,+rdrand"]
    assert after(argv, "-m") == ["512"] and after(argv, "-smp") == ["2"]
    assert "-daemonize" in argv and after(argv, "-pidfile") == [f"{D}/pid"]
    assert after(argv, "-name") == ["guest=vm1,debug-threads=on"]
    assert after(argv, "-chardev") == [
        f"socket,id=qmp,path={D}/qmp.sock,server=on,wait=off",
        f"socket,id=serial0,path={D}/serial.sock,server=on,wait=off,"
        f"logfile={D}/console.log,logappend=on"]
    assert after(argv, "-uuid") == ["6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0001"]
    assert after(argv, "-smbios") == [
        "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova"]
    # the format of every disk is stated; the boot disk on pcie.0, the rest on root ports
    assert after(argv, "-blockdev") == [
        "driver=file,node-name=disk0-file,filename=/i/root.qcow2,cache.direct=on,"
        "cache.no-flush=off",
        "driver=qcow2,node-name=disk0-fmt,file=disk0-file,cache.direct=on,cache.no-flush=off",
        "driver=file,node-name=vol1-file,filename=/i/vol.raw,cache.direct=on,cache.no-flush=off",
        "driver=raw,node-name=vol1-fmt,file=vol1-file,cache.direct=on,cache.no-flush=off"]
    # the root bus in a fixed order (boot disk, root ports), then what sits on the ports
    assert after(argv, "-device") == [
        "virtio-blk-pci,drive=disk0-fmt,id=disk0,bootindex=1",
        "pcie-root-port,id=rp1,chassis=1,slot=1",
        "pcie-root-port,id=rp2,chassis=2,slot=2",
        "pcie-root-port,id=rp3,chassis=3,slot=3",
        "pcie-root-port,id=rp4,chassis=4,slot=4",
        "virtio-blk-pci,drive=vol1-fmt,id=vol1,bus=rp1,serial=abc",
        "virtio-net-pci,netdev=nic1-net,id=nic1,mac=fa:16:3e:00:00:01,romfile=,bus=rp2,"
        "host_mtu=1450"]
    assert after(argv, "-netdev") == ["tap,id=nic1-net,ifname=tap1,script=no,downscript=no"]
    assert "-kernel" not in argv and "-incoming" not in argv


def test_kvm_direct_kernel_cdrom_and_restore() -> None:
    spec = GuestSpec(name="vm1", disks=(Disk("/i/root.qcow2", cache="unsafe"),
                                        Disk("/i/config.iso", "raw", "cd", cdrom=True)),
                     kernel="/k/vmlinux", initrd="/k/initrd", append="console=ttyS0 quiet",
                     incoming="/state/vm1 saved.bin", hotplug_slots=0)
    argv = qemu.command(spec, D, "kvm")
    assert after(argv, "-cpu") == ["host"]
    assert after(argv, "-machine") == ["q35,smm=off,hpet=off,smbus=off,vmport=off,usb=off"]
    assert "virtio-blk-pci,drive=disk0-fmt,id=disk0" in after(argv, "-device")  # no bootindex
    assert "ide-cd,drive=cd-fmt,id=cd,bus=ide.0" in after(argv, "-device")
    assert "driver=raw,node-name=cd-fmt,file=cd-file,cache.direct=on,cache.no-flush=off," \
        "read-only=on" in after(argv, "-blockdev")
    assert after(argv, "-kernel") == ["/k/vmlinux"] and after(argv, "-initrd") == ["/k/initrd"]
    assert after(argv, "-append") == ["console=ttyS0 quiet"]
    assert after(argv, "-incoming") == ["exec:cat '/state/vm1 saved.bin'"]
    assert not any(a.startswith("pcie-root-port") for a in after(argv, "-device"))


def test_a_disk_marked_boot_boots_and_the_first_keeps_its_place() -> None:
    """A stable device rescue: the rescue disk last (USB, SCSI or virtio) with
    the boot index; the root disk first on the root bus, without one."""
    root = Disk("/i/root.qcow2", id="root")
    nic = Nic("tap1", "fa:16:3e:00:00:01", "nic1")
    for bus, rescue_device in (
            ("usb", "usb-storage,drive=rescue-fmt,id=rescue,bus=usb0.0,bootindex=1"),
            ("scsi", "scsi-hd,drive=rescue-fmt,id=rescue,bus=scsi0.0,bootindex=1")):
        spec = GuestSpec(name="vm1", disks=(root, Disk("/i/rescue", id="rescue", bus=bus,
                                                       boot=True)), nics=(nic,))
        devices = after(qemu.command(spec, D, "tcg"), "-device")
        assert devices[0] == "virtio-blk-pci,drive=root-fmt,id=root"
        assert rescue_device in devices
        assert ("qemu-xhci,id=usb0" in devices) == (bus == "usb")
        assert ("virtio-scsi-pci,id=scsi0" in devices) == (bus == "scsi")
    # a virtio rescue disk on the last port: the NIC keeps the slot it had
    plain = GuestSpec(name="vm1", disks=(root,), nics=(nic,), hotplug_slots=1)
    assert "bus=rp1" in after(qemu.command(plain, D, "tcg"), "-device")[-1]
    spec = dataclasses.replace(plain, disks=(root, Disk("/i/rescue", id="rescue", boot=True,
                                                        slot=3)))
    devices = after(qemu.command(spec, D, "tcg"), "-device")
    assert devices[0] == "virtio-blk-pci,drive=root-fmt,id=root"
    assert "virtio-blk-pci,drive=rescue-fmt,id=rescue,bus=rp3,bootindex=1" in devices
    assert [d for d in devices if d.startswith("virtio-net-pci")][0].endswith("bus=rp1")


@pytest.mark.parametrize("change", [
    {"name": "../etc"}, {"name": ""}, {"name": "vm1\n"}, {"memory_mb": 8}, {"cpus": 0}, {"hotplug_slots": 33},
    {"disks": (Disk("/a,b"),)}, {"disks": (Disk("/a", "iso"),)},
    {"disks": (Disk("/a", cache="directsync"),)},
    {"disks": (Disk("/a"), Disk("/b"))},  # two disks called disk0
    {"nics": (Nic("tap0", "not-a-mac"),)}, {"nics": (Nic("tap0", "fa:16:3e:00:00:01", "1x"),)},
    {"nics": (Nic("tap0", "fa:16:3e:00:00:01", "n" * 27),)},  # its node names would pass 31
    {"smbios": (("serial", "a,b"),)},
    {"machine": "microvm"}, {"machine": "q35,accel=kvm"}, {"video": "3dfx"},
    {"disks": (Disk("/a", bus="floppy"),)},
    {"disks": (Disk("/a", boot=True), Disk("/b", id="d1", boot=True))},  # two boot disks
    {"nics": (Nic("tap0", "fa:16:3e:00:00:01", model="x"),)},
    {"kernel": "/k,x"},
    {"disks": (Disk("/a"), Disk("/b", id="d1", slot=3)), "hotplug_slots": 1},  # slot 3 of 2
    {"disks": (Disk("/a"), Disk("/b", id="d1", slot=1)),
     "nics": (Nic("tap0", "fa:16:3e:00:00:01", slot=1),)},  # one slot, two devices
    {"disks": tuple(Disk(f"/d{i}", bus="ide", id=f"d{i}") for i in range(7))},
])
def test_bad_specs_are_refused(change: dict[str, object]) -> None:
    spec = dataclasses.replace(GuestSpec(name="vm1"), **change)  # type: ignore[arg-type]
    with pytest.raises(HostError):
        qemu.command(spec, D, "tcg")


def test_spec_round_trips_through_json() -> None:
    spec = GuestSpec(name="vm1", disks=(Disk("/i/a.qcow2"),), nics=(Nic("t", "fa:16:3e:00:00:01"),),
                     smbios=(("product", "OpenStack Nova"),), extra=("-S",))
    assert GuestSpec.from_json(spec.to_json()) == spec


def test_a_run_directory_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    guests = qemu.Guests(tmp_path / ("x" * 100))
    with pytest.raises(HostError, match="too long"):
        guests._prepare(GuestSpec(name="vm1", accel="tcg"))
    assert guests.names() == [] and guests.running() == {} and guests.get("vm1") is None


@pytest.mark.parametrize("change", [
    {"disks": (Disk("/a", serial="x,drive=other"),)}, {"disks": (Disk("/a", serial="s" * 21),)},
    {"nics": (Nic("tap0,script=/bin/x", "fa:16:3e:00:00:01"),)},
    {"nics": (Nic("tap0", "fa:16:3e:00:00:01", mtu=10),)},
    {"uuid": "not-a-uuid"},
])
def test_no_option_can_be_smuggled_into_a_device(change: dict[str, object]) -> None:
    spec = dataclasses.replace(GuestSpec(name="vm1"), **change)  # type: ignore[arg-type]
    with pytest.raises(HostError):
        qemu.command(spec, D, "tcg")


def test_explicit_slots_keep_the_layout_a_restore_needs() -> None:
    """A NIC hot-plugged into slot 3 before a disk went into slot 4: listed with
    their slots (and two hot-plug slots fewer), the restore gets the same ports."""
    nic0 = Nic("tap0", "fa:16:3e:00:00:01", "nic0")
    started = GuestSpec(name="vm1", disks=(Disk("/i/root.qcow2"), Disk("/i/c.iso", "raw", "cfg")),
                        nics=(nic0,), hotplug_slots=4)
    assert qemu_spec.root_ports(started) == 6
    assert qemu_spec.assign_slots(started) == {"cfg": 1, "nic0": 2}
    restored = dataclasses.replace(
        started, hotplug_slots=2,
        disks=(*started.disks, Disk("/v/vol.raw", "raw", "vol1", slot=4)),
        nics=(nic0, Nic("tap1", "fa:16:3e:00:00:02", "nic1", slot=3)))
    assert qemu_spec.root_ports(restored) == 6
    assert qemu_spec.assign_slots(restored) == {"cfg": 1, "vol1": 4, "nic0": 2, "nic1": 3}
    argv = qemu.command(restored, D, "tcg")
    devices = after(argv, "-device")
    assert [x for x in devices if x.startswith("pcie-root-port")] == [
        f"pcie-root-port,id=rp{i},chassis={i},slot={i}" for i in range(1, 7)]
    assert "virtio-blk-pci,drive=vol1-fmt,id=vol1,bus=rp4" in devices
    assert any(x.startswith("virtio-net-pci,netdev=nic1-net,id=nic1,") and x.endswith("bus=rp3")
               for x in devices)


def test_pc_machine_models_buses_rng_and_vnc() -> None:
    spec = GuestSpec(
        name="vm1", machine="pc", rng=True, vnc=True, video="vga", hotplug_slots=1,
        disks=(Disk("/i/root.qcow2", bus="ide"), Disk("/i/data.qcow2", id="data", bus="scsi"),
               Disk("/i/c.iso", "raw", "cfg", readonly=True)),
        nics=(Nic("tap0", "fa:16:3e:00:00:01", model="e1000", mtu=1450),))
    argv = qemu.command(spec, D, "tcg")
    assert after(argv, "-machine") == ["pc,smm=off,hpet=off,smbus=off,vmport=off,usb=off,sata=off"]
    assert after(argv, "-vnc") == [f"unix:{D}/vnc.sock"]
    assert after(argv, "-object") == ["rng-random,id=rng0,filename=/dev/urandom"]
    assert after(argv, "-device") == [
        "virtio-scsi-pci,id=scsi0",
        "virtio-rng-pci,rng=rng0",
        "VGA",
        "ide-hd,drive=disk0-fmt,id=disk0,bus=ide.0,unit=0,bootindex=1",
        "scsi-hd,drive=data-fmt,id=data,bus=scsi0.0",
        "virtio-blk-pci,drive=cfg-fmt,id=cfg,bus=pci.0,addr=0x11",
        # no host_mtu: that is virtio-net's
        "e1000,netdev=nic0-net,id=nic0,mac=fa:16:3e:00:00:01,romfile=,bus=pci.0,addr=0x12"]


def test_q35_sata_disks_turn_the_ahci_on() -> None:
    spec = GuestSpec(name="vm1", machine="pc-q35-7.2", hotplug_slots=0,
                     disks=(Disk("/i/root.qcow2", bus="sata"), Disk("/i/b.qcow2", id="b", bus="sata")))
    argv = qemu.command(spec, D, "tcg")
    assert after(argv, "-machine") == ["pc-q35-7.2,smm=off,hpet=off,smbus=off,vmport=off,usb=off"]
    assert after(argv, "-device") == [
        "ide-hd,drive=disk0-fmt,id=disk0,bus=ide.0,bootindex=1",
        "ide-hd,drive=b-fmt,id=b,bus=ide.1"]


def test_a_long_console_log_keeps_its_end(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    assert not qemu.trim_log(log)  # none yet
    log.write_bytes(b"a" * 100 + b"b" * 50)
    assert not qemu.trim_log(log, limit=200, keep=60)
    assert qemu.trim_log(log, limit=120, keep=60)
    assert log.read_bytes() == b"a" * 10 + b"b" * 50
    assert [p.name for p in tmp_path.iterdir()] == ["console.log"]


def test_a_guest_agent_channel() -> None:
    spec = GuestSpec(name="vm1", disks=(Disk("/i/root.qcow2"),), guest_agent=True)
    argv = qemu.command(spec, D, "tcg")
    assert f"socket,id=qga0,path={D}/qga.sock,server=on,wait=off" in after(argv, "-chardev")
    assert after(argv, "-device")[-2:] == [
        "virtio-serial-pci,id=vserial0",
        "virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0"]
    assert "qga0" not in " ".join(qemu.command(dataclasses.replace(spec, guest_agent=False),
                                               D, "tcg"))
    assert GuestSpec.from_json(spec.to_json()) == spec
