"""A real all-in-one cloud with real guests, driven by the real ``openstack`` CLI.

Shared by the Compute end-to-end tests (``test_compute_e2e.py``,
``test_compute_actions_e2e.py``): ``open_cloud`` starts ``onestack up
--no-host-network`` (the data plane on, its ``<prefix>-ext`` namespace standing
in for the host on ``public``; the QEMU driver) on a short private state
directory holding the test guest, opens SSH and ICMP in the ``default`` group
and makes the keypair ``k``; at the end it deletes every server, stops the
cloud, removes its whole data plane and fails if a QEMU was left behind.
What is checked inside a guest is read over SSH with the keypair's private key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from onestack.guest import boot_files, image_path
from onestack.host import links, netns, procs
from onestack.network.agent.cleanup import remove_all
from onestack.network.agent.layout import Layout, cloud_prefix
from tests.conftest import CloudInfo, start_cloud, stop_cloud
from tests.e2e.conftest import e2e_skip_reason

T = TypeVar("T")

ENV = {"ONESTACK_NETWORK_DATAPLANE": "on", "ONESTACK_NETWORK_HOST_NETWORK": "0",
       "ONESTACK_COMPUTE_DRIVER": "qemu", "ONESTACK_COMPUTE_SHUTDOWN_TIMEOUT": "20",
       "ONESTACK_COMPUTE_WAIT_SOFT_REBOOT_SECONDS": "20"}
OPENSTACK = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "openstack")
BANNER = "=== onestack-test-guest"
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Cloud:
    """A running cloud, the CLI as its demo user, and the names of its data plane."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.layout = Layout(cloud_prefix(state))
        self.info: CloudInfo = start_cloud(state, ENV)
        self.key = state.parent / "k.pem"

    def restart(self) -> None:
        self.info = start_cloud(self.state, ENV)

    def os(self, *args: str, check: bool = True, timeout: float = 180,
           as_cloud: str = "onestack") -> subprocess.CompletedProcess[str]:
        """``openstack`` as the demo user (``onestack``), or as ``onestack-admin``."""
        res = subprocess.run([OPENSTACK, "--os-cloud", as_cloud, *args], env=self.info.env(),
                             capture_output=True, text=True, timeout=timeout)
        if check:
            assert res.returncode == 0, f"openstack {' '.join(args)}: {res.stderr}"
        return res

    def js(self, *args: str) -> Any:
        return json.loads(self.os(*args, "-f", "json").stdout)

    def server(self, name: str) -> dict[str, Any]:
        return dict(self.js("server", "show", name))

    def wait_status(self, name: str, status: str, timeout: float = 120) -> dict[str, Any]:
        """The server once its status is ``status`` and no task runs on it."""
        last: dict[str, Any] = {}

        def settled() -> dict[str, Any] | None:
            nonlocal last
            last = self.server(name)
            assert last["status"] != "ERROR" or status == "ERROR", last.get("fault")
            done = last["status"] == status and not last.get("OS-EXT-STS:task_state")
            return last if done else None

        try:
            return wait_for(f"{name} {status}", settled, timeout, every=1.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last.get('status')} {last.get('OS-EXT-STS:task_state')}") from None

    def qemu_pids(self, server_id: str = "") -> list[int]:
        return procs.find(str(self.state / "run" / "qemu" / server_id))

    def root_links(self) -> set[str]:
        def names() -> set[str]:
            with links.Netlink() as nl:
                return {lk.name for lk in nl.links()}

        return netns.call(self.layout.root_ns, names)

    def router_ns(self) -> str:
        return self.layout.router_ns(self.js("router", "show", "router1")["id"])

    def ssh(self, ns: str, address: str, command: str, timeout: float = 60.0) -> str:
        """``command`` run in the guest at ``address``, reached from inside ``ns``;
        retried while the guest is still booting."""
        argv = ["ssh", "-i", str(self.key), *SSH_OPTS, f"root@{address}", command]
        last = ""

        def attempt() -> list[str] | None:  # a list: an empty output is an answer too
            nonlocal last
            res = netns.run(ns, argv, timeout=30)
            last = res.stderr
            return [res.stdout] if res.returncode == 0 else None

        try:
            return wait_for(f"ssh to {address}", attempt, timeout, every=1.0)[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last}") from None


def port_of(cloud: Cloud, server: str) -> dict[str, Any]:
    ports = cloud.js("port", "list", "--server", server, "--long")
    assert len(ports) == 1, ports
    return dict(ports[0])


def fixed_ip(port: dict[str, Any]) -> str:
    return str(port["Fixed IP Addresses"][0]["ip_address"])


def firewall_ruleset(cloud: Cloud) -> str:
    """The cloud's nftables (security groups, anti-spoofing), as ``nft list ruleset`` shows it."""
    return netns.run(cloud.layout.root_ns, ["nft", "list", "ruleset"], timeout=30).stdout


def dhcp_files(cloud: Cloud, name: str) -> str:
    """Every network's dnsmasq file ``name`` (``hosts``: the files of ``hosts.d``,
    ``addn_hosts``: those of ``names.d``, ``leases``), joined."""
    pattern = {"hosts": "hosts.d/*", "addn_hosts": "names.d/*"}.get(name, name)
    return "".join(p.read_text() for p in (cloud.state / "run" / "dnsmasq").glob(f"*/{pattern}"))


def assert_gone(cloud: Cloud, server_id: str, port: dict[str, Any]) -> None:
    """Nothing of a deleted server (and its ``port``, as ``port list`` showed it)
    on the host: no QEMU, no disk or other file, no tap, no element of the
    port in the firewall, no DHCP host entry, and its address free."""
    tap, mac, ip = cloud.layout.tap(port["ID"]), str(port["MAC Address"]), fixed_ip(port)
    assert cloud.qemu_pids(server_id) == []
    assert not (cloud.state / "instances" / server_id).exists()  # disks, record
    assert not (cloud.state / "run" / "qemu" / server_id).exists()  # sockets, pid file, console log
    assert tap not in cloud.root_links()
    assert cloud.js("port", "list", "--device-id", server_id) == []
    assert cloud.js("port", "list", "--fixed-ip", f"ip-address={ip}") == []  # the address is free

    def firewall_forgot() -> bool:
        rules = firewall_ruleset(cloud)
        return tap not in rules and mac not in rules and f"{ip} " not in rules.replace(",", " ")

    def dhcp_forgot() -> bool:
        hosts = dhcp_files(cloud, "hosts")
        return mac not in hosts and ip not in hosts and ip not in dhcp_files(cloud, "addn_hosts").split()

    wait_for(f"port {port['ID']}'s firewall elements removed", firewall_forgot, 30)
    wait_for(f"port {port['ID']}'s DHCP host entry removed", dhcp_forgot, 30)


def has_firewall() -> bool:
    import importlib.util

    return importlib.util.find_spec("onestack.network.agent.firewall") is not None


@contextmanager
def open_cloud(guest_image: Path) -> Iterator[Cloud]:
    # short: QEMU's unix socket paths (<state>/run/qemu/<uuid>/qmp.sock) stay under 108 bytes
    top = Path(tempfile.mkdtemp(prefix="osc-", dir="/tmp"))
    state = top / "s"
    target = image_path(state)
    target.parent.mkdir(parents=True)
    for src in (guest_image, *boot_files(guest_image)):  # the cloud registers them at start
        shutil.copyfile(src, target.parent / (target.stem + src.suffix))
    c = Cloud(state)
    try:
        c.os("security", "group", "rule", "create", "default", "--protocol", "tcp",
             "--dst-port", "22", "--remote-ip", "0.0.0.0/0")
        c.os("security", "group", "rule", "create", "default", "--protocol", "icmp",
             "--remote-ip", "0.0.0.0/0")
        key = c.os("keypair", "create", "k").stdout  # generated: the private key is printed once
        c.key.write_text(key)
        c.key.chmod(0o600)
        yield c
    finally:
        with_servers = c.os("server", "list", "-f", "value", "-c", "ID", check=False).stdout.split()
        for sid in with_servers:
            c.os("server", "delete", "--wait", sid, check=False)
        stop_cloud(c.info)
        left = c.qemu_pids()  # guests outlive onestack on purpose: a test cloud takes them away
        for pid in left:
            procs.terminate(pid, str(state))
        remove_all(state)
        shutil.rmtree(top, ignore_errors=True)
        assert not left, f"QEMU processes left after the servers were deleted: {left}"
        assert not netns.names(cloud_prefix(state)), "namespaces left after removal"


def module_cloud(guest_image: Path) -> Iterator[Cloud]:
    """A test module's cloud (its ``cloud`` fixture yields from this), or the
    module skipped when this machine cannot run the e2e tests."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    with open_cloud(guest_image) as c:
        yield c
