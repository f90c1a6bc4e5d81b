"""Compute's QEMU driver with the test guest (root; TCG unless KVM really works).

The driver is driven directly (no API yet), as the compute agent drives it,
on a network of the test's own (``testnet``: a namespace with a bridge,
dnsmasq and nothing else): each action is observed inside the guest where it
can be - the banner on the console, the address from DHCP, the key and the
host name from the config drive, SSH; pings stop while it is paused; a
hot-plugged NIC takes DHCP and a volume shows its serial; memory survives a
suspend; a resized guest sees more memory and a bigger disk; a snapshot boots
(from its disk, without the kernel: the disk-boot fallback); the rescue disk
boots with the root disk second, or last with every other disk in its place
(a stable device rescue) - and a second driver object adopts what the first
one started, as after a restart of onestack. Nothing is left behind.

Each boot costs about 3 CPU-seconds under TCG; the test boots 10 times.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from onestack.compute.virt.base import (
    BlockDevice,
    GuestAgentUnresponsive,
    InstanceSpec,
    PowerState,
    Vif,
)
from onestack.compute.virt.qemu.driver import QemuDriver
from onestack.config import load_settings
from onestack.guest import boot_files
from onestack.host import procs, qemu_img
from tests.e2e.testnet import SUBNET, TestNetwork

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TIMEOUT = 180  # the host's 2 cores are shared
MAC0, IP0 = "fa:16:3e:77:02:10", f"{SUBNET}.30"
MAC1, IP1 = "fa:16:3e:77:02:11", f"{SUBNET}.31"
BANNER = re.compile(r"addresses: eth0=([0-9.]+)/24")


class Loop:
    """One event loop in a thread for the driver (its locks live in one loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A state directory with a short path (QEMU's socket paths must stay
    under 108 bytes); whatever runs from it must be gone at the end."""
    d = Path(tempfile.mkdtemp(prefix="osv-", dir="/tmp"))
    try:
        yield d
    finally:
        left = procs.find(str(d))
        for pid in left:
            procs.terminate(pid, str(d))
        shutil.rmtree(d, ignore_errors=True)
        assert not left, f"processes left behind: {left}"


def until(what: str, fn: Callable[[], object], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def talk(path: Path, send: bytes, until_seen: bytes, timeout: float = 30) -> bytes:
    """Connects to a unix socket, sends ``send`` and reads until ``until_seen``."""
    import socket

    got = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        if send:
            sock.sendall(send)
        deadline = time.monotonic() + timeout
        while until_seen not in got and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def links(net: TestNetwork) -> list[str]:
    return sorted(link.name for link in net.netlink(lambda nl: nl.links()))


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"rc={res.returncode} out={res.stdout!r} err={res.stderr!r}"
    return res.stdout.strip()


def test_an_instance_life_through_the_driver(guest_image: Path, guest_net: TestNetwork,
                                             short_dir: Path) -> None:
    kernel, initrd, cmdline = boot_files(guest_image)
    assert kernel.exists() and initrd.exists(), "the build exports the kernel"
    key = short_dir / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text().strip()
    guest_net.open({MAC0: IP0, MAC1: IP1})
    settings = load_settings(short_dir / "s", {}, env={})
    settings.compute.shutdown_timeout = 60
    settings.compute.wait_soft_reboot_seconds = 60
    loop = Loop()
    driver = QemuDriver.for_settings(settings)
    inst = str(uuid.uuid4())
    port0, port1 = str(uuid.uuid4()), str(uuid.uuid4())
    vif0 = Vif(port0, MAC0, "tap" + port0[:11], "br0", guest_net.name)
    vif1 = Vif(port1, MAC1, "tap" + port1[:11], "br0", guest_net.name)
    meta = {"uuid": inst, "name": "vm-one", "hostname": "vm-one.novalocal",
            "public_keys": {"k": pub}}
    base = InstanceSpec(
        uuid=inst, name="instance-00000001", hostname="vm-one", vcpus=1, memory_mb=256,
        root_gb=1, image_path=guest_image, image_format="qcow2", kernel_path=kernel,
        ramdisk_path=initrd, vifs=(vif0,),
        config_drive={"openstack/latest/meta_data.json": json.dumps(meta).encode()},
        properties={"os_command_line": cmdline.read_text().strip(), "hw_rng_model": "virtio"})

    def spec(**changes: Any) -> InstanceSpec:
        import dataclasses
        return dataclasses.replace(base, **changes)

    def console() -> str:
        return loop.run(driver.console_output(inst))

    def banners() -> int:
        return len(BANNER.findall(console()))

    def booted(after: int) -> None:
        until("the banner", lambda: banners() > after)
        guest_net.wait_ssh(IP0, key, TIMEOUT)

    def ssh(command: str) -> str:
        return ok(guest_net.ssh(IP0, command, key))

    def pings() -> bool:
        return guest_net.run(["busybox", "ping", "-c", "1", "-W", "1", IP0]).returncode == 0

    def state(d: QemuDriver = driver) -> PowerState:
        return loop.run(d.power_state(inst))

    try:
        loop.run(driver.init_host("compute-e2e"))
        # --- spawn: ACTIVE once QEMU runs; the guest then boots by itself
        started = time.monotonic()
        loop.run(driver.spawn(base))
        active_s = time.monotonic() - started
        assert state() == PowerState.RUNNING
        booted(0)
        ssh_s = time.monotonic() - started
        print(f"\nspawn -> running {active_s:.2f} s, -> SSH {ssh_s:.2f} s")
        assert BANNER.search(console()).group(1) == IP0  # type: ignore[union-attr]
        assert "data: config-drive" in console()
        assert ssh("hostname") == "vm-one"
        assert ssh("cat /proc/cmdline") == cmdline.read_text().strip()  # direct kernel boot
        assert ssh("blkid -L config-2 -o device") == "/dev/vdb"
        assert "virtio_rng" in ssh("cat /sys/class/misc/hw_random/rng_available")
        diag = loop.run(driver.diagnostics(inst))
        assert (diag.num_cpus, diag.memory_max_mb, diag.config_drive) == (1, 256, True)
        assert diag.uptime is not None and diag.uptime < 3600
        assert diag.cpu_details[0].time and diag.cpu_details[0].time > 10**9  # it booted
        assert diag.disk_details[0].read_bytes and diag.disk_details[0].read_bytes > 1 << 20
        assert diag.nic_details[0].mac_address == MAC0
        assert (diag.nic_details[0].rx_packets or 0) > 0 < (diag.nic_details[0].tx_packets or 0)

        # --- the consoles' sockets: the serial port (a login prompt) and VNC (RFB)
        serial = loop.run(driver.serial_console(inst))
        assert b"login:" in talk(serial, b"\r", b"login:")
        assert talk(loop.run(driver.vnc_console(inst)), b"", b"\n").startswith(b"RFB 003.008")

        # --- a second driver (onestack restarted) adopts the running guest
        again = QemuDriver.for_settings(settings)
        loop.run(again.init_host("compute-e2e"))
        assert loop.run(again.list_instances()) == [inst]
        assert state(again) == PowerState.RUNNING
        driver = again

        # --- pause stops the guest (no pings), unpause lets it go on
        loop.run(driver.pause(inst))
        assert state() == PowerState.PAUSED
        assert not pings()
        loop.run(driver.unpause(inst))
        until("pings after unpause", pings, 30)

        # --- a NIC and a volume hot-plugged, seen inside, and unplugged
        loop.run(driver.attach_interface(inst, vif1))
        until("DHCP on the hot-plugged NIC", lambda: ssh(
            "cat /run/onestack/ip.eth1 2>/dev/null || true") == f"{IP1}/24", 60)
        volume = short_dir / "vol.qcow2"
        qemu_img.run(qemu_img.create_argv(volume, "qcow2", 64 << 20))
        vol_id = str(uuid.uuid4())
        loop.run(driver.attach_volume(inst, BlockDevice(vol_id, volume, "qcow2", vol_id)))
        until("the volume", lambda: vol_id[:20] in ssh(
            "cat /sys/block/vd*/serial 2>/dev/null; echo"), 60)
        loop.run(driver.detach_volume(inst, vol_id))
        loop.run(driver.detach_interface(inst, port1))
        assert vol_id[:20] not in ssh("cat /sys/block/vd*/serial 2>/dev/null; echo")
        assert ssh("ls /sys/class/net").split() == ["eth0", "lo"]
        assert vif1.tap not in links(guest_net)

        # --- suspend: memory to a file, no process; resume: the same memory
        token = uuid.uuid4().hex
        ssh(f"echo {token} > /run/token")
        loop.run(driver.suspend(inst))
        assert state() == PowerState.SUSPENDED
        assert procs.find(str(short_dir)) == []
        loop.run(driver.resume(spec()))
        until("SSH after resume", lambda: guest_net.ssh(IP0, "cat /run/token", key).stdout
              .strip() == token, 60)

        # --- snapshot: a standalone qcow2 with what the guest wrote
        ssh(f"echo {token} > /root/token && sync")
        snap = short_dir / "snap.qcow2"
        assert loop.run(driver.snapshot(inst, snap)) == "qcow2"
        info = qemu_img.parse_info(qemu_img.run(qemu_img.info_argv(snap, "qcow2")))
        assert info.backing_file is None and info.virtual_size == 1 << 30
        assert state() == PowerState.RUNNING and pings()

        # --- reboots: soft (ACPI power button, the guest shuts down) and hard
        n = banners()
        loop.run(driver.reboot(spec(), hard=False))
        booted(n)
        n = banners()
        loop.run(driver.reboot(spec(), hard=True))
        booted(n)
        assert ssh("cat /root/token") == token

        # --- resize: more memory and a bigger disk; revert: as before
        mem_before = int(ssh("awk '/MemTotal/ {print $2}' /proc/meminfo"))
        n = banners()
        loop.run(driver.resize(spec(memory_mb=384, root_gb=2)))
        booted(n)
        assert int(ssh("awk '/MemTotal/ {print $2}' /proc/meminfo")) > mem_before + 100_000
        assert ssh("cat /sys/block/vda/size") == str(2 << 21)
        n = banners()
        loop.run(driver.revert_resize(spec()))
        booted(n)
        assert int(ssh("awk '/MemTotal/ {print $2}' /proc/meminfo")) == mem_before
        assert ssh("cat /sys/block/vda/size") == str(1 << 21)

        # --- rescue: the rescue disk boots, the root disk is the second one
        n = banners()
        loop.run(driver.rescue(spec(), guest_image, "qcow2"))
        booted(n)
        assert ssh("lsblk -dn -o NAME").split()[:2] == ["vda", "vdb"]
        n = banners()
        loop.run(driver.unrescue(spec()))
        booted(n)
        assert ssh("cat /root/token") == token

        # --- a stable device rescue (the rescue image's hw_rescue_*): every disk
        # where it was (the config drive still vdb: the legacy rescue moves it
        # to vdc), the rescue disk added last
        n = banners()
        loop.run(driver.rescue(spec(properties={**base.properties, "hw_rescue_device": "disk",
                                                "hw_rescue_bus": "virtio"}),
                               guest_image, "qcow2"))
        booted(n)
        assert ssh("lsblk -dn -o NAME").split() == ["vda", "vdb", "vdc"]
        assert ssh("findfs LABEL=config-2") == "/dev/vdb"
        n = banners()
        loop.run(driver.unrescue(spec()))
        booted(n)
        assert ssh("lsblk -dn -o NAME").split() == ["vda", "vdb"]

        # --- power off (ACPI, the guest shuts down cleanly); power on is the
        # hard reboot's fresh start, seen above
        loop.run(driver.power_off(inst, 60))
        assert state() == PowerState.SHUTDOWN and procs.find(str(short_dir)) == []
        assert vif0.tap not in links(guest_net)

        # --- rebuild (of the stopped instance, started after) from the snapshot,
        # booting from its disk (no kernel): the snapshot boots, and so does an
        # image without kernel_id
        n = banners()
        loop.run(driver.rebuild(spec(image_path=snap, kernel_path=None, ramdisk_path=None)))
        booted(n)
        assert ssh("cat /root/token") == token
        assert "BOOT_IMAGE=/vmlinuz" in ssh("cat /proc/cmdline")  # SYSLINUX booted it

        # --- destroy: no process, disk, tap or file left
        loop.run(driver.destroy(inst))
        assert state() == PowerState.NOSTATE
        assert loop.run(driver.list_instances()) == []
        assert procs.find(str(short_dir)) == []
        assert not (settings.state_dir / "instances" / inst).exists()
        assert not (settings.state_dir / "run" / "qemu" / inst).exists()
        assert links(guest_net) == ["br0", "lo"]
    finally:
        try:
            loop.run(driver.destroy(inst))
        finally:
            loop.close()


def _spec(doc: dict[str, Any]) -> InstanceSpec:
    doc = dict(doc)
    doc["vifs"] = tuple(Vif(**v) for v in doc["vifs"])
    for k in ("image_path", "kernel_path", "ramdisk_path"):
        doc[k] = Path(doc[k])
    return InstanceSpec(**doc)


SPAWNER = r"""
import asyncio, json, sys
from pathlib import Path
from onestack.compute.virt.base import InstanceSpec, Vif
from onestack.compute.virt.qemu.driver import QemuDriver
from onestack.config import load_settings

job = json.loads(Path(sys.argv[1]).read_text())
settings = load_settings(job["state"], {}, env={})
driver = QemuDriver.for_settings(settings)

async def main():
    await driver.init_host("compute-e2e")
    specs: list[dict[str, Any]] = []
    for s in job["specs"]:
        s["vifs"] = tuple(Vif(**v) for v in s["vifs"])
        for k in ("image_path", "kernel_path", "ramdisk_path"):
            s[k] = Path(s[k])
        specs.append(InstanceSpec(**s))
    print("spawning", flush=True)
    await asyncio.gather(*(driver.spawn(s) for s in specs))
    print("done", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_killed_while_spawning_guests_keep_running_and_nothing_leaks(
        guest_image: Path, guest_net: TestNetwork, short_dir: Path) -> None:
    """onestack killed -9 while it spawns 5 guests: those QEMU had started run
    on, a new driver finds every instance (running, or stopped with its record
    saying it never finished building), and destroying them leaves nothing."""
    kernel, initrd, cmdline = boot_files(guest_image)
    macs = {f"fa:16:3e:77:03:{i:02x}": f"{SUBNET}.{50 + i}" for i in range(5)}
    guest_net.open(macs)
    specs: list[dict[str, Any]] = []
    for i, mac in enumerate(macs):
        port = str(uuid.uuid4())
        specs.append({
            "uuid": str(uuid.uuid4()), "name": f"instance-{i}", "hostname": f"vm{i}",
            "vcpus": 1, "memory_mb": 128, "root_gb": 1, "image_path": str(guest_image),
            "kernel_path": str(kernel), "ramdisk_path": str(initrd),
            "vifs": [{"port_id": port, "mac": mac, "tap": "tap" + port[:11], "bridge": "br0",
                      "netns": guest_net.name, "mtu": 1500}],
            "properties": {"os_command_line": cmdline.read_text().strip()}})
    job = short_dir / "job.json"
    state = short_dir / "s"
    job.write_text(json.dumps({"state": str(state), "specs": specs}))
    proc = subprocess.Popen([sys.executable, "-c", SPAWNER, str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    loop = Loop()
    driver = QemuDriver.for_settings(load_settings(state, {}, env={}))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "spawning"
        qemu_dir = state / "run" / "qemu"
        until("a first QEMU", lambda: procs.find(str(qemu_dir)), 60)
        proc.kill()  # kill -9, mid-spawn
        proc.wait(30)
        time.sleep(2)  # a QEMU that was starting finishes starting by itself
        running_then = loop.run(driver.host.guests.running())
        loop.run(driver.init_host("compute-e2e"))
        names = loop.run(driver.list_instances())
        known = {s["uuid"] for s in specs}
        assert set(names) <= known and set(running_then) <= set(names), (names, running_then)
        time.sleep(1)
        now = loop.run(driver.host.guests.running())
        assert running_then.items() <= now.items(), "a guest died with onestack"
        states = {u: loop.run(driver.power_state(u)) for u in known}
        assert {u for u, st in states.items() if st == PowerState.RUNNING} == set(running_then)
        for u, st in states.items():
            if st != PowerState.RUNNING:
                # never started: its record (if any) says it was still building
                assert st in (PowerState.SHUTDOWN, PowerState.NOSTATE), (u, st)
        # the agent retries the boot of what runs: the spawn adopts it as it is
        first = next(iter(running_then))
        loop.run(driver.spawn(next(_spec(s) for s in specs if s["uuid"] == first)))
        assert loop.run(driver.host.guests.running())[first] == running_then[first]
        for u in known:  # the agent's reconcile: not ACTIVE in time -> retried or removed
            loop.run(driver.destroy(u))
        assert loop.run(driver.list_instances()) == []
        assert procs.find(str(short_dir)) == []
        assert links(guest_net) == ["br0", "lo"]
        assert [p.name for p in (state / "instances").iterdir()] in ([], ["_base"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for u in (s["uuid"] for s in specs):
            loop.run(driver.destroy(u))
        loop.close()


def test_image_properties_shape_the_machine(guest_image: Path, guest_net: TestNetwork,
                                            short_dir: Path) -> None:
    """An image asking for the i440FX machine and IDE disks boots (from its disk,
    SeaBIOS reading IDE) and still finds its config drive and its address; one
    asking for the guest agent gets its channel (the test guest runs no agent:
    setting a password finds nobody answering)."""
    guest_net.open({MAC0: IP0})
    loop = Loop()
    driver = QemuDriver.for_settings(load_settings(short_dir / "s", {}, env={}))
    inst, port = str(uuid.uuid4()), str(uuid.uuid4())
    spec = InstanceSpec(
        uuid=inst, name="instance-00000002", hostname="vm-two", vcpus=1, memory_mb=128,
        root_gb=1, image_path=guest_image,
        vifs=(Vif(port, MAC0, "tap" + port[:11], "br0", guest_net.name),),
        config_drive={"openstack/latest/meta_data.json": b'{"hostname": "vm-two"}'},
        properties={"hw_machine_type": "pc", "hw_disk_bus": "ide", "hw_video_model": "cirrus",
                    "hw_qemu_guest_agent": "yes"})
    try:
        loop.run(driver.init_host("compute-e2e"))
        loop.run(driver.spawn(spec))
        out = until("the banner", lambda: (lambda o: o if BANNER.search(o) else None)(
            loop.run(driver.console_output(inst))))
        assert "hostname: vm-two" in out and "data: config-drive" in out
        assert BANNER.search(out).group(1) == IP0  # type: ignore[union-attr]
        cmd = Path(f"/proc/{loop.run(driver.host.guests.get(inst)).pid}/cmdline")  # type: ignore[union-attr]
        argv = cmd.read_bytes().split(b"\0")
        assert b"pc,smm=off,hpet=off,smbus=off,vmport=off,usb=off,sata=off" in argv
        assert any(a.startswith(b"ide-hd,drive=root-fmt") for a in argv)
        assert b"cirrus-vga" in argv
        assert b"virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0" in argv
        with pytest.raises(GuestAgentUnresponsive):
            loop.run(driver.set_admin_password(inst, "root", "s3cret"))
        loop.run(driver.destroy(inst))
        assert procs.find(str(short_dir)) == [] and links(guest_net) == ["br0", "lo"]
    finally:
        try:
            loop.run(driver.destroy(inst))
        finally:
            loop.close()
