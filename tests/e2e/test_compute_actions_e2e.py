"""Compute's actions on real guests, end to end (root, QEMU), through the real ``openstack`` CLI.

The cloud of ``tests/e2e/computecloud.py`` (``onestack up --no-host-network``,
the QEMU driver, the test guest registered with its kernel). Each test shares
its guests across the actions it shows, since every TCG boot costs about 3
host CPU-seconds: one server goes through pause, suspend, snapshot, resize
(revert, then confirm), rebuild; a second boots from the snapshot and is
shelved and unshelved; a third gets a port hot-plugged and unplugged, its
serial console opened through the console proxy's websocket, and is deleted,
after which nothing of it may be left on the host: no QEMU, disk, tap,
firewall element, DHCP host entry or address.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.host import netns, procs
from tests.e2e.computecloud import (
    Cloud,
    assert_gone,
    dhcp_files,
    firewall_ruleset,
    fixed_ip,
    module_cloud,
    port_of,
    wait_for,
)

pytestmark = pytest.mark.e2e
GUEST = "onestack-test-guest"


@pytest.fixture(scope="module")
def cloud(guest_image: Path) -> Iterator[Cloud]:
    yield from module_cloud(guest_image)


def boot(cloud: Cloud, name: str, image: str = GUEST, *extra: str) -> dict[str, object]:
    return dict(cloud.js("server", "create", "--image", image, "--flavor", "m1.nano",
                         "--network", "private", "--key-name", "k", *extra, "--wait", name))


def reachable(ns: str, address: str) -> bool:
    return netns.run(ns, ["ping", "-c", "2", "-i", "0.3", "-W", "1", address], timeout=10).returncode == 0


def flavor(server: dict[str, Any]) -> str:
    """The server's flavor's name (embedded in the server since 2.47)."""
    return str(server["flavor"]["original_name"])


def mem_total_kb(cloud: Cloud, ns: str, address: str) -> int:
    out = cloud.ssh(ns, address, "grep MemTotal /proc/meminfo")
    return int(out.split()[1])


def test_pause_suspend_snapshot_resize_rebuild_shelve_on_real_guests(cloud: Cloud) -> None:
    t0 = time.monotonic()
    sid = str(boot(cloud, "act")["id"])
    router = cloud.router_ns()
    ip = fixed_ip(port_of(cloud, "act"))
    boot_id = cloud.ssh(router, ip, "echo before-snapshot > /root/mark && sync && "
                        "cat /proc/sys/kernel/random/boot_id").strip()
    assert boot_id

    # pause / unpause: the vCPUs stop (no answer), then go on where they were (same boot)
    cloud.os("server", "pause", "act")
    paused = cloud.wait_status("act", "PAUSED", 60)
    assert paused["OS-EXT-STS:power_state"] in (3, "Paused"), paused
    assert not reachable(router, ip)
    cloud.os("server", "unpause", "act")
    cloud.wait_status("act", "ACTIVE", 60)
    assert cloud.ssh(router, ip, "cat /proc/sys/kernel/random/boot_id").strip() == boot_id

    # suspend / resume: the memory goes to disk and QEMU away; it comes back, same boot
    pid = cloud.qemu_pids(sid)
    cloud.os("server", "suspend", "act")
    cloud.wait_status("act", "SUSPENDED", 90)
    assert cloud.qemu_pids(sid) == [] and procs.wait_gone(pid[0], 10)
    assert not reachable(router, ip)
    cloud.os("server", "resume", "act")
    cloud.wait_status("act", "ACTIVE", 90)
    assert cloud.ssh(router, ip, "cat /proc/sys/kernel/random/boot_id").strip() == boot_id

    # snapshot: an image of the disk as it is now (the file written above in it)
    snap = cloud.js("server", "image", "create", "--name", "act-snap", "--wait", "act")
    assert cloud.js("image", "show", snap["id"])["status"] == "active"
    cloud.wait_status("act", "ACTIVE", 60)

    # resize to m1.micro (192 MiB against 128): revert gives the old machine back, confirm keeps the new
    small = mem_total_kb(cloud, router, ip)
    for finish in ("revert", "confirm"):
        cloud.os("server", "resize", "--flavor", "m1.micro", "act")
        resized = cloud.wait_status("act", "VERIFY_RESIZE", 120)
        assert flavor(resized) == "m1.micro", resized["flavor"]
        big = mem_total_kb(cloud, router, ip)
        assert big > small + 40_000, (small, big)
        assert cloud.ssh(router, ip, "cat /root/mark").strip() == "before-snapshot"
        cloud.os("server", "resize", finish, "act")
        done = cloud.wait_status("act", "ACTIVE", 120)
        assert flavor(done) == ("m1.micro" if finish == "confirm" else "m1.nano"), done["flavor"]
        assert mem_total_kb(cloud, router, ip) == (big if finish == "confirm" else small)
        assert cloud.ssh(router, ip, "cat /root/mark").strip() == "before-snapshot"

    # rebuild: a fresh disk from the image; the file is gone, the address stays
    cloud.os("server", "rebuild", "--image", GUEST, "--wait", "act")
    assert flavor(cloud.wait_status("act", "ACTIVE", 30)) == "m1.micro"
    assert cloud.ssh(router, ip, "test -e /root/mark && echo there || echo gone").strip() == "gone"

    # a new server from the snapshot: the file is in it
    boot(cloud, "fromsnap", "act-snap")
    ip2 = fixed_ip(port_of(cloud, "fromsnap"))
    assert cloud.ssh(router, ip2, "cat /root/mark").strip() == "before-snapshot"

    # shelve (offloaded to an image at once: no QEMU, no disk on the host) and unshelve
    sid2 = str(cloud.server("fromsnap")["id"])
    cloud.ssh(router, ip2, "echo before-shelve > /root/mark2 && sync")
    cloud.os("server", "shelve", "fromsnap")
    cloud.wait_status("fromsnap", "SHELVED_OFFLOADED", 120)
    assert cloud.qemu_pids(sid2) == []
    assert not (cloud.state / "instances" / sid2).exists()
    shelved = [i for i in cloud.js("image", "list") if i["Name"] == "fromsnap-shelved"]
    assert len(shelved) == 1, shelved
    cloud.os("server", "unshelve", "fromsnap")
    cloud.wait_status("fromsnap", "ACTIVE", 120)
    assert cloud.ssh(router, ip2, "cat /root/mark /root/mark2").split() == ["before-snapshot",
                                                                            "before-shelve"]
    # Nova deletes the shelve image once the server is back
    wait_for("the shelve image deleted",
             lambda: not [i for i in cloud.js("image", "list") if i["Name"] == "fromsnap-shelved"], 30)
    print(f"\nactions on real guests: {time.monotonic() - t0:.1f} s")

    cloud.os("server", "delete", "--wait", "act", "fromsnap")
    cloud.os("image", "delete", "act-snap")
    assert cloud.qemu_pids() == []


def nics(cloud: Cloud, ns: str, address: str) -> dict[str, tuple[str, str]]:
    """The guest's NICs: MAC -> (name, its IPv4 addresses as ``ip -o`` prints them)."""
    out = cloud.ssh(ns, address, "ip -o link; echo ==; ip -o -4 addr")
    links, addrs = out.split("==\n")
    found: dict[str, tuple[str, str]] = {}
    for line in links.splitlines():
        fields = line.split()
        name = fields[1].rstrip(":").split("@")[0]
        mac = fields[fields.index("link/ether") + 1] if "link/ether" in fields else ""
        if mac:
            found[mac] = (name, " ".join(a.split()[3] for a in addrs.splitlines()
                                         if a.split()[1] == name))
    return found


def serial_console_prompt(url: str, timeout: float = 60.0) -> str:
    """What the guest's serial console says to a newline sent through the console proxy."""
    from websockets.sync.client import connect

    seen = b""
    deadline = time.monotonic() + timeout
    with connect(url, subprotocols=["binary"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(b"\r\n")
        last_send = time.monotonic()
        while time.monotonic() < deadline and b"login:" not in seen:
            try:
                data = ws.recv(timeout=1)
            except TimeoutError:
                if time.monotonic() - last_send > 5:  # getty may still be starting
                    ws.send(b"\r\n")
                    last_send = time.monotonic()
                continue
            seen += data if isinstance(data, bytes) else data.encode()
    return seen.decode(errors="replace")


def test_interface_attach_detach_serial_console_and_delete_leaves_nothing(cloud: Cloud) -> None:
    net = cloud.js("network", "create", "second")["id"]
    cloud.os("subnet", "create", "--network", "second", "--subnet-range", "10.77.0.0/24", "second-v4")
    sid = str(boot(cloud, "nic")["id"])
    router = cloud.router_ns()
    port = port_of(cloud, "nic")
    ip, mac = fixed_ip(port), str(port["MAC Address"])
    before = nics(cloud, router, ip)
    assert set(before) == {mac} and before[mac][1].startswith(ip + "/"), before

    # attach: a port on "second" appears in the guest as a new NIC that gets its address by DHCP
    cloud.os("server", "add", "network", "nic", "second")
    ports = wait_for("the attached port", lambda: cloud.js(
        "port", "list", "--server", "nic", "--network", net, "--long"), 60)
    new_mac = str(ports[0]["MAC Address"])
    new_ip = fixed_ip(ports[0])
    assert new_ip.startswith("10.77.0.")
    seen = wait_for("the new NIC's address in the guest", lambda: (
        lambda n: n if new_mac in n and n[new_mac][1].startswith(new_ip + "/") else None)(
            nics(cloud, router, ip)), 60, every=1.0)
    assert set(seen) == {mac, new_mac}, seen
    addresses = cloud.server("nic")["addresses"]  # Compute's view: both networks
    assert new_ip in str(addresses["second"]) and ip in str(addresses["private"]), addresses

    # detach: the NIC leaves the guest, and the port (made by Compute) is deleted
    cloud.os("server", "remove", "port", "nic", ports[0]["ID"])
    wait_for("the NIC gone from the guest", lambda: new_mac not in nics(cloud, router, ip), 60, every=1.0)
    wait_for("the port deleted", lambda: cloud.js("port", "list", "--network", net,
                                                   "--device-owner", "compute:nova") == [], 30)
    assert cloud.layout.tap(ports[0]["ID"]) not in cloud.root_links()

    # a port deleted through Networking leaves the guest too (network-vif-deleted)
    cloud.os("server", "add", "network", "nic", "second")
    ports = wait_for("the attached port", lambda: cloud.js(
        "port", "list", "--server", "nic", "--network", net, "--long"), 60)
    again = str(ports[0]["MAC Address"])
    wait_for("the second NIC in the guest", lambda: again in nics(cloud, router, ip) or None,
             60, every=1.0)
    refused = cloud.os("port", "delete", ports[0]["ID"], check=False)  # Neutron's policy:
    assert "rule:delete_port is disallowed by policy" in refused.stderr  # not a member's
    cloud.os("port", "delete", ports[0]["ID"], as_cloud="onestack-admin")
    wait_for("the deleted port's NIC gone from the guest",
             lambda: again not in nics(cloud, router, ip), 60, every=1.0)
    wait_for("its tap gone", lambda: cloud.layout.tap(ports[0]["ID"]) not in cloud.root_links(), 30)
    assert "second" not in cloud.server("nic")["addresses"]

    # the serial console through the proxy's websocket: the guest's getty answers a newline
    console = cloud.js("console", "url", "show", "--serial", "nic")
    assert console["type"] == "serial" and console["url"].startswith("ws://"), console
    said = serial_console_prompt(console["url"])
    assert "login:" in said, said

    # delete: nothing of the server is left on the host
    fip = cloud.js("floating", "ip", "create", "public")["floating_ip_address"]
    cloud.os("server", "add", "floating", "ip", "nic", fip)
    tap = cloud.layout.tap(port["ID"])
    wait_for("the port in the firewall", lambda: tap in firewall_ruleset(cloud), 30)
    assert mac in dhcp_files(cloud, "hosts") and ip in dhcp_files(cloud, "hosts")
    pids = cloud.qemu_pids(sid)
    assert len(pids) == 1
    cloud.os("server", "delete", "--wait", "nic")
    assert procs.wait_gone(pids[0], 10)
    assert_gone(cloud, sid, port)
    assert cloud.js("floating", "ip", "show", fip)["port_id"] is None
    cloud.os("network", "delete", "second")
