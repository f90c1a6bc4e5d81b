"""Compute end to end (root, QEMU): real guests on the real data plane.

A real ``onestack up --no-host-network`` (the data plane on, its
``<prefix>-ext`` namespace standing in for the host on ``public``; the QEMU
driver, its default) on a short private state directory holding the test
guest (``onestack image build-test``; the cloud registers it with its kernel
and initramfs, so it boots straight into its kernel). Everything is driven by
the real ``openstack`` CLI as the demo user, as a user would; what is checked
inside the guest is read over SSH with the keypair's private key.

Guests cost about 3 host CPU-seconds each to boot under TCG on a loaded
machine: the tests boot 1, then 2, then 3 guests (the issue's kill -9 test
says 5; 3 keeps the suite bounded, ``ONESTACK_TEST_KILL_SERVERS=5`` runs the
5). The actions on a running guest are in ``test_compute_actions_e2e.py``;
the shared cloud is ``computecloud.py``. At the end the cloud's whole data plane is
removed and no process of its state directory may be left.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.host import procs
from tests.e2e.computecloud import (
    BANNER,
    Cloud,
    assert_gone,
    fixed_ip,
    has_firewall,
    module_cloud,
    port_of,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cloud(guest_image: Path) -> Iterator[Cloud]:
    yield from module_cloud(guest_image)


def test_a_server_boots_gets_dhcp_metadata_floating_ip_ssh_and_leaves_nothing(cloud: Cloud) -> None:
    t0 = time.monotonic()
    server = cloud.js("server", "create", "--image", "onestack-test-guest", "--flavor", "m1.nano",
                      "--network", "private", "--key-name", "k", "--wait", "vm1")
    active = time.monotonic() - t0
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:power_state"] in (1, "Running")
    sid = server["id"]
    port = port_of(cloud, "vm1")
    address = fixed_ip(port)
    assert port["Status"] == "ACTIVE"
    # the guest's banner on its serial console: its hostname and instance id from
    # the metadata service, and the address it got by DHCP
    def console() -> str | None:
        out = cloud.os("console", "log", "show", "vm1").stdout
        return out if "addresses:" in out else None

    log = wait_for("the banner", console, 60)
    assert BANNER in log
    assert f"hostname: vm1  instance-id: {sid}  data: metadata-service" in log
    assert f"eth0={address}/26" in log

    fip = cloud.js("floating", "ip", "create", "public")["floating_ip_address"]
    cloud.os("server", "add", "floating", "ip", "vm1", fip)
    out = cloud.ssh(cloud.layout.external_ns, fip, "hostname; cat /root/.ssh/authorized_keys; "
                    "ip -4 -o addr show dev eth0; "
                    "curl -s http://169.254.169.254/openstack/latest/meta_data.json")
    ssh_at = time.monotonic() - t0
    lines = out.splitlines()
    assert lines[0] == "vm1"
    public_key = cloud.os("keypair", "show", "--public-key", "k").stdout.strip()
    assert lines[1] == public_key
    assert f"inet {address}/26" in lines[2]
    meta = json.loads(lines[3])
    # Nova's meta_data.json: the hostname in its dhcp_domain (novalocal)
    assert (meta["uuid"], meta["name"], meta["hostname"]) == (sid, "vm1", "vm1.novalocal")
    assert meta["public_keys"] == {"k": public_key}
    # the fixed address from inside the network (the router's namespace)
    assert cloud.ssh(cloud.router_ns(), address, "hostname").strip() == "vm1"
    print(f"\nvm1: ACTIVE after {active:.2f} s, SSH through the floating IP after {ssh_at:.2f} s")

    pid = cloud.qemu_pids(sid)
    assert len(pid) == 1
    cloud.os("server", "delete", "--wait", "vm1")
    assert procs.wait_gone(pid[0], 10)
    assert_gone(cloud, sid, port)
    assert cloud.js("port", "list", "--device-id", sid) == []
    assert cloud.js("floating", "ip", "show", fip)["port_id"] is None


def test_two_servers_ping_each_other_groups_and_power_actions(cloud: Cloud) -> None:
    sg = cloud.js("security", "group", "create", "pingable")["id"]
    rule = cloud.js("security", "group", "rule", "create", sg, "--protocol", "icmp",
                    "--remote-ip", "0.0.0.0/0")["id"]
    cloud.os("security", "group", "rule", "create", sg, "--protocol", "tcp", "--dst-port", "22",
             "--remote-ip", "0.0.0.0/0")  # b is reached by SSH too, and is not in "default"
    cloud.os("server", "create", "--image", "onestack-test-guest", "--flavor", "m1.nano",
             "--network", "private", "--key-name", "k", "--wait", "a")
    cloud.os("server", "create", "--image", "onestack-test-guest", "--flavor", "m1.nano",
             "--network", "private", "--key-name", "k", "--security-group", sg, "--wait", "b")
    a, b = fixed_ip(port_of(cloud, "a")), fixed_ip(port_of(cloud, "b"))
    router = cloud.router_ns()

    def pings(target: str) -> bool:
        out = cloud.ssh(router, a, f"ping -c 1 -W 2 {target} >/dev/null && echo yes || echo no")
        return out.strip() == "yes"

    assert pings(b)
    assert cloud.ssh(router, b, f"ping -c 1 -W 2 {a} >/dev/null && echo ok").strip() == "ok"
    if has_firewall():  # the group's change reaches b's port: ICMP from a is dropped, then let in again
        cloud.os("security", "group", "rule", "delete", rule)
        wait_for("ICMP dropped", lambda: not pings(b), 30, every=1.0)
        cloud.os("security", "group", "rule", "create", sg, "--protocol", "icmp", "--remote-ip", a + "/32")
        wait_for("ICMP let in", lambda: pings(b), 30, every=1.0)

    # stop / start: the guest shuts down (no QEMU), then boots again and answers
    sid = cloud.server("a")["id"]
    cloud.os("server", "stop", "a")
    wait_for("SHUTOFF", lambda: cloud.server("a")["status"] == "SHUTOFF", 60)
    assert cloud.qemu_pids(sid) == []
    cloud.os("server", "start", "a")
    wait_for("ACTIVE", lambda: cloud.server("a")["status"] == "ACTIVE", 60)
    boot1 = cloud.ssh(router, a, "cat /proc/sys/kernel/random/boot_id").strip()
    # reboot (hard: a new QEMU at once; a soft one waits for the guest's shutdown)
    cloud.os("server", "reboot", "--hard", "--wait", "a")
    assert cloud.server("a")["status"] == "ACTIVE"
    boot2 = cloud.ssh(router, a, "cat /proc/sys/kernel/random/boot_id").strip()
    assert boot1 and boot2 and boot1 != boot2

    cloud.os("server", "delete", "--wait", "a", "b")
    cloud.os("security", "group", "delete", sg)


# The issue asks for 5 servers booting at kill -9; the suite boots 3 (each TCG boot
# costs ~3 CPU-s on a shared 2-CPU machine): ONESTACK_TEST_KILL_SERVERS=5 runs the 5.
KILL_COUNT = int(os.environ.get("ONESTACK_TEST_KILL_SERVERS", "3"))


@pytest.mark.parametrize(("when", "count"), [("first-qemu", KILL_COUNT), ("at-once", 2)])
def test_killed_while_servers_boot_restart_settles_each_and_nothing_leaks(
        cloud: Cloud, when: str, count: int) -> None:
    """kill -9 of onestack while servers boot - as soon as a first QEMU runs, or
    right after the API accepted them (before any is scheduled or spawned):
    after a restart each is ACTIVE or ERROR with a reason, the guests that ran
    kept running (the same QEMU), and deleting them leaves nothing."""
    name = f"k9{when[0]}"
    cloud.os("server", "create", "--image", "onestack-test-guest", "--flavor", "m1.nano",
             "--network", "private", "--key-name", "k", "--min", str(count), "--max", str(count), name)
    assert cloud.info.process is not None
    if when == "first-qemu":
        wait_for("a first QEMU", lambda: cloud.qemu_pids(), 60, every=0.05)
    cloud.info.process.kill()  # kill -9, mid-boot
    cloud.info.process.wait(30)
    time.sleep(2)  # a QEMU being started finishes starting by itself
    qemu_dir = cloud.state / "run" / "qemu"
    found = {d.name: cloud.qemu_pids(d.name) for d in qemu_dir.iterdir()} if qemu_dir.is_dir() else {}
    running = {sid: pids[0] for sid, pids in found.items() if pids}
    if when == "first-qemu":
        assert running, "no guest had started"

    cloud.restart()
    servers = {s["ID"]: s["Name"] for s in cloud.js("server", "list", "--name", f"^{name}")}
    assert len(servers) == count and set(running) <= set(servers)

    def settled(sid: str) -> bool:
        return cloud.server(sid)["status"] in ("ACTIVE", "ERROR")

    for sid in servers:
        wait_for(f"{sid} settled", lambda: settled(sid), 180)  # noqa: B023
    states = {sid: cloud.server(sid) for sid in servers}
    for sid, srv in states.items():
        if srv["status"] == "ERROR":  # a failed boot says why and keeps no guest
            assert srv.get("fault", {}).get("message"), srv
            assert cloud.qemu_pids(sid) == []
        else:
            assert srv["OS-EXT-STS:vm_state"] == "active" and srv["OS-EXT-STS:task_state"] is None
    for sid, pid in running.items():
        if states[sid]["status"] == "ACTIVE":  # kept running through the restart: the same QEMU
            assert cloud.qemu_pids(sid) == [pid], (sid, pid, cloud.qemu_pids(sid))
    active = [sid for sid, srv in states.items() if srv["status"] == "ACTIVE"]
    # no QEMU but the ACTIVE servers' own, one each (none started twice, none stray)
    qemu_dir = cloud.state / "run" / "qemu"
    assert {d.name for d in qemu_dir.iterdir() if cloud.qemu_pids(d.name)} == set(active)
    assert len(cloud.qemu_pids()) == len(active)
    for sid in active:  # a guest that was adopted answers on its port's address
        try:
            assert cloud.ssh(cloud.router_ns(), fixed_ip(port_of(cloud, sid)), "hostname").strip()
        except AssertionError as exc:  # say what the guest said (metadata, key) on its console
            log = cloud.os("console", "log", "show", "--lines", "30", sid).stdout
            served = [line for f in sorted(cloud.state.parent.glob("onestack-*.log"))
                      for line in f.read_text(errors="replace").splitlines() if "metadata" in line]
            raise AssertionError(f"{exc}\n{sid}'s console:\n{log}\nthe cloud's metadata log:\n"
                                 + "\n".join(served[-40:])) from None
    ports = {sid: cloud.js("port", "list", "--device-id", sid) for sid in servers}
    print(f"\nafter kill -9 and restart: {sorted(s['status'] for s in states.values())}, "
          f"{len(running)} guest(s) had started and ran on")

    cloud.os("server", "delete", "--wait", *servers)
    for sid in servers:
        for port in ports[sid]:
            assert_gone(cloud, sid, port)
        assert cloud.js("port", "list", "--device-id", sid) == []
    assert cloud.qemu_pids() == []
    assert [p.name for p in (cloud.state / "instances").iterdir()] in ([], ["_base"])


def test_openstacksdk_create_server_with_auto_ip_and_ssh(cloud: Cloud) -> None:
    """openstacksdk as a user writes it: the cloud layer's create_server with
    auto_ip (a floating IP from the external network), then the proxy's
    wait_for_server; SSH through the address it picked."""
    import openstack.config
    import openstack.connection

    region = openstack.config.OpenStackConfig(config_files=[str(cloud.info.clouds_yaml)]).get_one(
        cloud="onestack")
    conn = openstack.connection.Connection(config=region)
    server = conn.create_server("sdk", image="onestack-test-guest", flavor="m1.nano", network="private",
                                key_name="k", auto_ip=True, wait=True, timeout=180)
    try:
        assert conn.compute.wait_for_server(conn.compute.get_server(server.id), wait=60).status == "ACTIVE"
        public = server.public_v4 or conn.get_server_public_ip(server)
        assert public and public.startswith("172.24.4."), server.addresses
        assert cloud.ssh(cloud.layout.external_ns, public, "hostname").strip() == "sdk"
    finally:
        conn.delete_server(server.id, wait=True, delete_ips=True, timeout=120)
    assert conn.compute.find_server("sdk") is None
    assert cloud.qemu_pids(server.id) == []
