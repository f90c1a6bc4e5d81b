"""A guest's life through the real QEMU driver (root; TCG unless KVM really works).

Start it (daemonized, in the test's namespace), see it running over QMP and
answering pings, adopt it from a second driver object (as after a restart of
onestack), hot-plug a NIC that takes DHCP, pause and resume it, suspend it to a
file and restore it (it answers again), stop it: nothing is left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.host import kvm, procs, qemu
from onestack.host.qemu import Disk, GuestSpec, Nic
from tests.e2e.testnet import SUBNET, TestNetwork

pytestmark = pytest.mark.e2e

MAC0, IP0 = "52:54:00:77:01:10", f"{SUBNET}.20"
MAC1, IP1 = "52:54:00:77:01:11", f"{SUBNET}.21"
TIMEOUT = 180  # the host's 2 cores are shared


def until(what: str, fn: Callable[[], bool], timeout: float = TIMEOUT) -> float:
    started = time.monotonic()
    while not fn():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def test_guest_life_through_the_driver(guest_disk: Path, guest_net: TestNetwork,
                                       tmp_path: Path) -> None:
    guest_net.open({MAC0: IP0, MAC1: IP1})
    guest_net.add_tap("tap0")
    guest_net.add_tap("tap1")
    guest_net.serve_metadata({"latest/meta-data/instance-id": "i-1"})
    run_dir = tmp_path / "q"
    guests = qemu.Guests(run_dir)
    spec = GuestSpec(name="vm1", disks=(Disk(str(guest_disk), cache="unsafe"),),
                     nics=(Nic("tap0", MAC0),), netns=guest_net.name, hotplug_slots=2,
                     uuid="6f0b1c1e-8d1c-4d55-9a1e-0e57ac4b0009")

    def control(fn: Callable[[Any], Awaitable[Any]], driver: qemu.Guests = guests) -> Any:
        async def go() -> Any:
            async with driver.qmp("vm1") as q:
                return await fn(q)
        return asyncio.run(go())

    def pings(ip: str) -> bool:
        return guest_net.run(["busybox", "ping", "-c", "1", "-W", "1", ip]).returncode == 0

    try:
        guest = asyncio.run(guests.start(spec))
        assert guest.accel in ("kvm", "tcg") and guest.pid > 0
        assert control(lambda q: q.status()) == "running"
        with pytest.raises(Exception, match="already running"):
            asyncio.run(guests.start(spec))
        booted = until("the guest to answer a ping", lambda: pings(IP0))
        print(f"\nguest ({guest.accel}) answered a ping {booted:.1f}s after start")

        # a second driver over the same directory (onestack restarted) adopts it
        again = qemu.Guests(run_dir)
        adopted = again.get("vm1")
        assert adopted is not None and adopted.pid == guest.pid and adopted.spec == spec
        assert again.running() == {"vm1": guest.pid} and again.names() == ["vm1"]
        assert control(lambda q: q.status(), again) == "running"

        # a NIC plugged in while it runs takes its address by DHCP
        assert control(lambda q: q.free_ports()) == ["rp2", "rp3"]
        assert control(lambda q: q.add_nic("nic1", "tap1", MAC1)) == "rp2"
        until("DHCP on the hot-plugged NIC", lambda: pings(IP1), 90)
        assert any(lease.mac == MAC1 for lease in guest_net.dhcp.leases("br0"))

        # paused, it does not answer; resumed, it does
        control(lambda q: q.pause())
        assert control(lambda q: q.status()) == "paused"
        assert not pings(IP0)
        control(lambda q: q.resume())
        until("an answer after resume", lambda: pings(IP0), 30)

        # suspended to a file: the process ends; restored: the same guest answers
        state = tmp_path / "vm1.state"
        control(lambda q: q.save(state))
        assert state.stat().st_size > 1 << 20
        asyncio.run(guests.stop("vm1"))
        assert guests.get("vm1") is None and guests.running() == {}
        # the machine as it was saved: nic1 where hot-plug put it (the first free port)
        now = dataclasses.replace(spec, nics=(*spec.nics, Nic("tap1", MAC1, "nic1")),
                                  hotplug_slots=1)
        restored = asyncio.run(guests.restore(now, state))
        assert restored.pid != guest.pid and not state.exists()
        assert control(lambda q: q.status()) == "running"
        until("an answer after restore", lambda: pings(IP0), 60)
        until("an answer on the hot-plugged NIC after restore", lambda: pings(IP1), 30)
        # the serial console's log runs on across the restore (the banner may
        # still have been printing when the guest was saved: it ends after)
        until("the banner on the console", lambda: f"eth0={IP0}/24" in
              guests.console_output("vm1"), 60)

        # stopped: the process and its sockets are gone; removed: the directory too
        assert asyncio.run(guests.stop("vm1")) is True
        assert asyncio.run(guests.stop("vm1")) is False
        assert procs.find(str(run_dir)) == []
        assert not (run_dir / "vm1" / "qmp.sock").exists()
        assert (run_dir / "vm1" / "console.log").exists()
        assert asyncio.run(guests.remove("vm1")) is True
        assert not (run_dir / "vm1").exists()
    finally:
        asyncio.run(guests.remove("vm1"))


@pytest.mark.skipif(not Path("/dev/kvm").exists() or kvm.qemu_binary() is None,
                    reason="no /dev/kvm or no QEMU: no KVM probe to run")
def test_a_process_killed_during_the_kvm_probe_leaves_no_qemu() -> None:
    """Where KVM cannot run a guest the probe's QEMU stays alive until told to
    go; it dies with the process that probes when that is killed (SIGKILL)."""
    prober = subprocess.Popen([sys.executable, "-c",
                               "from onestack.host import kvm; kvm.probe(timeout=30)"])
    try:
        def probe_qemu() -> list[int]:
            return [pid for pid in procs.find("isa-debug-exit,iobase=0xf4")
                    if (procs.cmdline(pid) or [""])[0].endswith("qemu-system-x86_64")
                    and _parent(pid) == prober.pid]

        deadline = time.monotonic() + 20
        while not (found := probe_qemu()):
            if prober.poll() is not None:
                pytest.skip("the probe ended before it could be killed (KVM runs guests here)")
            assert time.monotonic() < deadline, "the probe's QEMU never started"
            time.sleep(0.05)
        prober.kill()
        prober.wait()
        assert procs.wait_gone(found[0], 5), "the probe's QEMU outlived the probing process"
    finally:
        if prober.poll() is None:
            prober.kill()
            prober.wait()


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
