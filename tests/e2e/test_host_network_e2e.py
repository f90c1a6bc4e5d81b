"""The host-network mode end to end (root, QEMU): ``onestack up`` without
``--no-host-network``, as on DevStack, gives the host itself a way into
``public`` - a veth from the data plane into the host's namespace holding the
subnet's gateway - so that plain ``ssh`` and ``ping`` from the host reach a
guest's floating IP.

So that it runs beside developers' clouds (172.24.4.0/24) and the other test
clouds (which use ``--no-host-network``), its ``public`` is a /24 of
172.24.0.0/16 that nothing on this host holds (``[network] public_cidr`` /
``public_gateway``). A second cloud asking for the same range is refused with
a clear error before it makes anything. After the cloud is stopped and its
data plane removed, the host has no veth, address, route or nftables table of
it left. One guest is booted (about 3 host CPU-seconds under TCG).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.guest import boot_files, image_path
from onestack.host import links, netns, nft, procs
from onestack.network.agent.cleanup import remove_all
from onestack.network.agent.external import host_table
from onestack.network.agent.layout import Layout, cloud_prefix
from tests.conftest import CloudInfo, start_cloud, stop_cloud
from tests.e2e.conftest import e2e_skip_reason

pytestmark = pytest.mark.e2e

OPENSTACK = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "openstack")
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]
# Ranges no other test or script of this checkout uses (scripts/conformance takes
# 172.24.200-249; developers' clouds 172.24.4.0/24).
CANDIDATES = range(150, 200)


def host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of every address and route of the host's own namespace."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    with links.Netlink() as nl:
        for link in nl.links():
            out += [ipaddress.ip_interface(c).network for c in nl.addresses(link.name)]
        for route in nl.routes(family=4):
            if route.dst != "default":
                out.append(ipaddress.ip_network(route.dst, strict=False))
    return out


def free_range() -> ipaddress.IPv4Network:
    taken = host_networks()
    for n in CANDIDATES:
        candidate = ipaddress.IPv4Network(f"172.24.{n}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    pytest.skip("no free /24 in 172.24.150.0-172.24.199.0 on this host")


def env_for(public: ipaddress.IPv4Network) -> dict[str, str]:
    return {"ONESTACK_NETWORK_DATAPLANE": "on", "ONESTACK_NETWORK_HOST_NETWORK": "1",
            "ONESTACK_NETWORK_PUBLIC_CIDR": str(public),
            "ONESTACK_NETWORK_PUBLIC_GATEWAY": str(public.network_address + 1),
            "ONESTACK_COMPUTE_DRIVER": "qemu", "ONESTACK_COMPUTE_SHUTDOWN_TIMEOUT": "20"}


def in_range(public: ipaddress.IPv4Network) -> list[str]:
    """What of the host's namespace is in ``public``: addresses and routes."""
    with links.Netlink() as nl:
        found = [f"{link.name} {c}" for link in nl.links() for c in nl.addresses(link.name)
                 if ipaddress.ip_interface(c).network.overlaps(public)]
        found += [f"route {r.dst} dev {r.dev}" for r in nl.routes(family=4)
                  if r.dst != "default" and ipaddress.ip_network(r.dst, strict=False).overlaps(public)]
    return found


def own_links(layout: Layout) -> list[str]:
    with links.Netlink() as nl:
        return [lk.name for lk in nl.links() if lk.name.startswith(layout.prefix + "-")]


def has_host_table(layout: Layout) -> bool:
    return ("inet", host_table(layout)) in nft.list_tables(None)


class Cloud:
    def __init__(self, state: Path, public: ipaddress.IPv4Network) -> None:
        self.state = state
        self.public = public
        self.layout = Layout(cloud_prefix(state))
        self.info: CloudInfo = start_cloud(state, env_for(public))
        self.key = state.parent / "k.pem"

    def os(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([OPENSTACK, "--os-cloud", "onestack", *args], env=self.info.env(),
                             capture_output=True, text=True, timeout=180)
        if check:
            assert res.returncode == 0, f"openstack {' '.join(args)}: {res.stderr}"
        return res

    def js(self, *args: str) -> Any:
        return json.loads(self.os(*args, "-f", "json").stdout)


@pytest.fixture(scope="module")
def cloud(guest_image: Path) -> Iterator[Cloud]:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    top = Path(tempfile.mkdtemp(prefix="osh-", dir="/tmp"))  # short: QEMU's socket paths
    state = top / "s"
    target = image_path(state)
    target.parent.mkdir(parents=True)
    for src in (guest_image, *boot_files(guest_image)):  # the cloud registers them at start
        shutil.copyfile(src, target.parent / (target.stem + src.suffix))
    public = free_range()
    c = None
    try:
        c = Cloud(state, public)
        yield c
    finally:
        if c is not None:
            for sid in c.os("server", "list", "-f", "value", "-c", "ID", check=False).stdout.split():
                c.os("server", "delete", "--wait", sid, check=False)
            stop_cloud(c.info)
        left = procs.find(str(state / "run" / "qemu"))
        for pid in left:
            procs.terminate(pid, str(state))
        remove_all(state)
        shutil.rmtree(top, ignore_errors=True)
        layout = Layout(cloud_prefix(state))
        # after the cloud is gone: nothing of it on the host
        assert not left, f"QEMU processes left after the servers were deleted: {left}"
        assert own_links(layout) == []
        assert in_range(public) == []
        assert not has_host_table(layout)
        assert not netns.names(layout.prefix)


def test_host_reaches_a_floating_ip_and_a_second_cloud_cannot_take_the_range(
        cloud: Cloud, tmp_path: Path) -> None:
    gateway = str(cloud.public.network_address + 1)
    public = cloud.js("network", "show", "public")
    assert public["router:external"] is True
    subnet = cloud.js("subnet", "show", public["subnets"][0])
    assert (subnet["cidr"], subnet["gateway_ip"]) == (str(cloud.public), gateway)
    # the host's end of the veth into public holds its gateway, and the host
    # forwards nothing from or to it (its uplink stays out of the data plane's reach)
    def veth_holds_gateway() -> list[str]:
        return in_range(cloud.public)

    deadline = time.monotonic() + 60
    while not veth_holds_gateway() and time.monotonic() < deadline:
        time.sleep(0.5)
    held = veth_holds_gateway()
    assert any(h.startswith(cloud.layout.prefix + "-") and h.endswith(f" {gateway}/24") for h in held), held
    assert has_host_table(cloud.layout)

    # a second cloud asking for the same range: a clear error, nothing made
    second_state = tmp_path / "second" / "s"
    second_state.mkdir(parents=True)
    try:
        with pytest.raises(RuntimeError) as err:
            other = start_cloud(second_state, env_for(cloud.public))
            stop_cloud(other)  # (only if it wrongly started)
        assert f"{cloud.public} is already on this host's" in str(err.value)
        assert "--no-host-network" in str(err.value)
        assert own_links(Layout(cloud_prefix(second_state))) == []
    finally:
        remove_all(second_state)

    # a guest with a floating IP: ping and ssh from the host itself, no namespace
    cloud.os("security", "group", "rule", "create", "default", "--protocol", "tcp",
             "--dst-port", "22", "--remote-ip", "0.0.0.0/0")
    cloud.os("security", "group", "rule", "create", "default", "--protocol", "icmp",
             "--remote-ip", "0.0.0.0/0")
    cloud.key.write_text(cloud.os("keypair", "create", "k").stdout)
    cloud.key.chmod(0o600)
    cloud.os("server", "create", "--image", "onestack-test-guest", "--flavor", "m1.nano",
             "--network", "private", "--key-name", "k", "--wait", "hvm")
    fip = cloud.js("floating", "ip", "create", "public")["floating_ip_address"]
    assert ipaddress.ip_address(fip) in cloud.public
    cloud.os("server", "add", "floating", "ip", "hvm", fip)
    argv = ["ssh", "-i", str(cloud.key), *SSH_OPTS, f"cirros@{fip}", "hostname"]
    deadline = time.monotonic() + 120
    while True:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "hvm"
    ping = subprocess.run(["ping", "-c", "1", "-W", "5", fip], capture_output=True, text=True,
                          timeout=30)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    cloud.os("server", "delete", "--wait", "hvm")
