"""The firewall's rendering: ports and security group rules to nftables JSON (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from onestack.host import bridge_fw
from onestack.network.agent import firewall as fw
from onestack.network.agent.firewall import FirewallPort, SecurityGroupRule
from onestack.network.agent.layout import Layout

DEFAULT = "11111111-2222-4333-8444-555555555555"
EGRESS_ANY = (SecurityGroupRule("egress", "IPv4", None, None, None, None, None),
              SecurityGroupRule("egress", "IPv6", None, None, None, None, None))
DEFAULT_RULES = EGRESS_ANY + (
    SecurityGroupRule("ingress", "IPv4", None, None, None, None, DEFAULT),
    SecurityGroupRule("ingress", "IPv6", None, None, None, None, DEFAULT))


def rule(direction: str = "ingress", ethertype: str = "IPv4", protocol: str | None = None,
         low: int | None = None, high: int | None = None, prefix: str | None = None,
         group: str | None = None) -> SecurityGroupRule:
    return SecurityGroupRule(direction, ethertype, protocol, low, high, prefix, group)


def port(n: int, rules: tuple[SecurityGroupRule, ...] = DEFAULT_RULES, *,
         pairs: tuple[tuple[str, str], ...] = (), security: bool = True,
         ips: tuple[str, ...] | None = None) -> FirewallPort:
    port_id = f"{n:08x}-0000-4000-8000-000000000000"
    return FirewallPort(port_id=port_id, device=Layout.tap(port_id), mac=f"fa:16:3e:00:00:{n:02x}",
                        fixed_ips=ips if ips is not None else (f"10.0.0.{n}", f"fd00::{n:x}"),
                        allowed_address_pairs=pairs, port_security_enabled=security, rules=rules)


def items(table: Any, kind: str) -> dict[str, Any]:
    return {i[kind]["name"]: i[kind] for i in table.items if kind in i}


def rules_of(table: Any, chain: str) -> list[list[Any]]:
    return [i["rule"]["expr"] for i in table.items
            if "rule" in i and i["rule"]["chain"] == chain]


def payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


NFPROTO4 = match({"meta": {"key": "nfproto"}}, "ipv4")
NFPROTO6 = match({"meta": {"key": "nfproto"}}, "ipv6")


def l4(n: int) -> dict[str, Any]:
    return match({"meta": {"key": "l4proto"}}, n)


# --- one security group rule -------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "ethertype", "number"), [
    (None, "IPv4", None), ("any", "IPv4", None), ("tcp", "IPv4", 6), ("6", "IPv4", 6),
    ("udp", "IPv6", 17), ("icmp", "IPv4", 1), ("icmp", "IPv6", 58), ("1", "IPv6", 58),
    ("ipv6-icmp", "IPv6", 58), ("icmpv6", "IPv6", 58), ("58", "IPv6", 58), ("gre", "IPv4", 47),
    ("vrrp", "IPv4", 112), ("132", "IPv4", 132), ("255", "IPv4", 255),
    # protocol 0 is any protocol, as in Neutron's iptables driver (no "-p")
    ("0", "IPv4", None), ("ip", "IPv4", None), ("hopopt", "IPv6", None),
])
def test_protocols_by_name_or_number(protocol: str | None, ethertype: str,
                                     number: int | None) -> None:
    assert fw.protocol_number(rule(protocol=protocol, ethertype=ethertype)) == number


def test_a_bad_protocol_is_refused() -> None:
    with pytest.raises(ValueError):
        fw.protocol_number(rule(protocol="256"))
    with pytest.raises(ValueError):
        fw.protocol_number(rule(protocol="bogus"))


def test_tcp_to_one_port_and_to_a_range() -> None:
    assert fw.rule_match(rule(protocol="tcp", low=22, high=22)) == [
        NFPROTO4, l4(6), match(payload("tcp", "dport"), 22)]
    assert fw.rule_match(rule(protocol="udp", low=1000, high=2000, ethertype="IPv6")) == [
        NFPROTO6, l4(17), match(payload("udp", "dport"), {"range": [1000, 2000]})]
    assert fw.rule_match(rule(protocol="sctp", low=5, high=None))[-1] == match(
        payload("sctp", "dport"), 5)
    # the whole range is no range (Neutron stores it as none)
    assert fw.rule_match(rule(protocol="tcp", low=1, high=65535)) == [NFPROTO4, l4(6)]


def test_icmp_type_and_code_as_neutron_means_them() -> None:
    assert fw.rule_match(rule(protocol="icmp", low=8, high=0)) == [
        NFPROTO4, l4(1), match(payload("icmp", "type"), 8), match(payload("icmp", "code"), 0)]
    assert fw.rule_match(rule(protocol="icmp", low=3)) == [
        NFPROTO4, l4(1), match(payload("icmp", "type"), 3)]
    assert fw.rule_match(rule(protocol="ipv6-icmp", ethertype="IPv6", low=128)) == [
        NFPROTO6, l4(58), match(payload("icmpv6", "type"), 128)]
    assert fw.rule_match(rule(protocol="icmp")) == [NFPROTO4, l4(1)]


def test_any_protocol_and_protocols_without_ports() -> None:
    assert fw.rule_match(rule()) == [NFPROTO4]
    assert fw.rule_match(rule(ethertype="IPv6")) == [NFPROTO6]
    assert fw.rule_match(rule(protocol="gre")) == [NFPROTO4, l4(47)]


def test_remote_prefix_is_the_source_inbound_and_the_destination_outbound() -> None:
    assert fw.rule_match(rule(prefix="192.168.1.0/24"))[-1] == match(
        payload("ip", "saddr"), {"prefix": {"addr": "192.168.1.0", "len": 24}})
    assert fw.rule_match(rule("egress", prefix="192.168.1.7/32"))[-1] == match(
        payload("ip", "daddr"), "192.168.1.7")
    assert fw.rule_match(rule(ethertype="IPv6", prefix="2001:db8::5/64"))[-1] == match(
        payload("ip6", "saddr"), {"prefix": {"addr": "2001:db8::", "len": 64}})
    assert fw.rule_match(rule(prefix="0.0.0.0/0")) == [NFPROTO4]
    with pytest.raises(ValueError):
        fw.rule_match(rule(prefix="2001:db8::/64"))


def test_remote_group_matches_its_member_set() -> None:
    assert fw.rule_match(rule(group=DEFAULT)) == [
        NFPROTO4, match(payload("ip", "saddr"), f"@group4-{DEFAULT}")]
    assert fw.rule_match(rule("egress", "IPv6", protocol="tcp", low=80, high=80,
                              group=DEFAULT)) == [
        NFPROTO6, l4(6), match(payload("tcp", "dport"), 80),
        match(payload("ip6", "daddr"), f"@group6-{DEFAULT}")]


# --- the tables -----------------------------------------------------------------------------


def test_the_default_group_shares_one_chain_pair_between_its_ports() -> None:
    bridge, inet = fw.render([port(1), port(2)], {DEFAULT: ["10.0.0.1", "10.0.0.2", "fd00::1"]},
                             {"brqnet1": 7})
    egress = items(inet, "map")["egress"]["elem"]
    ingress = items(inet, "map")["ingress"]["elem"]
    assert [k for k, _ in egress] == [1, 2] and [k for k, _ in ingress] == [1, 2]
    assert egress[0][1] == egress[1][1] and ingress[0][1] == ingress[1][1]
    out, into = egress[0][1]["jump"]["target"], ingress[0][1]["jump"]["target"]
    dhcp = {"concat": [payload("udp", "sport"), payload("udp", "dport")]}
    assert rules_of(inet, out) == [
        [match(dhcp, {"set": [{"concat": [68, 67]}, {"concat": [546, 547]}]}), {"accept": None}],
        [NFPROTO4, {"accept": None}],
        [NFPROTO6, {"accept": None}],
        [{"drop": None}],
    ]
    assert rules_of(inet, into) == [
        [match(dhcp, {"set": [{"concat": [67, 68]}, {"concat": [547, 546]}]}), {"accept": None}],
        [NFPROTO4, match(payload("ip", "saddr"), f"@group4-{DEFAULT}"), {"accept": None}],
        [NFPROTO6, match(payload("ip6", "saddr"), f"@group6-{DEFAULT}"), {"accept": None}],
        [{"drop": None}],
    ]
    sets = items(inet, "set")
    assert sets[f"group4-{DEFAULT}"]["elem"] == ["10.0.0.1", "10.0.0.2"]
    assert sets[f"group6-{DEFAULT}"]["elem"] == ["fd00::1"]
    assert items(bridge, "set")["ports"]["elem"] == [port(1).device, port(2).device]


def test_egress_in_prerouting_ingress_in_forward_stateful_default_deny_per_port() -> None:
    _, inet = fw.render([port(1)], {}, {})
    mark = {"meta": {"key": "mark"}}
    ra = match(payload("icmpv6", "type"), 134)
    for hook, rules_map, icmpv6, router_ads in (
            # out: MLD, RS, NS, NA (a port's own RAs die in the bridge table)
            ("prerouting", "@egress", [130, 131, 132, 133, 135, 136, 143], []),
            # in: MLD, NS, NA; RAs only from the port's routers, whatever its rules
            ("forward", "@ingress", [130, 131, 132, 135, 136], [
                [NFPROTO6, l4(58), ra,
                 match({"concat": [mark, payload("ip6", "saddr")]}, "@ra_sources"),
                 {"accept": None}],
                [NFPROTO6, l4(58), ra, {"drop": None}]])):
        assert rules_of(inet, hook) == [
            [match(mark, 0), {"accept": None}],
            [match({"ct": {"key": "state"}}, ["established", "related"], op="in"),
             {"accept": None}],
            [match({"ct": {"key": "state"}}, "invalid", op="in"), {"drop": None}],
            [NFPROTO6, l4(58), match(payload("icmpv6", "type"), {"set": icmpv6}),
             {"accept": None}],
            *router_ads,
            [{"vmap": {"key": mark, "data": rules_map}}],
        ], hook
    chains = items(inet, "chain")
    assert (chains["prerouting"]["hook"], chains["prerouting"]["prio"]) == ("prerouting", 0)
    assert (chains["forward"]["hook"], chains["forward"]["prio"]) == ("forward", 0)
    assert chains["forward"]["policy"] == "accept"  # unfiltered ports pass
    assert chains["zone"]["prio"] == -300  # before conntrack (-200)


def test_router_advertisements_are_taken_only_from_each_ports_routers() -> None:
    router_lla, dhcp_lla = "fe80::f816:3eff:fe00:aa", "fe80::f816:3eff:fe00:bb"
    a = FirewallPort(**{**port(1).__dict__, "ra_sources": (router_lla, dhcp_lla)})
    b = FirewallPort(**{**port(2).__dict__, "ra_sources": (dhcp_lla, "not an address", "10.0.0.1")})
    _, inet = fw.render([a, b, port(3)], {}, {})
    ra_set = items(inet, "set")["ra_sources"]
    assert ra_set["type"] == ["mark", "ipv6_addr"]
    # by the port's number (its mark): a takes both, b the DHCP port's only, port 3 none
    assert ra_set["elem"] == [{"concat": [1, "fe80::f816:3eff:fe00:aa"]},
                              {"concat": [1, "fe80::f816:3eff:fe00:bb"]},
                              {"concat": [2, "fe80::f816:3eff:fe00:bb"]}]
    # a port's own router advertisements are dropped where it sends them
    bridge, _ = fw.render([a], {}, {})
    assert [match(payload("icmpv6", "type"), 134), {"drop": None}] in \
        rules_of(bridge, "spoof6")


def test_conntrack_zone_per_bridge() -> None:
    _, inet = fw.render([], {}, {"brqa": 3, "brqb": 70000})
    assert rules_of(inet, "zone") == [[{"mangle": {"key": {"ct": {"key": "zone"}}, "value": {
        "map": {"key": {"meta": {"key": "iifname"}},
                "data": {"set": [["brqa", 3], ["brqb", 70000 - 0xFFFF]]}}}}}]]
    assert fw.zone_of(1) == 1 and fw.zone_of(0xFFFF) == 0xFFFF and fw.zone_of(0x10000) == 1
    _, empty = fw.render([], {}, {})
    assert rules_of(empty, "zone") == []


def test_ports_without_port_security_are_not_filtered() -> None:
    bridge, inet = fw.render([port(1, security=False), port(2)], {}, {})
    assert items(bridge, "set")["ports"]["elem"] == [port(2).device]
    assert [k for k, _ in items(inet, "map")["egress"]["elem"]] == [1]
    assert port(1).device not in json.dumps(bridge.items)
    # nothing filtered at all: empty sets and maps, every packet passes
    bridge, inet = fw.render([port(1, security=False)], {}, {})
    assert "elem" not in items(bridge, "set")["ports"]
    assert "elem" not in items(inet, "map")["egress"]


def test_anti_spoofing_sources_with_allowed_address_pairs() -> None:
    p = port(1, pairs=(("10.0.0.0/24", ""), ("192.168.5.5", "fa:16:3e:aa:bb:cc"),
                       ("fd00::99", "")), ips=("10.0.0.1", "fd00::1"))
    bridge, _ = fw.render([p], {}, {})
    sets = items(bridge, "set")
    dev, mac, other = p.device, p.mac, "fa:16:3e:aa:bb:cc"
    assert sets["macs"]["elem"] == [{"concat": [dev, mac]}, {"concat": [dev, other]}]
    # 10.0.0.1 is inside the pair's 10.0.0.0/24: one interval (nft refuses overlaps)
    assert sets["sources4"]["elem"] == [
        {"concat": [dev, mac, {"prefix": {"addr": "10.0.0.0", "len": 24}}]},
        {"concat": [dev, other, "192.168.5.5"]}]
    assert sets["sources6"]["elem"] == [
        {"concat": [dev, mac, "fd00::1"]},
        {"concat": [dev, mac, "fd00::99"]},
        {"concat": [dev, mac, "fe80::f816:3eff:fe00:1"]},
        {"concat": [dev, other, "fe80::f816:3eff:feaa:bbcc"]}]
    assert sets["sources4"]["flags"] == ["interval"]
    assert items(bridge, "map")["port_numbers"]["elem"] == [[dev, 1]]


def test_anti_spoofing_chains() -> None:
    bridge, _ = fw.render([port(1)], {}, {})
    iif = {"meta": {"key": "iifname"}}
    ether = payload("ether", "saddr")
    pre = rules_of(bridge, "prerouting")
    assert pre[0] == [match(iif, "@ports", op="!="), {"accept": None}]
    assert pre[1] == [{"mangle": {"key": {"meta": {"key": "mark"}},
                                  "value": {"map": {"key": iif, "data": "@port_numbers"}}}}]
    assert pre[2] == [match({"concat": [iif, ether]}, "@macs", op="!="), {"drop": None}]
    spoof4 = rules_of(bridge, "spoof4")
    assert spoof4[1] == [match(payload("udp", "sport"), 67), match(payload("udp", "dport"), 68),
                         {"drop": None}]
    assert spoof4[2] == [match({"concat": [iif, ether, payload("ip", "saddr")]}, "@sources4"),
                         {"accept": None}]
    assert spoof4[-1] == [{"drop": None}]
    spoof6 = rules_of(bridge, "spoof6")
    assert spoof6[0] == [match(payload("icmpv6", "type"), 134), {"drop": None}]
    assert rules_of(bridge, "arp4")[-1] == [{"drop": None}]
    # in forward, the mark becomes the destination's number (0 if not filtered)
    assert rules_of(bridge, "forward") == [
        [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0}}],
        [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"map": {
            "key": {"meta": {"key": "oifname"}}, "data": "@port_numbers"}}}}]]
    chains = items(bridge, "chain")
    assert (chains["forward"]["hook"], chains["forward"]["prio"]) == ("forward", -200)
    assert (chains["prerouting"]["hook"], chains["prerouting"]["prio"]) == ("prerouting", -200)


def test_rules_are_deduplicated_and_order_independent() -> None:
    r1, r2 = rule(protocol="tcp", low=22, high=22), rule(protocol="icmp")
    _, inet = fw.render([port(1, EGRESS_ANY + (r1, r2, r1)), port(2, (r2, r1) + EGRESS_ANY)],
                        {}, {})
    ingress = items(inet, "map")["ingress"]["elem"]
    assert ingress[0][1] == ingress[1][1]
    assert len(rules_of(inet, ingress[0][1]["jump"]["target"])) == 4  # DHCP, 2 rules, drop


def test_group_member_sets() -> None:
    v4, v6 = fw.split_addresses(["10.0.0.2", "10.0.0.3", "10.1.0.0/16", "10.1.2.3", "fd00::1",
                                 "not an address"])
    assert v4 == [{"prefix": {"addr": "10.0.0.2", "len": 31}},
                  {"prefix": {"addr": "10.1.0.0", "len": 16}}]
    assert v6 == ["fd00::1"]
    _, inet = fw.render([port(1)], {}, {})  # a group without members: empty sets
    assert "elem" not in items(inet, "set")[f"group4-{DEFAULT}"]


def test_link_local_address_of_a_mac() -> None:
    assert fw.link_local("fa:16:3e:00:00:01") == "fe80::f816:3eff:fe00:1"
    assert fw.link_local("00:11:22:33:44:55") == "fe80::211:22ff:fe33:4455"


def test_one_transaction_replaces_both_tables_and_names_come_before_use() -> None:
    tables = fw.render([port(1), port(2)], {}, {"brq1": 4})
    doc = json.loads(bridge_fw.transaction(tables))["nftables"]
    assert doc[:3] == [{"add": {"table": {"family": "bridge", "name": fw.TABLE}}},
                       {"delete": {"table": {"family": "bridge", "name": fw.TABLE}}},
                       {"add": {"table": {"family": "bridge", "name": fw.TABLE}}}]
    inet_start = doc.index({"add": {"table": {"family": "inet", "name": fw.TABLE}}})
    assert doc[inet_start + 1] == {"delete": {"table": {"family": "inet", "name": fw.TABLE}}}
    for part in (doc[3:inet_start], doc[inet_start + 3:]):
        kinds = [next(iter(c["add"])) for c in part]
        first_rule = kinds.index("rule")
        assert set(kinds[first_rule:]) == {"rule"}
        last_chain = max(i for i, k in enumerate(kinds) if k == "chain")
        assert all(k == "chain" for k in kinds[:last_chain + 1])


def test_sync_applies_in_the_root_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[Any]]] = []

    def fake_apply(ns: str, build: Any, after: Any = None) -> None:
        seen.append((ns, build({"brq1": 2})))

    monkeypatch.setattr(bridge_fw, "apply", fake_apply)
    fw.sync(Layout("osabc123"), [port(1)], {DEFAULT: ["10.0.0.1"]})
    assert seen[0][0] == "osabc123-dp"
    assert [(t.family, t.name) for t in seen[0][1]] == [("bridge", fw.TABLE), ("inet", fw.TABLE)]


def test_a_rule_or_address_that_cannot_be_expressed_is_skipped_not_fatal() -> None:
    bad = rule(ethertype="IPv6", prefix="10.0.0.0/8")  # the API refuses it; never fatal here
    good = rule(protocol="tcp", low=22, high=22)
    p = port(1, EGRESS_ANY + (bad, good), ips=("10.0.0.1", "not-an-ip"),
             pairs=(("10.9.9.9", "zz:zz"),))
    bridge, inet = fw.render([p, port(2)], {}, {})
    chain = items(inet, "map")["ingress"]["elem"][0][1]["jump"]["target"]
    assert [r[-1] for r in rules_of(inet, chain)] == [{"accept": None}] * 2 + [{"drop": None}]
    assert rules_of(inet, chain)[1][:-1] == fw.rule_match(good)
    assert items(bridge, "set")["sources4"]["elem"] == [
        {"concat": [p.device, p.mac, "10.0.0.1"]},
        {"concat": [port(2).device, port(2).mac, "10.0.0.2"]}]


def test_group_members_merge_as_ipaddress_collapses_them() -> None:
    """Plain member addresses are merged as integers (a group of 10,000 fixed IPs
    is re-rendered at every sync): exactly the prefixes ``collapse_addresses``
    gives, runs and alignment included, duplicates and odd spellings folded."""
    import ipaddress
    import random

    def expected(texts: list[str]) -> tuple[list[Any], list[Any]]:
        nets = [ipaddress.ip_network(t, strict=False) for t in texts]
        return tuple(  # type: ignore[return-value]
            [fw._element(n) for n in ipaddress.collapse_addresses(  # type: ignore[type-var]
                x for x in nets if x.version == v)]
            for v in (4, 6))

    rng = random.Random(7)
    for _ in range(200):
        texts = [str(ipaddress.IPv4Address(0x0A000000 + rng.randint(0, 70))) for _ in range(rng.randint(0, 60))]
        texts += [str(ipaddress.IPv6Address((0xFD << 120) + rng.randint(0, 40))) for _ in range(rng.randint(0, 20))]
        assert fw.split_addresses(texts) == expected(texts)
    texts = ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "fd00:0::1", "fd00::1", "fd00::0"]
    assert fw.split_addresses(texts) == ([{"prefix": {"addr": "10.0.0.4", "len": 30}}, "10.0.0.8"],
                                         [{"prefix": {"addr": "fd00::", "len": 127}}])
    assert fw.split_addresses(["0.0.0.0", "255.255.255.255"]) == (["0.0.0.0", "255.255.255.255"], [])


def test_a_firewall_of_10000_ports_renders_each_port_once() -> None:
    """The per-port set elements are remembered across renders whatever the number
    of ports (an LRU of 8,192 missed every port of a bigger cloud): a second render
    of 10,000 unchanged ports computes none of them again."""
    rules = (SecurityGroupRule("ingress", "IPv4", None, None, None, None, "g"),)
    ports = [FirewallPort(port_id=f"p{i}", device=f"tap{i:011d}", mac=f"fa:16:3e:00:{i >> 8:02x}:{i & 255:02x}",
                          fixed_ips=(f"10.0.{i >> 8}.{i & 255}",), allowed_address_pairs=(),
                          port_security_enabled=True, rules=rules) for i in range(10000)]
    members = {"g": [p.fixed_ips[0] for p in ports]}
    calls = 0
    real = fw._compute_elements

    def counting(port: FirewallPort) -> Any:
        nonlocal calls
        calls += 1
        return real(port)

    fw.render(ports, members, {})
    try:
        fw._compute_elements = counting  # type: ignore[assignment]
        tables = fw.render(ports, members, {})
    finally:
        fw._compute_elements = real  # type: ignore[assignment]
    assert calls == 0
    doc = json.loads(bridge_fw.transaction(tables))
    sets = {c["add"]["set"]["name"]: c["add"]["set"] for c in doc["nftables"] if "set" in c.get("add", {})}
    assert len(sets["macs"]["elem"]) == 10000
    # 10.0.0.0 - 10.0.39.15
    assert sets["group4-g"]["elem"] == [{"prefix": {"addr": "10.0.0.0", "len": 19}},
                                        {"prefix": {"addr": "10.0.32.0", "len": 22}},
                                        {"prefix": {"addr": "10.0.36.0", "len": 23}},
                                        {"prefix": {"addr": "10.0.38.0", "len": 24}},
                                        {"prefix": {"addr": "10.0.39.0", "len": 28}}]
