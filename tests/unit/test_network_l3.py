"""The rendering of a router (``onestack.network.agent.l3``): its NAT table,
addresses and routes, from a ``RouterState`` (pure functions, no root)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from onestack.host import nft, radvd
from onestack.host.conntrack import Flow
from onestack.host.errors import HostError
from onestack.host.radvd import Advertised
from onestack.network.agent import l3
from onestack.network.agent.layout import Layout

GW_PORT = "11111111-2222-3333-4444-555555555555"
QG = "qg-11111111-22"
PORT_A = "aaaaaaaa-0000-0000-0000-000000000000"


def state(**kw: object) -> l3.RouterState:
    base = l3.RouterState(
        router_id="r1", admin_state_up=True,
        gateway=l3.RouterPort(GW_PORT, "ext", "fa:16:3e:00:00:01",
                              ("172.24.4.2/24", "2001:db8::2/64")),
        gateway_ip="172.24.4.1", enable_snat=True,
        interfaces=(l3.RouterPort(PORT_A, "net-a", "fa:16:3e:00:00:0a", ("10.0.0.1/26",)),),
        routes=(), floating_ips=(), port_forwardings=())
    return replace(base, **kw)  # type: ignore[arg-type]


def rules(items: list[nft.Json], chain: str) -> list[list[nft.Json]]:
    return [i["rule"]["expr"] for i in items if "rule" in i and i["rule"]["chain"] == chain]


def m(left: nft.Json, right: object, op: str = "==") -> nft.Json:
    return {"match": {"op": op, "left": left, "right": right}}


DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
IIF, OIF = {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}
CT_STATUS = {"ct": {"key": "status"}}
METADATA = [m(IIF, "qr-*"), m(DADDR, "169.254.169.254"),
            m({"payload": {"protocol": "tcp", "field": "dport"}}, 80),
            {"redirect": {"port": 9697}}]


def test_the_device_names_are_the_layouts() -> None:
    assert Layout.router_gateway(GW_PORT) == QG


def test_chains_and_snat_of_a_router_with_a_gateway() -> None:
    items = l3.nat_items(state())
    chains = [i["chain"] for i in items if "chain" in i]
    assert chains == [
        {"name": "prerouting", "type": "nat", "hook": "prerouting", "prio": -100,
         "policy": "accept"},
        {"name": "output", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"},
        {"name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100,
         "policy": "accept"}]
    assert rules(items, "prerouting") == [METADATA]
    assert rules(items, "output") == []
    assert rules(items, "postrouting") == [
        [m(IIF, QG, "!="), m(OIF, QG, "!="), m(CT_STATUS, "dnat", "!"), {"accept": None}],
        [m(OIF, QG), {"snat": {"addr": "172.24.4.2"}}],
        [m(IIF, QG, "!="), m(CT_STATUS, "dnat", "in"), {"snat": {"addr": "172.24.4.2"}}]]


def test_without_a_gateway_only_the_metadata_redirect() -> None:
    items = l3.nat_items(state(gateway=None, gateway_ip=None,
                               floating_ips=(l3.FloatingIp("172.24.4.9", "10.0.0.5"),)))
    assert rules(items, "prerouting") == [METADATA]
    assert rules(items, "postrouting") == [] and rules(items, "output") == []


def test_without_snat_no_gateway_snat_but_floating_ips_still() -> None:
    items = l3.nat_items(state(enable_snat=False,
                               floating_ips=(l3.FloatingIp("172.24.4.9", "10.0.0.5"),)))
    assert rules(items, "postrouting") == [
        [m(IIF, QG, "!="), m(OIF, QG, "!="), m(CT_STATUS, "dnat", "!"), {"accept": None}],
        [m(SADDR, "10.0.0.5"), {"snat": {"addr": "172.24.4.9"}}]]


def test_floating_ips_dnat_in_and_out_snat() -> None:
    fips = (l3.FloatingIp("172.24.4.9", "10.0.0.5"), l3.FloatingIp("172.24.4.8", "10.0.0.6"),
            l3.FloatingIp("2001:db8::9", "fd00::5"))  # IPv6 is not translated
    items = l3.nat_items(state(floating_ips=fips))
    dnat = [[m(DADDR, "172.24.4.8"), {"dnat": {"addr": "10.0.0.6"}}],
            [m(DADDR, "172.24.4.9"), {"dnat": {"addr": "10.0.0.5"}}]]
    assert rules(items, "prerouting") == [METADATA, *dnat]
    assert rules(items, "output") == dnat
    post = rules(items, "postrouting")
    assert post[1:3] == [[m(SADDR, "10.0.0.6"), {"snat": {"addr": "172.24.4.8"}}],
                         [m(SADDR, "10.0.0.5"), {"snat": {"addr": "172.24.4.9"}}]]
    # the floating IPs' SNAT comes before the gateway's
    assert post[3] == [m(OIF, QG), {"snat": {"addr": "172.24.4.2"}}]


def test_port_forwardings() -> None:
    dport = {"payload": {"protocol": "tcp", "field": "dport"}}
    udport = {"payload": {"protocol": "udp", "field": "dport"}}
    pfs = (l3.PortForwarding("172.24.4.7", "tcp", "8080", "10.0.0.5", "80"),
           l3.PortForwarding("172.24.4.7", "udp", "5000:5002", "10.0.0.5", "5000:5002"),
           l3.PortForwarding("172.24.4.7", "tcp", "9000:9001", "10.0.0.6", "7000:7001"))
    got = rules(l3.nat_items(state(port_forwardings=pfs)), "prerouting")
    assert got == [
        METADATA,
        [m(DADDR, "172.24.4.7"), m(dport, 8080), {"dnat": {"addr": "10.0.0.5", "port": 80}}],
        [m(DADDR, "172.24.4.7"), m(dport, {"range": [9000, 9001]}),
         {"dnat": {"addr": "10.0.0.6", "port": {"map": {
             "key": dport, "data": {"set": [[9000, 7000], [9001, 7001]]}}}}}],
        [m(DADDR, "172.24.4.7"), m(udport, {"range": [5000, 5002]}),
         {"dnat": {"addr": "10.0.0.5", "port": {"range": [5000, 5002]}}}]]


@pytest.mark.parametrize("pf, message", [
    (l3.PortForwarding("172.24.4.7", "icmp", "1", "10.0.0.5", "1"), "protocol"),
    (l3.PortForwarding("172.24.4.7", "tcp", "1:3", "10.0.0.5", "5:6"), "unequal length"),
])
def test_port_forwardings_that_cannot_be_rendered(pf: l3.PortForwarding, message: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    good = l3.PortForwarding("172.24.4.7", "sctp", "80", "10.0.0.5", "8080")
    got = rules(l3.nat_items(state(port_forwardings=(pf, good))), "prerouting")
    assert got == [METADATA, [m(DADDR, "172.24.4.7"),
                              m({"payload": {"protocol": "sctp", "field": "dport"}}, 80),
                              {"dnat": {"addr": "10.0.0.5", "port": 8080}}]]
    assert message in caplog.text


def test_addresses_hold_the_floating_ips_on_the_gateway() -> None:
    got = l3.device_addresses(state(
        floating_ips=(l3.FloatingIp("172.24.4.9", "10.0.0.5"),),
        port_forwardings=(l3.PortForwarding("172.24.4.7", "tcp", "80", "10.0.0.5", "80"),
                          l3.PortForwarding("172.24.4.7", "tcp", "81", "10.0.0.5", "81"))))
    assert got == {
        "qr-aaaaaaaa-00": ("10.0.0.1/26",),
        QG: ("172.24.4.2/24", "2001:db8::2/64", "172.24.4.9/32", "172.24.4.7/32")}
    assert l3.device_addresses(state(gateway=None)) == {"qr-aaaaaaaa-00": ("10.0.0.1/26",)}


def test_routes() -> None:
    assert l3.wanted_routes(state()) == {"0.0.0.0/0": "172.24.4.1"}
    assert l3.wanted_routes(state(gateway_ip=None)) == {}
    assert l3.wanted_routes(state(gateway=None)) == {}
    assert l3.wanted_routes(state(gateway_ip="2001:db8::1")) == {"::/0": "2001:db8::1"}
    got = l3.wanted_routes(state(routes=(("192.168.0.0/24", "10.0.0.9"),
                                         ("0.0.0.0/0", "10.0.0.10"),
                                         ("fd00:1::/64", "fd00::9"))))
    assert got == {"0.0.0.0/0": "10.0.0.10", "192.168.0.0/24": "10.0.0.9",
                   "fd00:1::/64": "fd00::9"}


def test_gateway_address_is_its_first_ipv4() -> None:
    gw = l3.RouterPort(GW_PORT, "ext", "fa:16:3e:00:00:01", ("2001:db8::2/64", "172.24.4.3/24"))
    assert l3.gateway_address(state(gateway=gw)) == "172.24.4.3"
    assert l3.gateway_address(state(gateway=None)) is None


def test_the_table_carries_the_digest_of_its_content() -> None:
    a, b = state(), state(floating_ips=(l3.FloatingIp("172.24.4.9", "10.0.0.5"),))
    ta, tb = l3.nat_table(a), l3.nat_table(b)
    assert (ta.family, ta.name) == ("ip", "onestack-l3")
    assert ta.items[-2:] == [
        {"chain": {"name": "digest"}},
        {"rule": {"chain": "digest", "expr": [{"accept": None}],
                  "comment": l3.digest(l3.nat_items(a))}}]
    assert l3.nat_table(state()).document() == ta.document()  # the same state, the same table
    assert ta.items[-1] != tb.items[-1]
    # the order of floating IPs does not matter
    two = (l3.FloatingIp("172.24.4.9", "10.0.0.5"), l3.FloatingIp("172.24.4.8", "10.0.0.6"))
    assert (l3.nat_table(state(floating_ips=two)).document()
            == l3.nat_table(state(floating_ips=two[::-1])).document())
    commands = json.loads(ta.document())["nftables"]
    assert commands[:3] == [{"add": {"table": {"family": "ip", "name": "onestack-l3"}}},
                            {"delete": {"table": {"family": "ip", "name": "onestack-l3"}}},
                            {"add": {"table": {"family": "ip", "name": "onestack-l3"}}}]


def flow(orig_src: str, orig_dst: str, reply_src: str, reply_dst: str, *, proto: int = 6,
         dport: int | None = 22, sport: int | None = 22) -> Flow:
    return Flow(proto=proto, orig_src=orig_src, orig_dst=orig_dst, orig_dport=dport,
                reply_src=reply_src, reply_sport=sport, reply_dst=reply_dst)


FIP = "172.24.4.9"
FIPS = (l3.FloatingIp(FIP, "10.0.0.5"),)
ALL = {FIP, "172.24.4.7"}


@pytest.mark.parametrize("st, f, stale", [
    # inbound to a floating IP: kept while it still goes to that fixed address
    (state(floating_ips=FIPS), flow("8.8.8.8", FIP, "10.0.0.5", "8.8.8.8"), False),
    (state(floating_ips=(l3.FloatingIp(FIP, "10.0.0.6"),)),
     flow("8.8.8.8", FIP, "10.0.0.5", "8.8.8.8"), True),
    (state(), flow("8.8.8.8", FIP, "10.0.0.5", "8.8.8.8"), True),
    (state(gateway=None, floating_ips=FIPS), flow("8.8.8.8", FIP, "10.0.0.5", "8.8.8.8"), True),
    # outbound from the fixed address, seen as the floating IP
    (state(floating_ips=FIPS), flow("10.0.0.5", "8.8.8.8", "8.8.8.8", FIP), False),
    (state(), flow("10.0.0.5", "8.8.8.8", "8.8.8.8", FIP), True),
    # hairpin between two floating IPs: both translations must still hold
    (state(floating_ips=(*FIPS, l3.FloatingIp("172.24.4.7", "10.0.0.6"))),
     flow("10.0.0.6", FIP, "10.0.0.5", "172.24.4.7"), False),
    (state(floating_ips=FIPS), flow("10.0.0.6", FIP, "10.0.0.5", "172.24.4.7"), True),
    # a port forwarding: the same protocol, port and internal address
    (state(port_forwardings=(l3.PortForwarding("172.24.4.7", "tcp", "2222", "10.0.0.5",
                                               "22"),)),
     flow("8.8.8.8", "172.24.4.7", "10.0.0.5", "8.8.8.8", dport=2222, sport=22), False),
    (state(port_forwardings=(l3.PortForwarding("172.24.4.7", "udp", "2222", "10.0.0.5",
                                               "22"),)),
     flow("8.8.8.8", "172.24.4.7", "10.0.0.5", "8.8.8.8", dport=2222, sport=22), True),
    (state(port_forwardings=(l3.PortForwarding("172.24.4.7", "tcp", "2222", "10.0.0.5",
                                               "23"),)),
     flow("8.8.8.8", "172.24.4.7", "10.0.0.5", "8.8.8.8", dport=2222, sport=22), True),
    (state(port_forwardings=(l3.PortForwarding("172.24.4.7", "tcp", "9000:9001", "10.0.0.5",
                                               "7000:7001"),)),
     flow("8.8.8.8", "172.24.4.7", "10.0.0.5", "8.8.8.8", dport=9001, sport=7001), False),
    # SNAT to the gateway address, or no translation at all: not ours to judge
    (state(), flow("10.0.0.5", "8.8.8.8", "8.8.8.8", "172.24.4.2"), False),
    (state(), flow("10.0.0.5", "10.0.1.5", "10.0.1.5", "10.0.0.5"), False),
])
def test_connections_through_translations_that_are_gone_are_stale(
        st: l3.RouterState, f: Flow, stale: bool) -> None:
    assert l3.is_stale(st, f, ALL) is stale


def test_advertised_on_interfaces_with_ipv6_subnets_while_up() -> None:
    v6 = l3.RouterPort("bbbbbbbb-0000-0000-0000-000000000000", "net-b", "fa:16:3e:00:00:0b",
                       ("10.0.1.1/24", "fd00:b::1/64"), mtu=1450)
    local = l3.RouterPort("cccccccc-0000-0000-0000-000000000000", "net-c", "fa:16:3e:00:00:0c",
                          ("fe80::1/64",))
    st = state(interfaces=(*state().interfaces, v6, local))
    assert l3.advertised(st) == [Advertised("qr-bbbbbbbb-00", 1450)]
    assert l3.advertised(replace(st, admin_state_up=False)) == []
    # the gateway's IPv6 address is not advertised on the external network
    assert l3.advertised(state()) == []
    assert l3.run_dir(Layout("os123456"), "r1") == l3.RUN_ROOT / "os123456" / "qrouter-r1"


def test_radvd_configuration() -> None:
    assert radvd.render([Advertised("qr-2", 1500), Advertised("qr-1", 1450)]) == (
        "interface qr-1 {\n    AdvSendAdvert on;\n    MinRtrAdvInterval 30;\n"
        "    MaxRtrAdvInterval 100;\n    AdvLinkMTU 1450;\n};\n"
        "interface qr-2 {\n    AdvSendAdvert on;\n    MinRtrAdvInterval 30;\n"
        "    MaxRtrAdvInterval 100;\n    AdvLinkMTU 1500;\n};\n")
    with pytest.raises(HostError, match="invalid interface name"):
        radvd.render([Advertised("qr-1 {\n}", 1500)])
    with pytest.raises(HostError, match="interval"):
        radvd.render([Advertised("qr-1", 1500, min_interval=100, max_interval=30)])
