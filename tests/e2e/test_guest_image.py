"""The test guest image, booted directly with qemu-system-x86_64.

Before Compute exists this proves the image every compute/network/volume test
boots is ready: it boots from its own disk (TCG unless KVM really works;
ONESTACK_QEMU_ACCEL=kvm|tcg forces either), prints its banner with its
address on the serial console, takes DHCP, reads its SSH keys, hostname and
user data from a metadata server (or a config drive), lets root and cirros in
over SSH with ed25519, RSA and ECDSA keys, sees hot-plugged NICs and disks and
keeps what was written across a hard reset.

The guest is started, controlled over QMP and stopped by the real driver
(``onestack.host.qemu``; ``tests/e2e/guestvm.py`` is a thin synchronous
harness over it). Everything runs in a network namespace of the test's own
(``tests/e2e/testnet.py``, over ``onestack.host``), removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from onestack.host import qemu_img
from tests.e2e.guestvm import GuestVM, Nic
from tests.e2e.testnet import TestNetwork

pytestmark = pytest.mark.e2e

MAC0 = "52:54:00:77:00:10"
IP0 = "10.77.0.10"
MAC1 = "52:54:00:77:00:11"
IP1 = "10.77.0.11"
BANNER = r"addresses: eth0=([0-9.]+)/24"
BOOT_TIMEOUT = 180  # generous: the host's 2 cores are shared


def keygen(directory: Path, kind: str) -> tuple[Path, str]:
    path = directory / f"id_{kind}"
    bits = {"rsa": ["-b", "2048"], "ecdsa": ["-b", "384"]}.get(kind, [])
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", f"test-{kind}",
                    "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


def poll(fn: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last is not None:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def out(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"rc={res.returncode} stdout={res.stdout!r} stderr={res.stderr!r}"
    return res.stdout.strip()


USER_DATA = """#!/bin/sh
echo "ran as $(id -un) on $(hostname)" >> /root/user-data-ran
"""


def test_guest_boots_with_metadata_service(
    guest_disk: Path, guest_net: TestNetwork, tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    keys = {kind: keygen(tmp_path, kind) for kind in ("ed25519", "rsa", "ecdsa")}
    meta = {
        "uuid": "6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0001",
        "name": "guest-one",
        "hostname": "guest-one.novalocal",
        "availability_zone": "nova",
        "public_keys": {"rsa-key": keys["rsa"][1] + "\n", "ecdsa-key": keys["ecdsa"][1]},
        "keys": [{"name": "rsa-key", "type": "ssh", "data": keys["rsa"][1]}],
        "meta": {"role": "test"},
    }
    guest_net.open({MAC0: IP0, MAC1: IP1})
    guest_net.add_tap("tap0")
    guest_net.add_tap("tap1")
    guest_net.serve_metadata({
        "openstack/latest/meta_data.json": json.dumps(meta),
        "openstack/latest/user_data": USER_DATA,
        "latest/meta-data/instance-id": "i-00000001",
        "latest/meta-data/hostname": "guest-one.novalocal",
        "latest/meta-data/public-keys/": "0=ed25519-key",
        "latest/meta-data/public-keys/0/openssh-key": keys["ed25519"][1] + "\n",
    })
    machine = GuestVM(guest_disk, tmp_path, nics=[Nic("tap0", MAC0)], netns=guest_net.name)
    try:
        machine.start()
        m, banner_s = machine.wait_for(BANNER, BOOT_TIMEOUT)
        assert m.group(1) == IP0
        assert "onestack-test-guest" in machine.output
        ssh_s = guest_net.wait_ssh(IP0, keys["ed25519"][0], BOOT_TIMEOUT) - machine.started
        record_property("boot_to_banner_s", round(banner_s, 2))
        record_property("boot_to_ssh_s", round(ssh_s, 2))
        print(f"\nguest ({machine.accel}): banner after {banner_s:.2f}s, ssh after {ssh_s:.2f}s")

        # every key type works, for root and for cirros
        for kind, (key, _pub) in keys.items():
            assert out(guest_net.ssh(IP0, "id -un", key)) == "root", kind
            assert out(guest_net.ssh(IP0, "id -un", key, user="cirros")) == "cirros", kind
        ed = keys["ed25519"][0]
        # the sudo shim runs as root, for cirros
        assert out(guest_net.ssh(IP0, "sudo id -u; sudo sh -c 'head -c 5 /etc/shadow'", ed,
                                 user="cirros")) == "0\nroot:"
        # hostname from the metadata (short form)
        assert out(guest_net.ssh(IP0, "hostname", ed)) == "guest-one"
        # the user data ran, once, as root
        poll(lambda: out(guest_net.ssh(IP0, "cat /root/user-data-ran 2>/dev/null || true", ed))
             or None, 60, "user data")
        assert out(guest_net.ssh(IP0, "cat /root/user-data-ran", ed)) == "ran as root on guest-one"
        # the tools tests rely on
        assert "iproute2" in out(guest_net.ssh(IP0, "ip -V", ed))
        assert out(guest_net.ssh(IP0, "blkid -L onestack-root -o device", ed)) == "/dev/vda2"
        assert "vda" in out(guest_net.ssh(IP0, "lsblk -dn -o NAME", ed)).split()
        assert "curl" in out(guest_net.ssh(IP0, "curl --version", ed))
        assert out(guest_net.ssh(IP0, "curl -s http://169.254.169.254/latest/meta-data/instance-id",
                                 ed)) == "i-00000001"
        out(guest_net.ssh(IP0, "ping -c 1 -W 5 10.77.0.1", ed, user="cirros"))
        # udhcpc keeps running with its pid file
        out(guest_net.ssh(IP0, "kill -0 $(cat /var/run/udhcpc.eth0.pid)", ed))
        requests = guest_net.metadata_requests()
        assert "GET /openstack/latest/meta_data.json 200" in requests
        assert "GET /latest/meta-data/public-keys/0/openssh-key 200" in requests

        # hot-plugged NIC (onto a free PCIe root port): DHCP on it; hot-plugged disk: visible
        port = machine.control(lambda q: q.add_nic("hnic1", "tap1", MAC1))
        assert port.startswith("rp")
        poll(lambda: out(guest_net.ssh(IP0, "cat /run/onestack/ip.eth1 2>/dev/null || true", ed))
             == f"{IP1}/24" or None, 60, "DHCP on the hot-plugged NIC")
        extra = tmp_path / "extra.qcow2"
        qemu_img.run(qemu_img.create_argv(extra, "qcow2", 64 << 20))
        machine.control(lambda q: q.add_disk("hdisk1", extra, "qcow2", serial="vol-1"))
        poll(lambda: "vdb" in out(guest_net.ssh(IP0, "lsblk -dn -o NAME", ed)).split() or None,
             60, "the hot-plugged disk")
        assert out(guest_net.ssh(IP0, "cat /sys/block/vdb/serial", ed)) == "vol-1"
        # unplugged again: the guest lets go of both (DEVICE_DELETED), the ports are free
        free = machine.control(lambda q: q.free_ports())
        machine.control(lambda q: q.remove_disk("hdisk1"))
        machine.control(lambda q: q.remove_nic("hnic1"))
        assert len(machine.control(lambda q: q.free_ports())) == len(free) + 2
        poll(lambda: "vdb" not in out(guest_net.ssh(IP0, "lsblk -dn -o NAME", ed)).split()
             or None, 60, "the unplugged disk gone")

        # a file written before a hard reset is still there after it
        token = f"persisted-{time.time_ns()}"
        out(guest_net.ssh(IP0, f"echo {token} > /root/persist && sync", ed))
        mark = machine.mark()
        machine.qmp("system_reset")
        m, _ = machine.wait_for(BANNER, BOOT_TIMEOUT, since=mark)
        guest_net.wait_ssh(IP0, ed, BOOT_TIMEOUT)
        assert out(guest_net.ssh(IP0, "cat /root/persist", ed)) == token
        # same instance: the user data did not run again
        assert out(guest_net.ssh(IP0, "cat /root/user-data-ran", ed)) == "ran as root on guest-one"
    finally:
        machine.stop()
        (tmp_path / "console.log").write_text(machine.output)


def _iso_tool() -> list[str] | None:
    if shutil.which("genisoimage"):
        return ["genisoimage"]
    if shutil.which("xorriso"):
        return ["xorriso", "-as", "mkisofs"]
    return None


def test_guest_boots_with_config_drive(
    guest_disk: Path, guest_net: TestNetwork, tmp_path: Path
) -> None:
    tool = _iso_tool()
    if tool is None:
        pytest.skip("genisoimage (or xorriso) is not installed (scripts/setup installs it)")
    key, pub = keygen(tmp_path, "ecdsa")
    latest = tmp_path / "cd" / "openstack" / "latest"
    latest.mkdir(parents=True)
    (latest / "meta_data.json").write_text(json.dumps({
        "uuid": "6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0002",
        "name": "guest-two",
        "hostname": "guest-two",
        "public_keys": {"mykey": pub},
    }))
    (latest / "user_data").write_text(USER_DATA)
    iso = tmp_path / "config.iso"
    subprocess.run([*tool, "-quiet", "-o", str(iso), "-V", "config-2", "-r", "-J",
                    str(tmp_path / "cd")], check=True)

    guest_net.open({MAC0: IP0})  # DHCP, but no metadata server
    guest_net.add_tap("tap0")
    machine = GuestVM(guest_disk, tmp_path, nics=[Nic("tap0", MAC0)], config_drive=iso,
                      netns=guest_net.name)
    try:
        machine.start()
        m, _ = machine.wait_for(BANNER, BOOT_TIMEOUT)
        assert m.group(1) == IP0
        assert "data: config-drive" in machine.output
        guest_net.wait_ssh(IP0, key, BOOT_TIMEOUT, user="cirros")
        assert out(guest_net.ssh(IP0, "id -un", key)) == "root"
        assert out(guest_net.ssh(IP0, "hostname", key)) == "guest-two"
        # as a user, through /dev/disk/by-label (the device node is root's; checked
        # before root's blkid fills the cache a user's blkid reads too), mounted with
        # sudo: what Tempest's mount_config_drive does as cirros
        blkid = "PATH=$PATH:/sbin:/usr/sbin; blkid -L config-2 -o device"  # Tempest's PATH
        poll(lambda: out(guest_net.ssh(IP0, blkid + " || true", key, user="cirros")) or None,
             60, "config-2 for cirros")
        assert out(guest_net.ssh(IP0, blkid, key, user="cirros")) == "/dev/vdb"
        md = out(guest_net.ssh(IP0, "sudo mount /dev/vdb /mnt && "
                               "sudo cat /mnt/openstack/latest/meta_data.json && sudo umount /mnt",
                               key, user="cirros"))
        assert json.loads(md)["name"] == "guest-two"
        assert out(guest_net.ssh(IP0, "blkid -L config-2 -o device", key)) == "/dev/vdb"
        poll(lambda: out(guest_net.ssh(IP0, "cat /root/user-data-ran 2>/dev/null || true", key))
             or None, 60, "user data")
        assert out(guest_net.ssh(IP0, "cat /root/user-data-ran", key)) == "ran as root on guest-two"
        assert guest_net.metadata_requests() == []
        # the ACPI power button shuts it down cleanly (what Nova's stop sends first)
        machine.control(lambda q: q.powerdown())
        machine.wait_exit(120)
    finally:
        machine.stop()
        (tmp_path / "console.log").write_text(machine.output)
