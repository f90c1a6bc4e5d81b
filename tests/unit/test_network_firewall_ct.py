"""Which tracked connections a sync no longer allows (pure)."""

from __future__ import annotations

from onestack.host.ctzones import Connection
from onestack.network.agent import firewall_ct
from onestack.network.agent.firewall import FirewallPort, SecurityGroupRule
from onestack.network.agent.layout import Layout

GROUP = "0a0a0a0a-0000-4000-8000-000000000001"
EGRESS_ANY = (SecurityGroupRule("egress", "IPv4", None, None, None, None, None),
              SecurityGroupRule("egress", "IPv6", None, None, None, None, None))
SSH = SecurityGroupRule("ingress", "IPv4", "tcp", 22, 22, None, None)
WEB_FROM_GROUP = SecurityGroupRule("ingress", "IPv4", "tcp", 80, 80, None, GROUP)
PING = SecurityGroupRule("ingress", "IPv4", "icmp", 8, None, None, None)


def port(n: int, rules: tuple[SecurityGroupRule, ...], security: bool = True) -> FirewallPort:
    port_id = f"{n:08x}-0000-4000-8000-000000000000"
    return FirewallPort(port_id, Layout.tap(port_id), f"fa:16:3e:00:00:{n:02x}",
                        (f"10.0.0.{n}",), (), security, rules)


def conn(src: int, dst: int, proto: int = 6, dport: int | None = 22, zone: int = 5,
         icmp_type: int | None = None, sport: int | None = 40000) -> Connection:
    return Connection(4, zone, proto, f"10.0.0.{src}", f"10.0.0.{dst}", sport, dport,
                      icmp_type, 0 if icmp_type is not None else None)


def test_what_a_sync_takes_away() -> None:
    a = firewall_ct.Applied.of([port(1, (SSH, PING))], {GROUP: ["10.0.0.1", "10.0.0.2"]})
    assert firewall_ct.takes_away(None, a)
    assert not firewall_ct.takes_away(a, a)
    more = firewall_ct.Applied.of([port(1, (SSH, PING, WEB_FROM_GROUP))],
                                  {GROUP: ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})
    assert not firewall_ct.takes_away(a, more)
    assert firewall_ct.takes_away(more, a)  # a rule and a member gone
    assert firewall_ct.takes_away(a, firewall_ct.Applied.of(
        [port(1, (SSH, PING))], {GROUP: ["10.0.0.1"]}))
    # a new port has no connections yet: nothing taken away
    with_b = firewall_ct.Applied.of([port(1, (SSH, PING)), port(2, EGRESS_ANY)],
                                    {GROUP: ["10.0.0.1", "10.0.0.2"]})
    assert not firewall_ct.takes_away(a, with_b)
    # port security turned off takes nothing away; turned on, it does
    b_open = firewall_ct.Applied.of([port(1, (SSH, PING)), port(2, (), security=False)],
                                    {GROUP: ["10.0.0.1", "10.0.0.2"]})
    assert not firewall_ct.takes_away(with_b, b_open)
    assert firewall_ct.takes_away(b_open, with_b)


def test_stale_connections_are_those_no_rule_admits() -> None:
    ports = [port(1, EGRESS_ANY), port(2, EGRESS_ANY + (WEB_FROM_GROUP, PING)), port(3, ())]
    zones = {p.device: 5 for p in ports}
    members = {GROUP: ["10.0.0.1"]}
    ssh, web, ping = conn(1, 2), conn(1, 2, dport=80), conn(1, 2, proto=1, dport=None,
                                                            icmp_type=8)
    other_zone = conn(1, 2, zone=6)
    from_outsider = conn(9, 2, dport=80)
    dhcp = conn(3, 9, proto=17, sport=68, dport=67)  # port 3 admits nothing but DHCP
    dns = conn(3, 9, proto=17, sport=5353, dport=53)
    assert firewall_ct.stale([ssh, web, ping, other_zone, from_outsider, dhcp, dns],
                             ports, members, zones) == [ssh, from_outsider, dns]
    # egress restricted: a's connection to b's ssh is a's own egress
    only_web_out = [port(1, (SecurityGroupRule("egress", "IPv4", "tcp", 80, 80,
                                                 "10.0.0.0/24", None),)),
                    port(2, EGRESS_ANY + (SSH, WEB_FROM_GROUP))]
    assert firewall_ct.stale([ssh, web], only_web_out, members, zones) == [ssh]
    # an unfiltered port at both ends: nothing to check
    open_ports = [port(1, (), security=False), port(2, (), security=False)]
    assert firewall_ct.stale([ssh, web], open_ports, members, zones) == []
    # a port whose bridge is not here has no connections here
    assert firewall_ct.stale([ssh], ports, members, {}) == []


def test_rule_reading_matches_the_nft_one() -> None:
    groups = {GROUP: [firewall_ct._net("10.0.0.0/30")]}
    remote = conn(1, 2).src
    import ipaddress

    r = ipaddress.ip_address(remote)
    assert firewall_ct.rule_admits(SSH, conn(1, 2), r, groups)
    assert not firewall_ct.rule_admits(SSH, conn(1, 2, dport=23), r, groups)
    assert not firewall_ct.rule_admits(SSH, conn(1, 2, proto=17), r, groups)
    assert firewall_ct.rule_admits(WEB_FROM_GROUP, conn(1, 2, dport=80), r, groups)
    assert not firewall_ct.rule_admits(
        WEB_FROM_GROUP, conn(1, 2, dport=80), ipaddress.ip_address("10.0.0.9"), groups)
    assert firewall_ct.rule_admits(PING, conn(1, 2, 1, None, icmp_type=8), r, groups)
    assert not firewall_ct.rule_admits(PING, conn(1, 2, 1, None, icmp_type=13), r, groups)
    ranged = SecurityGroupRule("ingress", "IPv4", "6", 1000, 2000, "10.0.0.0/24", None)
    assert firewall_ct.rule_admits(ranged, conn(1, 2, dport=1500), r, groups)
    assert not firewall_ct.rule_admits(ranged, conn(1, 2, dport=2001), r, groups)
    v6 = SecurityGroupRule("ingress", "IPv6", None, None, None, None, None)
    assert not firewall_ct.rule_admits(v6, conn(1, 2), r, groups)
