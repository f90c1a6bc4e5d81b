"""What the firewall is given, read from the real API's database: remote group
members with their allowed address pairs, and who may send each port router
advertisements (its network's routers and DHCP port)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from onestack.common.models import Task
from onestack.host.fake import FakeHost
from onestack.network.agent import firewall, notifier, reader
from onestack.network.agent.runner import DataPlane
from onestack.network.agent.states import firewall_ports
from tests.api._network import N, ok
from tests.api.conftest import Api, make_api


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Api, DataPlane]]:
    for api in make_api(tmp_path / "state"):
        net = api.cloud.services["network"]
        dp = DataPlane(net, FakeHost(), serve_metadata=False)
        net.notifier = notifier.TaskNotifier(api.cloud)
        net.vif_netns = dp.layout.root_ns
        yield api, dp


def read(api: Api) -> reader.FirewallInfo:
    with api.cloud.services["network"].db.read() as s:
        return reader.firewall(s)


def test_remote_group_members_include_allowed_address_pairs(agent: tuple[Api, DataPlane]) -> None:
    api, dp = agent
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.7.0.0/24"}}), 201)
    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": "g"}}), 201)
    gid = group["security_group"]["id"]
    a = ok(api.post(f"{N}/ports", json={"port": {
        "network_id": net["id"], "security_groups": [gid],
        "allowed_address_pairs": [{"ip_address": "10.7.0.100"},
                                  {"ip_address": "10.9.0.0/24", "mac_address": "fa:16:3e:12:34:56"}]}}),
           201)["port"]
    b = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"], "security_groups": [gid]}}),
           201)["port"]
    info = read(api)
    a_ip, b_ip = a["fixed_ips"][0]["ip_address"], b["fixed_ips"][0]["ip_address"]
    assert sorted(info.members[gid]) == sorted([a_ip, "10.7.0.100", "10.9.0.0/24", b_ip])
    # and what the firewall gets: the group's sets hold the pairs
    _ports, members = firewall_ports(firewall, dp.layout, info)
    v4, _v6 = firewall.split_addresses(members[gid])
    assert {"prefix": {"addr": "10.9.0.0", "len": 24}} in v4 and "10.7.0.100" in v4
    # a pair removed: no longer a member
    ok(api.put(f"{N}/ports/{a['id']}", json={"port": {"allowed_address_pairs": []}}))
    assert sorted(read(api).members[gid]) == sorted([a_ip, b_ip])


def test_router_advertisements_allowed_from_the_gateway_port_and_dhcp_port(
        agent: tuple[Api, DataPlane]) -> None:
    api, dp = agent
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "v6"}}), 201)["network"]
    other = ok(api.post(f"{N}/networks", json={"network": {"name": "other"}}), 201)["network"]
    sub6 = ok(api.post(f"{N}/subnets", json={"subnet": {
        "network_id": net["id"], "ip_version": 6, "cidr": "fd07::/64",
        "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}), 201)["subnet"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": other["id"], "ip_version": 6,
                                                  "cidr": "fd08::/64", "gateway_ip": "fe80::1"}}), 201)
    vm = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    vm2 = ok(api.post(f"{N}/ports", json={"port": {"network_id": other["id"]}}), 201)["port"]
    # a port holding another address is no router of the network
    ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova"}}), 201)
    by_id = {p.id: p for p in read(api).ports}
    assert by_id[vm["id"]].ra_sources == ()  # no router, no DHCP port yet
    assert by_id[vm2["id"]].ra_sources == ("fe80::1",)  # a router outside the cloud
    router = ok(api.post(f"{N}/routers", json={"router": {"name": "r"}}), 201)["router"]
    ok(api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": sub6["id"]}))
    asyncio.run(dp.apply_network(net["id"]))  # makes the DHCP port
    gw = ok(api.get(f"{N}/ports?device_id={router['id']}"))["ports"][0]
    assert gw["fixed_ips"][0]["ip_address"] == sub6["gateway_ip"]
    dhcp = ok(api.get(f"{N}/ports?network_id={net['id']}&device_owner=network:dhcp"))["ports"][0]
    by_id = {p.id: p for p in read(api).ports}
    assert by_id[vm["id"]].ra_sources == tuple(sorted(
        [firewall.link_local(gw["mac_address"]), firewall.link_local(dhcp["mac_address"])]))
    assert by_id[vm2["id"]].ra_sources == ("fe80::1",)
    ports, _members = firewall_ports(firewall, dp.layout, read(api))
    assert {p.port_id: p.ra_sources for p in ports}[vm["id"]] == by_id[vm["id"]].ra_sources


def test_a_subnet_update_applies_the_firewall_again(agent: tuple[Api, DataPlane]) -> None:
    """Its gateway_ip decides who may send router advertisements."""
    api, _dp = agent
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "gw"}}), 201)["network"]
    sub = ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 6,
                                                        "cidr": "fd09::/64", "allocation_pools": [{"start": "fd09::10", "end": "fd09::ff"}]}}), 201)["subnet"]
    with api.cloud.db.write() as s:
        for t in s.scalars(select(Task)):
            s.delete(t)
    ok(api.put(f"{N}/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "fd09::fff"}}))
    with api.cloud.db.read() as s:
        kinds = {t.kind for t in s.scalars(select(Task).where(Task.state == "queued"))}
    assert notifier.FIREWALL in kinds
