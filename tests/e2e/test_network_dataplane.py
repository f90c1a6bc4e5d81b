"""The Networking data plane, end to end, before any VM exists (root).

A real ``onestack up`` with the data plane on and no host access (its
``<prefix>-ext`` namespace stands in for the host on ``public``), on a state
directory of its own. Network namespaces of this test (``OWN_PREFIX``) stand
in for instances: a veth whose end on the network's bridge is the port's
device (``tap<port>``) and whose other end carries the port's MAC. They get
their addresses by DHCP and SLAAC from the network's dnsmasq, ping each
other, reach the metadata address; security groups, routers and floating
IPs are checked when their modules (``l3``, ``firewall``) are installed.
After a restart the data plane is reconciled; deleting the resources leaves
nothing. The cloud's whole data plane is removed at the end, also on failure.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from onestack.host import dnsmasq, links, netns
from onestack.network.agent.cleanup import remove_all
from onestack.network.agent.layout import Layout, cloud_prefix
from tests.conftest import CloudInfo, start_cloud, stop_cloud
from tests.e2e import computecloud, testnet
from tests.e2e.conftest import e2e_skip_reason

pytestmark = pytest.mark.e2e
T = TypeVar("T")

ENV = {"ONESTACK_NETWORK_DATAPLANE": "on", "ONESTACK_NETWORK_HOST_NETWORK": "0",
       "ONESTACK_NETWORK_AGENT_RESYNC_INTERVAL": "10", "ONESTACK_HOSTS_REPORT_INTERVAL": "2"}
CIDR, GATEWAY = "10.90.0.0/24", "10.90.0.1"
V6_CIDR = "fd00:90::/64"
# udhcpc's script: the address it was given on the interface, every variable in a file
DHCP_SCRIPT = ('#!/bin/sh\nif [ "$1" = bound ]; then busybox ip addr add "$ip/$mask" dev "$interface"; '
               'env > "$(dirname "$0")/lease-$$.env"; fi\nexit 0\n')


def has(module: str) -> bool:
    return importlib.util.find_spec(f"onestack.network.agent.{module}") is not None


def nl(ns: str | None, fn: Callable[[links.Netlink], T]) -> T:
    def work() -> T:
        with links.Netlink() as link:
            return fn(link)

    return netns.call(ns, work)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``computecloud.wait_for``, looking every 0.1 s (the data plane answers in ms)."""
    return computecloud.wait_for(what, check, timeout, every=0.1)


def ping(ns: str, ip: str, source: str | None = None) -> bool:
    argv = ["busybox", "ping", "-c", "1", "-W", "1", *(["-I", source] if source else []), ip]
    return netns.run(ns, argv).returncode == 0


class Cloud:
    def __init__(self, info: CloudInfo) -> None:
        self.info = info
        self.layout = Layout(cloud_prefix(info.state_dir))
        self.conn = self._connect()

    def _connect(self) -> Any:
        import openstack.config
        import openstack.connection

        region = openstack.config.OpenStackConfig(config_files=[str(self.info.clouds_yaml)]).get_one(
            cloud="onestack-admin")
        return openstack.connection.Connection(config=region)

    def stop(self) -> None:
        stop_cloud(self.info)

    def start(self) -> None:
        self.info = start_cloud(self.info.state_dir, ENV)
        self.conn = self._connect()

    @property
    def net(self) -> Any:
        return self.conn.network

    def port_status(self, port_id: str) -> str:
        return str(self.net.get_port(port_id).status)

    def root_links(self) -> dict[str, links.Link]:
        return {lk.name: lk for lk in nl(self.layout.root_ns, lambda n: n.links())}

    def dnsmasq(self) -> dict[str, int]:
        return dnsmasq.Dnsmasq(self.info.state_dir / "run" / "dnsmasq").running()

    def spaces(self) -> list[str]:
        return [n for n in netns.names(self.layout.prefix) if self.layout.owns(n)]


class Vm:
    """A namespace standing in for an instance on a port."""

    def __init__(self, cloud: Cloud, port: Any, mtu: int) -> None:
        self.ns = f"{testnet.OWN_PREFIX}vm-{port.id[:8]}"
        self.port = port
        layout = cloud.layout
        # as Compute does: the network's bridge first (made moments after the network)
        wait_for("the network's bridge", lambda: layout.bridge(port.network_id) in cloud.root_links())
        netns.ensure(self.ns)
        nl(layout.root_ns, lambda n: n.ensure_veth(layout.tap(port.id), "eth0", peer_netns=self.ns,
                                                   mtu=mtu, master=layout.bridge(port.network_id)))

        def settle(n: links.Netlink) -> None:
            n.set_mac("eth0", port.mac_address)
            n.set_up("eth0")

        nl(self.ns, settle)

    @property
    def ip(self) -> str:
        return str(self.port.fixed_ips[0]["ip_address"])

    def dhcp(self, workdir: Path) -> dict[str, str]:
        script = workdir / "udhcpc.sh"
        script.write_text(DHCP_SCRIPT)
        script.chmod(0o755)
        for old in workdir.glob("lease-*.env"):
            old.unlink()
        res = netns.run(self.ns, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1",
                                  "-O", "staticroutes", "-O", "mtu", "-O", "dns", "-s", str(script)],
                        timeout=30)
        assert res.returncode == 0, res.stderr
        env = {}
        for f in workdir.glob("lease-*.env"):
            for line in f.read_text().splitlines():
                key, _sep, value = line.partition("=")
                env[key] = value
        return env

    def close(self) -> None:
        netns.delete(self.ns)


def http_get(ns: str, host: str, path: str, port: int = 80) -> tuple[int, bytes]:
    def get() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    return netns.call(ns, get)


def module_cloud(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Cloud]:
    """A test module's cloud with its data plane on; everything it made is
    removed after (asserted)."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp(name) / "state"
    c = Cloud(start_cloud(state, ENV))
    try:
        yield c
    finally:
        c.stop()
        remove_all(state)
        assert not netns.names(cloud_prefix(state)), "namespaces left after removal"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from module_cloud(tmp_path_factory, "dataplane")


@pytest.fixture
def network(cloud: Cloud) -> Iterator[dict[str, Any]]:
    net = cloud.net.create_network(name=f"dp-{uuid.uuid4().hex[:6]}")
    subnet = cloud.net.create_subnet(network_id=net.id, ip_version=4, cidr=CIDR,
                                     dns_nameservers=[], host_routes=[])
    vms: list[Vm] = []
    made: dict[str, Any] = {"network": net, "subnet": subnet, "vms": vms, "before": [], "after": []}
    try:
        yield made
    finally:
        for vm in vms:
            vm.close()
        for extra in made["before"]:
            extra()
        for port in cloud.net.ports(network_id=net.id):
            if port.device_owner != "network:dhcp":
                cloud.net.delete_port(port.id)
        for extra in made["after"]:
            extra()
        cloud.net.delete_network(net.id)


def test_dhcp_ping_metadata_and_slaac(cloud: Cloud, network: dict[str, Any], tmp_path: Path) -> None:
    net = network["network"]
    layout = cloud.layout
    # the bridge and the DHCP server follow the API
    wait_for("the bridge", lambda: layout.bridge(net.id) in cloud.root_links())
    wait_for("dnsmasq", lambda: net.id in cloud.dnsmasq())
    dhcp_port = wait_for("the DHCP port", lambda: [p for p in cloud.net.ports(network_id=net.id)
                                                   if p.device_owner == "network:dhcp"])[0]
    assert dhcp_port.fixed_ips[0]["ip_address"] == "10.90.0.2"
    wait_for("the DHCP port ACTIVE", lambda: cloud.port_status(dhcp_port.id) == "ACTIVE")
    ports = [cloud.net.create_port(network_id=net.id) for _ in range(2)]
    time.sleep(0.5)  # the network's own task has run: nothing more is queued for it
    assert all(cloud.port_status(p.id) == "DOWN" for p in ports)
    plugged = time.monotonic()
    vm1, vm2 = (Vm(cloud, p, net.mtu) for p in ports)
    network["vms"] += [vm1, vm2]
    # plugged: ACTIVE at once (the agent sees the link appear; its full resync is 10 s away)
    wait_for("the ports ACTIVE", lambda: all(cloud.port_status(p.id) == "ACTIVE" for p in ports))
    assert time.monotonic() - plugged < 3.0

    lease = vm1.dhcp(tmp_path)
    assert lease["ip"] == vm1.ip and lease["router"] == GATEWAY and lease["mtu"] == str(net.mtu)
    assert lease["dns"].split() == ["10.90.0.2"]
    # an isolated network: the metadata address is reached through the DHCP server
    assert lease["staticroutes"].split() == ["169.254.169.254/32", "10.90.0.2", "0.0.0.0/0", GATEWAY]
    assert vm2.dhcp(tmp_path)["ip"] == vm2.ip
    assert ping(vm1.ns, vm2.ip) and ping(vm2.ns, vm1.ip)

    nl(vm1.ns, lambda n: n.ensure_route("169.254.169.254/32", gateway="10.90.0.2"))
    # no Compute in this cloud: the proxy answers, and says it knows no instance there
    status, body = http_get(vm1.ns, "169.254.169.254", "/latest/meta-data/")
    assert (status, body) == (404, b"404 Not Found\n\nThe resource could not be found.\n\n   ")

    # DNS: the network's own names, nothing else
    found = netns.run(vm1.ns, ["busybox", "nslookup", f"host-{vm2.ip.replace('.', '-')}", "10.90.0.2"])
    assert vm2.ip in found.stdout, found.stdout + found.stderr

    # IPv6 by SLAAC: a subnet added later gives each port its EUI-64 address
    v6 = cloud.net.create_subnet(network_id=net.id, ip_version=6, cidr=V6_CIDR,
                                 ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    port1 = cloud.net.get_port(vm1.port.id)
    v6_address = [f["ip_address"] for f in port1.fixed_ips if f["subnet_id"] == v6.id][0]
    wait_for("dnsmasq with RAs", lambda: "enable-ra" in (
        cloud.info.state_dir / "run" / "dnsmasq" / net.id / "dnsmasq.conf").read_text())

    def solicit(n: links.Netlink) -> None:
        n.set_down("eth0")
        n.set_up("eth0")

    nl(vm1.ns, solicit)
    wait_for("the SLAAC address", lambda: any(
        a.startswith(v6_address + "/64") for a in nl(vm1.ns, lambda n: n.addresses("eth0"))), 30)


def test_metadata_answered_by_compute(cloud: Cloud, network: dict[str, Any], tmp_path: Path) -> None:
    """A server (Compute's in-memory driver) on a port; a namespace standing in
    for it on that port asks 169.254.169.254: the proxy finds the instance by
    network and address and Compute answers with its metadata."""
    net = network["network"]
    conn = cloud.conn
    image = conn.image.create_image(name=f"dp-{uuid.uuid4().hex[:6]}", data=b"\0" * 4096,
                                    disk_format="raw", container_format="bare")
    port = cloud.net.create_port(network_id=net.id)
    server = conn.compute.create_server(name="dp-vm", image_id=image.id,
                                        flavor_id=conn.compute.find_flavor("m1.nano").id,
                                        networks=[{"port": port.id}])

    def drop_server() -> None:
        conn.compute.delete_server(server.id)
        conn.compute.wait_for_delete(server, wait=60, interval=0.5)
        conn.image.delete_image(image.id)

    network["before"].append(drop_server)
    conn.compute.wait_for_server(server, wait=60, interval=0.5)
    bound = cloud.net.get_port(port.id)
    assert bound.device_id == server.id and bound.binding_vif_details["netns"] == cloud.layout.root_ns
    vm = Vm(cloud, bound, net.mtu)
    network["vms"].append(vm)
    vm.dhcp(tmp_path)
    nl(vm.ns, lambda n: n.ensure_route("169.254.169.254/32", gateway="10.90.0.2"))
    status, body = http_get(vm.ns, "169.254.169.254", "/openstack/latest/meta_data.json")
    assert status == 200, body
    assert json.loads(body)["uuid"] == server.id
    status, body = http_get(vm.ns, "169.254.169.254", "/latest/meta-data/local-ipv4")
    assert (status, body.decode()) == (200, vm.ip)


@pytest.mark.skipif(not has("firewall"), reason="onestack.network.agent.firewall is not installed yet")
def test_security_groups_and_spoofing(cloud: Cloud, network: dict[str, Any], tmp_path: Path) -> None:
    net = network["network"]
    group = cloud.net.create_security_group(name=f"no-icmp-{uuid.uuid4().hex[:6]}")
    network["after"].append(lambda: cloud.net.delete_security_group(group.id))
    open_port = cloud.net.create_port(network_id=net.id)
    closed_port = cloud.net.create_port(network_id=net.id, security_group_ids=[group.id])
    vm1, vm2 = Vm(cloud, open_port, net.mtu), Vm(cloud, closed_port, net.mtu)
    network["vms"] += [vm1, vm2]
    vm1.dhcp(tmp_path)
    vm2.dhcp(tmp_path)
    time.sleep(1.0)
    assert not ping(vm1.ns, vm2.ip)
    cloud.net.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                         protocol="icmp", ethertype="IPv4")
    start = time.monotonic()
    wait_for("the ICMP rule applied", lambda: ping(vm1.ns, vm2.ip), 5)
    assert time.monotonic() - start < 3
    # a spoofed source address is dropped
    nl(vm1.ns, lambda n: n.ensure_address("eth0", "10.90.0.200/24"))
    assert not ping(vm1.ns, vm2.ip, source="10.90.0.200")


@pytest.mark.skipif(not has("l3"), reason="onestack.network.agent.l3 is not installed yet")
def test_router_snat_floating_ip_and_metadata(cloud: Cloud, network: dict[str, Any], tmp_path: Path) -> None:
    net, subnet = network["network"], network["subnet"]
    public = cloud.net.find_network("public")
    router = cloud.net.create_router(name="dp-router", external_gateway_info={"network_id": public.id})
    cloud.net.add_interface_to_router(router, subnet_id=subnet.id)

    def drop_router() -> None:
        for fip in cloud.net.ips(router_id=router.id):
            cloud.net.delete_ip(fip.id)
        cloud.net.remove_interface_from_router(router, subnet_id=subnet.id)
        cloud.net.delete_router(router.id)

    network["before"].append(drop_router)
    interface = [p for p in cloud.net.ports(device_id=router.id)
                 if p.device_owner == "network:router_interface"][0]
    wait_for("the router interface ACTIVE", lambda: cloud.port_status(interface.id) == "ACTIVE")
    # pinging a floating IP takes a rule letting ICMP in, as on Neutron
    group = cloud.net.create_security_group(name=f"icmp-{uuid.uuid4().hex[:6]}")
    network["after"].append(lambda: cloud.net.delete_security_group(group.id))
    cloud.net.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                         protocol="icmp", ethertype="IPv4")
    port = cloud.net.create_port(network_id=net.id, security_group_ids=[group.id])
    vm = Vm(cloud, port, net.mtu)
    network["vms"].append(vm)
    vm.dhcp(tmp_path)
    nl(vm.ns, lambda n: n.ensure_route("default", gateway=GATEWAY))
    ext = cloud.layout.external_ns
    wait_for("SNAT to the external side", lambda: ping(vm.ns, "172.24.4.1"), 10)
    start = time.monotonic()
    fip = cloud.net.create_ip(floating_network_id=public.id, port_id=port.id)
    wait_for("the floating IP reachable", lambda: ping(ext, fip.floating_ip_address), 10)
    print(f"floating IP reachable {time.monotonic() - start:.2f}s after it was made")
    wait_for("the floating IP ACTIVE", lambda: cloud.net.get_ip(fip.id).status == "ACTIVE")
    status, _body = http_get(vm.ns, "169.254.169.254", "/latest/meta-data/")
    assert status == 404  # the router's metadata proxy, no Compute behind it


def test_restart_reconciles(cloud: Cloud, network: dict[str, Any], tmp_path: Path) -> None:
    net = network["network"]
    layout = cloud.layout
    wait_for("dnsmasq", lambda: net.id in cloud.dnsmasq())
    port = cloud.net.create_port(network_id=net.id)
    vm = Vm(cloud, port, net.mtu)
    network["vms"].append(vm)
    wait_for("the port ACTIVE", lambda: cloud.port_status(port.id) == "ACTIVE")
    pid = cloud.dnsmasq()[net.id]
    cloud.stop()
    cloud.start()
    # the data plane outlived the process and is adopted, not made again
    time.sleep(1.0)
    assert cloud.dnsmasq()[net.id] == pid
    cloud.stop()
    # while it is down: a bridge and a DHCP namespace deleted, leftovers made
    nl(layout.root_ns, lambda n: n.delete(layout.bridge(net.id)))
    netns.delete(layout.dhcp_ns(net.id))
    stray_net = str(uuid.uuid4())
    netns.ensure(layout.dhcp_ns(stray_net))
    nl(layout.root_ns, lambda n: n.ensure_bridge(layout.bridge(stray_net)))
    cloud.start()
    wait_for("the bridge back", lambda: layout.bridge(net.id) in cloud.root_links())
    wait_for("the DHCP namespace back", lambda: layout.dhcp_ns(net.id) in cloud.spaces())
    wait_for("dnsmasq back", lambda: net.id in cloud.dnsmasq())
    wait_for("the leftover namespace gone", lambda: layout.dhcp_ns(stray_net) not in cloud.spaces())
    wait_for("the leftover bridge gone", lambda: layout.bridge(stray_net) not in cloud.root_links())
    # the instance's device is put back on its bridge, and it gets its address again
    wait_for("the tap back on the bridge",
             lambda: cloud.root_links()[layout.tap(port.id)].master == layout.bridge(net.id))
    assert vm.dhcp(tmp_path)["ip"] == vm.ip
    assert cloud.port_status(port.id) == "ACTIVE"


def test_agents_alive_through_the_cli(cloud: Cloud) -> None:
    env = cloud.info.env()
    out = subprocess.run([str(Path(sys.executable).parent / "openstack"), "--os-cloud", "onestack-admin",
                          "network", "agent", "list", "-f", "json"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    agents = {a["Binary"]: a for a in json.loads(out.stdout)}
    assert set(agents) == {"neutron-dhcp-agent", "neutron-l3-agent", "neutron-linuxbridge-agent",
                           "neutron-metadata-agent"}
    assert all(a["Alive"] is True for a in agents.values())


def test_deleting_everything_leaves_nothing(cloud: Cloud) -> None:
    net = cloud.net
    router = net.find_router("router1")
    if router is not None:
        for p in list(net.ports(device_id=router.id, device_owner="network:router_interface")):
            net.remove_interface_from_router(router, port_id=p.id)
        net.delete_router(router.id)
    for n in list(net.networks()):
        for p in list(net.ports(network_id=n.id)):
            if p.device_owner != "network:dhcp":
                net.delete_port(p.id)
        net.delete_network(n.id)
    layout = cloud.layout
    wait_for("only the root namespace and the stand-in host left",
             lambda: set(cloud.spaces()) <= {layout.root_ns, layout.external_ns})
    wait_for("no dnsmasq", lambda: not cloud.dnsmasq())
    wait_for("no device in the root namespace", lambda: set(cloud.root_links()) == {"lo"})
    assert set(nl(layout.external_ns, lambda n: [lk.name for lk in n.links()])) == {"lo"}


def test_host_access_to_a_range_already_held_is_refused(tmp_path: Path) -> None:
    """`onestack up` (data plane on, host access) run in a namespace standing in
    for the host, where another device already holds 172.24.4.1: a clear error,
    nothing made."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    host_ns = f"{testnet.OWN_PREFIX}host-{uuid.uuid4().hex[:6]}"
    netns.ensure(host_ns)
    state = tmp_path / "state"
    try:
        def other_cloud(n: links.Netlink) -> None:
            n.ensure_veth("otherpub", "otherpub-p", peer_netns="")
            n.ensure_address("otherpub", "172.24.4.1/24")

        nl(host_ns, other_cloud)
        env = {**os.environ, "ONESTACK_NETWORK_DATAPLANE": "on", "ONESTACK_IDENTITY_PASSWORD_HASH_ROUNDS": "4"}
        done = netns.run(host_ns, [sys.executable, "-m", "onestack.cli", "up", "--port", "18999",
                                   "--state-dir", str(state)], timeout=120, env=env)
        assert done.returncode == 1
        assert ("onestack up: 172.24.4.0/24 is already on this host's otherpub (172.24.4.1/24): another "
                "onestack cloud (or something else) reaches it. Start this cloud with --no-host-network, "
                "or give it another [network] public_cidr / public_gateway.") in done.stderr
        assert not netns.names(cloud_prefix(state))  # nothing was made
    finally:
        netns.delete(host_ns)


def test_host_access_through_a_veth(tmp_path: Path) -> None:
    """With host access (the default as root), `public` is reached from the host
    through a veth holding 172.24.4.1, and the host forwards nothing from or to
    it. Run in a namespace standing in for the host."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    host_ns = f"{testnet.OWN_PREFIX}host-{uuid.uuid4().hex[:6]}"
    netns.ensure(host_ns)
    state = tmp_path / "state"
    prefix = cloud_prefix(state)
    env = {**os.environ, "ONESTACK_NETWORK_DATAPLANE": "on", "ONESTACK_IDENTITY_PASSWORD_HASH_ROUNDS": "4"}
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = netns.popen(host_ns, [sys.executable, "-m", "onestack.cli", "up", "--port", "18998",
                                 "--state-dir", str(state)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def veth() -> list[str]:
            found = nl(host_ns, lambda n: [(lk.name, n.addresses(lk.name)) for lk in n.links()
                                           if lk.name.startswith(prefix + "-")])
            return [name for name, cidrs in found if "172.24.4.1/24" in cidrs]

        try:
            names = wait_for("the host's veth into public", veth, 120)
        except AssertionError:
            raise AssertionError((tmp_path / "up.log").read_text()[-3000:]) from None
        table = netns.run(host_ns, ["nft", "-j", "list", "table", "inet", f"{prefix}_host"])
        assert table.returncode == 0, table.stderr
        rules = [item["rule"] for item in json.loads(table.stdout)["nftables"] if "rule" in item]
        assert [(r["chain"], r["expr"][0]["match"]["left"]["meta"]["key"], r["expr"][0]["match"]["right"],
                 list(r["expr"][1])) for r in rules] == [
            ("forward", "iifname", names[0], ["drop"]), ("forward", "oifname", names[0], ["drop"])]
        assert f"{prefix}-ext" not in netns.names(prefix)  # no stand-in: the host is reached itself
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        remove_all(state)
        netns.delete(host_ns)
    assert not netns.names(prefix)
