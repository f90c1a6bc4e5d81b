"""Security of the data plane through a real ``onestack up`` (root): what the
agent reads from the database and gives the firewall. Namespaces of this test
stand in for instances (``test_network_dataplane.Vm``):

* IPv6 router advertisements reach an instance only from its network's routers
  (the router's radvd, the DHCP port's dnsmasq): a rogue RA from a stand-in
  instance with port security off does not reach the other one, which still
  gets its SLAAC address and its default route from the router;
* a remote security group's members include their ports' allowed address pairs:
  a stand-in sending from its allowed pair address reaches a port whose group
  admits the remote group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.host import netns
from onestack.network.agent.secgroups import link_local
from tests.e2e.fwlab import Vm as LabVm
from tests.e2e.test_network_dataplane import Cloud, Vm, module_cloud, nl, ping, wait_for

pytestmark = pytest.mark.e2e
CIDR, V6_CIDR = "10.91.0.0/24", "fd00:91::/64"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from module_cloud(tmp_path_factory, "dpsec")


@pytest.fixture
def made(cloud: Cloud) -> Iterator[dict[str, Any]]:
    """What a test makes, removed afterwards (also on failure): stand-ins first."""
    things: dict[str, Any] = {"vms": [], "undo": []}
    try:
        yield things
    finally:
        for vm in things["vms"]:
            vm.close()
        for undo in reversed(things["undo"]):
            undo()


def _network(cloud: Cloud, made: dict[str, Any]) -> tuple[Any, Any]:
    net = cloud.net.create_network(name=f"sec-{uuid.uuid4().hex[:6]}")

    def drop() -> None:
        for port in cloud.net.ports(network_id=net.id):
            if port.device_owner not in ("network:dhcp", "network:router_interface"):
                cloud.net.delete_port(port.id)
        cloud.net.delete_network(net.id)

    made["undo"].append(drop)
    subnet = cloud.net.create_subnet(network_id=net.id, ip_version=4, cidr=CIDR,
                                     dns_nameservers=[], host_routes=[])
    return net, subnet


def _send_ra(vm: Vm, mac: str, prefix: str) -> None:
    """A router advertisement (default router, ``prefix`` for SLAAC) from the stand-in
    (once its link-local address has passed duplicate address detection)."""
    def send() -> bool:
        try:
            LabVm("rogue", vm.ns, vm.port.id, mac, "", "").send_router_advertisement(prefix)
        except OSError:
            return False
        return True

    wait_for("the rogue's link-local address", send, 10)


def _addresses(vm: Vm) -> list[str]:
    return nl(vm.ns, lambda n: n.addresses("eth0"))


def test_router_advertisements_only_from_the_networks_routers(cloud: Cloud, made: dict[str, Any]) -> None:
    net, _subnet = _network(cloud, made)
    v6 = cloud.net.create_subnet(network_id=net.id, ip_version=6, cidr=V6_CIDR,
                                 ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    router = cloud.net.create_router(name=f"sec-{uuid.uuid4().hex[:6]}")
    cloud.net.add_interface_to_router(router, subnet_id=v6.id)

    def drop_router() -> None:
        cloud.net.remove_interface_from_router(router, subnet_id=v6.id)
        cloud.net.delete_router(router.id)

    made["undo"].append(drop_router)
    gateway = [p for p in cloud.net.ports(device_id=router.id)][0]
    victim_port = cloud.net.create_port(network_id=net.id)
    rogue_port = cloud.net.create_port(network_id=net.id, port_security_enabled=False)
    victim, rogue = Vm(cloud, victim_port, net.mtu), Vm(cloud, rogue_port, net.mtu)
    made["vms"] += [victim, rogue]
    wait_for("the ports ACTIVE", lambda: all(
        cloud.port_status(p.id) == "ACTIVE" for p in (victim_port, rogue_port)))
    slaac = [f["ip_address"] for f in cloud.net.get_port(victim_port.id).fixed_ips
             if f["subnet_id"] == v6.id][0]
    # the rogue's RAs: a prefix and itself as the default router; the victim asks
    # for routers (RS) meanwhile, so the router's and dnsmasq's answers come too
    nl(victim.ns, lambda n: (n.set_down("eth0"), n.set_up("eth0")))
    for _ in range(3):
        _send_ra(rogue, rogue_port.mac_address, "fd77::/64")
    wait_for("the SLAAC address from the router's network", lambda: any(
        a.startswith(f"{slaac}/64") for a in _addresses(victim)), 30)
    routes = wait_for("the default route through the router", lambda: (lambda out: out if (
        f"via {link_local(gateway.mac_address)}" in out) else "")(netns.run(
            victim.ns, ["busybox", "ip", "-6", "route", "show", "default"]).stdout), 30)
    _send_ra(rogue, rogue_port.mac_address, "fd77::/64")
    assert not [a for a in _addresses(victim) if a.startswith("fd77:")]
    assert f"via {link_local(rogue_port.mac_address)}" not in routes, routes


def test_remote_group_members_include_allowed_address_pairs(cloud: Cloud, made: dict[str, Any],
                                                            tmp_path: Path) -> None:
    net, _subnet = _network(cloud, made)
    clients = cloud.net.create_security_group(name=f"clients-{uuid.uuid4().hex[:6]}")
    made["undo"].insert(0, lambda: cloud.net.delete_security_group(clients.id))
    servers = cloud.net.create_security_group(name=f"servers-{uuid.uuid4().hex[:6]}")
    made["undo"].insert(0, lambda: cloud.net.delete_security_group(servers.id))
    cloud.net.create_security_group_rule(security_group_id=servers.id, direction="ingress",
                                         protocol="icmp", ethertype="IPv4", remote_group_id=clients.id)
    pair = "10.91.0.200"
    client_port = cloud.net.create_port(network_id=net.id, security_group_ids=[clients.id],
                                        allowed_address_pairs=[{"ip_address": pair}])
    other_port = cloud.net.create_port(network_id=net.id)  # the default group: not a client
    server_port = cloud.net.create_port(network_id=net.id, security_group_ids=[servers.id])
    client, other, server = (Vm(cloud, p, net.mtu) for p in (client_port, other_port, server_port))
    made["vms"] += [client, other, server]
    for vm in (client, other, server):
        vm.dhcp(tmp_path)
    nl(client.ns, lambda n: n.ensure_address("eth0", f"{pair}/24"))
    # the client's own address and its pair are members of "clients": both reach the server
    wait_for("the client's ping", lambda: ping(client.ns, server.ip), 10)
    assert wait_for("the ping from the pair address", lambda: ping(client.ns, server.ip, source=pair), 10)
    assert not ping(other.ns, server.ip)  # not a member
    # the pair removed: its address is no member any more (nor may the client send from it)
    cloud.net.update_port(client_port.id, allowed_address_pairs=[])
    wait_for("the pair gone", lambda: not ping(client.ns, server.ip, source=pair), 10)
    assert ping(client.ns, server.ip)
