"""Security groups and anti-spoofing on a real kernel (root): namespaces stand in
for instances on one network's bridge, ``firewall.sync`` is given their ports,
and what gets through is what a user of the security groups would check."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.host import dnsmasq, netns, nft
from onestack.network.agent import firewall
from onestack.network.agent.firewall import SecurityGroupRule
from tests.e2e import fwlab
from tests.e2e.conftest import e2e_skip_reason

pytestmark = pytest.mark.e2e
# udhcpc's script: put the address it was given on the interface
DHCP_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && busybox ip addr add "$ip/$mask" dev "$interface"\nexit 0\n'

EGRESS_ANY = (SecurityGroupRule("egress", "IPv4", None, None, None, None, None),
              SecurityGroupRule("egress", "IPv6", None, None, None, None, None))


def ingress(protocol: str | None, low: int | None = None, high: int | None = None, *,
            prefix: str | None = None, group: str | None = None,
            ethertype: str = "IPv4") -> SecurityGroupRule:
    return SecurityGroupRule("ingress", ethertype, protocol, low, high, prefix, group)


def egress(protocol: str | None, low: int | None = None, high: int | None = None, *,
           prefix: str | None = None, ethertype: str = "IPv4") -> SecurityGroupRule:
    return SecurityGroupRule("egress", ethertype, protocol, low, high, prefix, None)


@pytest.fixture
def lab() -> Iterator[fwlab.Lab]:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    with fwlab.lab() as the_lab:
        yield the_lab


def test_a_ping_needs_an_icmp_rule_and_gets_through_within_a_second(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    assert a.ping(b.ip)  # nothing filtered yet
    lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY))
    assert not a.ping(b.ip)  # no ingress rule: default deny
    assert not b.ping(a.ip)
    took = lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY + (ingress("icmp"),)))
    waited = a.ping_until(b.ip, within=1.0)
    assert waited is not None, "the ICMP rule did not apply within a second"
    print(f"\nsync {took * 1000:.1f} ms, first ping through {waited * 1000:.0f} ms after it")
    assert not b.ping(a.ip)  # a still admits nothing
    # IPv6: neighbour discovery passes, the echo needs its own rule
    assert not a.ping(b.ip6)
    lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY + (
        ingress("icmp"), ingress("ipv6-icmp", 128, None, ethertype="IPv6"))))
    assert a.ping(b.ip6)
    assert not b.ping(a.ip6)


def test_tcp_is_allowed_to_one_port_only(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    lab.serve_tcp(b, 8080)
    lab.serve_tcp(b, 8081)
    lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY + (ingress("tcp", 8080, 8080),)))
    assert a.connect(b.ip, 8080)
    assert not a.connect(b.ip, 8081)
    assert not a.ping(b.ip)
    # a range, by protocol number
    lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY + (ingress("6", 8081, 8090),)))
    assert a.connect(b.ip, 8081)
    assert not a.connect(b.ip, 8080)


def test_a_remote_group_admits_its_members_only(lab: fwlab.Lab) -> None:
    a, b, c = lab.vm("a", 1), lab.vm("b", 2), lab.vm("c", 3)
    lab.serve_tcp(b, 22)
    group = "0a0a0a0a-6709-4a2c-9e6b-000000000001"
    ports = (a.port(EGRESS_ANY), b.port(EGRESS_ANY + (ingress("tcp", 22, 22, group=group),)),
             c.port(EGRESS_ANY))
    lab.sync(*ports, members={group: [a.ip, a.ip6, b.ip]})
    assert a.connect(b.ip, 22)
    assert not c.connect(b.ip, 22)
    # membership changes apply with the next sync
    lab.sync(*ports, members={group: [c.ip, b.ip]})
    assert c.connect(b.ip, 22)
    assert not a.connect(b.ip, 22)


def test_the_default_group_admits_its_own_members(lab: fwlab.Lab) -> None:
    """Neutron's default group: egress anything, ingress from the same group."""
    a, b, c = lab.vm("a", 1), lab.vm("b", 2), lab.vm("c", 3)
    default = "de7au170-0000-4000-8000-000000000000"
    rules = EGRESS_ANY + (ingress(None, group=default),
                          ingress(None, group=default, ethertype="IPv6"))
    lab.sync(a.port(rules), b.port(rules), c.port(EGRESS_ANY),
             members={default: [a.ip, a.ip6, b.ip, b.ip6]})
    assert a.ping(b.ip)
    assert b.ping(a.ip)
    assert a.ping(b.ip6)  # IPv6, neighbour discovery included
    assert not c.ping(a.ip)
    assert c.ping(a.ip) is False and a.ping(c.ip) is False  # c admits nothing


def _ruleset(ns: str) -> list[object]:
    """The root namespace's ruleset as nft lists it, without handles, each set's
    and map's elements sorted (their order is the kernel's)."""
    def plain(value: object) -> object:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != "handle"}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    out = []
    for item in json.loads(netns.run(ns, ["nft", "-j", "list", "ruleset"]).stdout)["nftables"]:
        item = plain(item)
        for kind in ("set", "map"):
            if kind in item and "elem" in item[kind]:
                item[kind]["elem"] = sorted(item[kind]["elem"], key=json.dumps)
        if "metainfo" not in item:
            out.append(item)
    return out


def test_ports_added_changed_and_removed_by_deltas_as_a_full_sync_would(lab: fwlab.Lab) -> None:
    """After the first sync, ports coming, changing and going are applied as their
    own set and map elements (the tables are not replaced): traffic follows at once
    (a new member of the default group is admitted by the others and admits them),
    and the ruleset is the one a full sync of the same ports makes."""
    a, b, c = lab.vm("a", 1), lab.vm("b", 2), lab.vm("c", 3)
    default = "de7au170-0000-4000-8000-000000000000"
    rules = EGRESS_ANY + (ingress(None, group=default), ingress(None, group=default, ethertype="IPv6"))
    ns = lab.layout.root_ns

    def handle() -> object:  # the tables' own handles: the same while they are not replaced
        return [i["table"]["handle"] for i in json.loads(netns.run(
            ns, ["nft", "-j", "list", "tables"]).stdout)["nftables"] if "table" in i]

    lab.sync(a.port(rules), members={default: [a.ip, a.ip6]})
    tables = handle()
    assert not b.ping(a.ip)
    lab.sync(a.port(rules), b.port(rules), members={default: [a.ip, a.ip6, b.ip, b.ip6]})
    assert a.ping(b.ip) and b.ping(a.ip)
    lab.sync(a.port(rules), b.port(rules), c.port(rules),
             members={default: [a.ip, a.ip6, b.ip, b.ip6, c.ip, c.ip6]})
    assert c.ping(a.ip) and a.ping(c.ip)
    # c leaves the group (no longer a member), b's address changes
    moved = dataclasses.replace(b.port(rules), fixed_ips=("10.66.0.42",))
    lab.sync(a.port(rules), moved, c.port(rules), members={default: [a.ip, a.ip6, "10.66.0.42"]})
    assert not c.ping(a.ip) and not b.ping(a.ip)  # c not a member; b spoofs its old address
    delta = _ruleset(ns)
    assert handle() == tables  # never replaced
    firewall._rendered.pop(ns)  # the next sync renders whole
    lab.sync(a.port(rules), moved, c.port(rules), members={default: [a.ip, a.ip6, "10.66.0.42"]})
    assert handle() != tables
    assert _ruleset(ns) == delta
    # a table deleted behind the agent's back: the next sync makes both again whole
    netns.run(ns, ["nft", "delete", "table", "inet", firewall.TABLE])
    lab.sync(a.port(rules), moved, c.port(rules), members={default: [a.ip, a.ip6, "10.66.0.42"]})
    assert _ruleset(ns) == delta
    assert a.ping(c.ip) and not c.ping(a.ip)  # in force: c admits a member, a admits none but them
    # again, and the next change touches both tables: its transaction is refused,
    # and the sync replaces both tables whole instead (b back on its address)
    netns.run(ns, ["nft", "delete", "table", "inet", firewall.TABLE])
    lab.sync(a.port(rules), b.port(rules), c.port(rules), members={default: [a.ip, a.ip6, b.ip, b.ip6]})
    assert b.ping(a.ip) and a.ping(b.ip) and not c.ping(a.ip)
    assert sorted(nft.list_tables(ns)) == [("bridge", firewall.TABLE), ("inet", firewall.TABLE)]


def test_egress_can_be_restricted(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    lab.serve_tcp(b, 8080)
    lab.serve_tcp(b, 8081)
    open_b = EGRESS_ANY + (ingress(None),)
    lab.sync(a.port((egress("tcp", 8080, 8080, prefix="10.66.0.0/24"),)), b.port(open_b))
    assert a.connect(b.ip, 8080)
    assert not a.connect(b.ip, 8081)
    assert not a.ping(b.ip)
    assert b.ping(a.ip) is False  # a admits nothing (no ingress rule)


def test_an_established_connection_survives_a_resync(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    lab.serve_tcp(b, 8080)
    b_rules = EGRESS_ANY + (ingress("tcp", 8080, 8080),)
    lab.sync(a.port(EGRESS_ANY), b.port(b_rules))
    conn = a.open_connection(b.ip, 8080)
    try:
        for extra in ((), (ingress("udp", 53, 53),), (ingress("icmp"),)):
            lab.sync(a.port(EGRESS_ANY), b.port(b_rules + extra))
            conn.sendall(b"still here")
            assert conn.recv(64) == b"still here"
    finally:
        conn.close()


def test_a_connection_goes_with_the_rule_that_admitted_it(lab: fwlab.Lab) -> None:
    """As Neutron's conntrack -D: removing a rule (or a remote group's member) ends the
    connections it admitted; the others carry on."""
    a, b, c = lab.vm("a", 1), lab.vm("b", 2), lab.vm("c", 3)
    lab.serve_tcp(b, 8080)
    lab.serve_tcp(b, 22)
    group = "0a0a0a0a-6709-4a2c-9e6b-00000000000c"
    web, ssh = ingress("tcp", 8080, 8080), ingress("tcp", 22, 22, group=group)
    members = {group: [a.ip, c.ip]}
    ports = (a.port(EGRESS_ANY), c.port(EGRESS_ANY))
    lab.sync(*ports, b.port(EGRESS_ANY + (web, ssh)), members=members)
    to_web, a_ssh, c_ssh = (a.open_connection(b.ip, 8080), a.open_connection(b.ip, 22),
                            c.open_connection(b.ip, 22))
    try:
        lab.sync(*ports, b.port(EGRESS_ANY + (ssh,)), members=members)  # web rule gone
        assert not fwlab.alive(to_web)
        assert fwlab.alive(a_ssh) and fwlab.alive(c_ssh)
        lab.sync(*ports, b.port(EGRESS_ANY + (ssh,)), members={group: [c.ip]})  # a leaves
        assert not fwlab.alive(a_ssh)
        assert fwlab.alive(c_ssh)
    finally:
        for conn in (to_web, a_ssh, c_ssh):
            conn.close()


def test_equal_addresses_on_two_networks_never_share_a_connection(lab: fwlab.Lab) -> None:
    """Conntrack zones per bridge: a connection on one network does not make the
    same addresses and ports on another one "established"."""
    a1, b1 = lab.vm("a1", 1), lab.vm("b1", 2)
    a2, b2 = lab.vm("a2", 3, other_network=True, host=1), lab.vm("b2", 4, other_network=True,
                                                                  host=2)
    assert (a1.ip, b1.ip) == (a2.ip, b2.ip)
    lab.serve_tcp(b1, 8080)
    lab.serve_tcp(b2, 8080)
    web = ingress("tcp", 8080, 8080)
    lab.sync(a1.port(EGRESS_ANY), b1.port(EGRESS_ANY + (web,)), a2.port(EGRESS_ANY),
             b2.port(EGRESS_ANY))
    conn = a1.open_connection(b1.ip, 8080)
    try:
        source_port = conn.getsockname()[1]
        # the same 5-tuple on the other network: b2 admits no tcp, so it is refused
        assert not a2.connect(b2.ip, 8080, source_port=source_port)
        assert fwlab.alive(conn)
    finally:
        conn.close()


def test_spoofed_source_ip_and_mac_are_dropped_and_allowed_pairs_pass(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    sink = lab.udp_socket(b, 5000)
    b_open = EGRESS_ANY + (ingress(None),)
    lab.sync(a.port(EGRESS_ANY), b.port(b_open))
    assert a.ping(b.ip)  # neighbours known both ways
    a.send_udp(a.ip, b.ip, 5000, b"real")
    assert fwlab.received(sink) == b"real"
    spoofed = "10.66.0.99"
    a.add_address(f"{spoofed}/32")
    a.send_udp(spoofed, b.ip, 5000, b"spoofed")
    assert fwlab.received(sink) is None
    # the same address as an allowed address pair of a's port passes
    lab.sync(a.port(EGRESS_ANY, pairs=((spoofed, ""),)), b.port(b_open))
    a.send_udp(spoofed, b.ip, 5000, b"pair")
    assert fwlab.received(sink) == b"pair"
    # another MAC: dropped, unless an allowed address pair names it with the address
    other_mac = "fa:16:3e:77:77:77"
    a.set_mac(other_mac)
    a.send_udp(a.ip, b.ip, 5000, b"other mac")
    assert fwlab.received(sink) is None
    assert not a.ping(b.ip)
    lab.sync(a.port(EGRESS_ANY, pairs=((a.ip, other_mac),)), b.port(b_open))
    # (a's failed ARP for b left its neighbour entry waiting to retry: try a few times)
    for _ in range(3):
        a.send_udp(a.ip, b.ip, 5000, b"paired mac")
        if fwlab.received(sink) == b"paired mac":
            break
    else:
        raise AssertionError("a's datagram from its paired MAC never arrived")


def test_port_security_off_passes_everything(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    sink = lab.udp_socket(b, 5000)
    lab.serve_tcp(b, 8081)
    lab.sync(a.port(EGRESS_ANY), b.port(port_security=False))
    assert a.ping(b.ip)
    assert a.connect(b.ip, 8081)
    a.send_udp(a.ip, b.ip, 5000, b"any port")
    assert fwlab.received(sink) == b"any port"
    assert not b.ping(a.ip)  # a itself is still filtered
    # b may send from any address once port security is off
    spoofed = "10.66.0.98"
    lab.sync(a.port(EGRESS_ANY + (ingress("udp"),)), b.port(port_security=False))
    a_sink = lab.udp_socket(a, 5001)
    b.add_address(f"{spoofed}/32")
    assert b.ping(a.ip) is False
    b.send_udp(b.ip, a.ip, 5001, b"from b")
    assert fwlab.received(a_sink) == b"from b"
    b.send_udp(spoofed, a.ip, 5001, b"spoofed by b")
    assert fwlab.received(a_sink) == b"spoofed by b"


def test_dhcp_and_slaac_reach_a_port_without_ingress_rules(lab: fwlab.Lab,
                                                          tmp_path: Path) -> None:
    """As Neutron allows them: DHCP out and its replies in, router advertisements in."""
    server = lab.vm("dhcp", 200)  # the DHCP namespace's port: not filtered
    c = lab.vm("c", 3, addresses=False)
    slaac = "fd66::f816:3eff:fe00:3"  # the address SLAAC makes of c's MAC
    lab.sync(c.port(EGRESS_ANY, fixed_ips=(c.ip, slaac), ra_sources=(server.link_local,)))
    dhcp = dnsmasq.Dnsmasq(tmp_path / "dnsmasq")
    try:
        assert dhcp.ensure(dnsmasq.DnsmasqSpec(
            name="net", interface="eth0", netns=server.ns,
            ranges=(dnsmasq.DhcpRange("v4", "10.66.0.0/24"),
                    dnsmasq.DhcpRange("v6", "fd66::/64", mode="slaac")),
            hosts=(dnsmasq.DhcpHost(c.mac, (c.ip,)),), router_advertisements=True)) == "started"
        script = tmp_path / "udhcpc.sh"
        script.write_text(DHCP_SCRIPT)
        script.chmod(0o755)
        res = netns.run(c.ns, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5",
                               "-T", "1", "-s", str(script)], timeout=30)
        assert f"lease of {c.ip} obtained" in res.stderr, res.stderr
        fwlab.nl(c.ns, lambda n: (n.set_down("eth0"), n.set_up("eth0")))  # solicits a router
        deadline = time.monotonic() + 15
        while f"{slaac}/64" not in c.addresses() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"{slaac}/64" in c.addresses()
        assert c.ping(server.ip) and c.ping(server.ip6)  # out, and the replies back in
        assert not server.ping(c.ip)  # nothing else comes in
    finally:
        dhcp.stop("net")


def test_router_advertisements_only_from_the_ports_routers(lab: fwlab.Lab) -> None:
    """A rogue RA from a stand-in instance reaches no filtered port (whether the rogue
    has port security or not, and although the victim's rules admit any ICMPv6);
    the router's RA still gives the SLAAC address and the default route."""
    router = lab.vm("router", 200)  # a router interface: not filtered
    rogue = lab.vm("rogue", 4)  # port security off: not filtered either
    filtered_rogue = lab.vm("frogue", 5)
    c = lab.vm("c", 3, addresses=False)
    bystander = lab.vm("d", 6, addresses=False)  # port security off: takes any RA
    icmp6_in = ingress("ipv6-icmp", ethertype="IPv6")
    lab.sync(c.port(EGRESS_ANY + (icmp6_in,), ra_sources=(router.link_local,)),
             filtered_rogue.port(EGRESS_ANY + (icmp6_in,), ra_sources=(router.link_local,)),
             bystander.port(port_security=False), rogue.port(port_security=False))
    rogue.send_router_advertisement("fd77::/64")
    filtered_rogue.send_router_advertisement("fd78::/64")
    router.send_router_advertisement("fd66::/64")

    def slaac(vm: fwlab.Vm, prefix: str) -> str:
        return f"{prefix}f816:3eff:fe00:{int(vm.mac[-2:], 16):x}/64"

    deadline = time.monotonic() + 10
    while slaac(c, "fd66::") not in c.addresses() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slaac(c, "fd66::") in c.addresses()
    while slaac(bystander, "fd77::") not in bystander.addresses() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the rogue's RA is a good one: the unfiltered bystander took it (and the router's)
    assert slaac(bystander, "fd77::") in bystander.addresses()
    assert slaac(bystander, "fd66::") in bystander.addresses()
    assert slaac(bystander, "fd78::") not in bystander.addresses()  # dropped at its sender
    time.sleep(0.5)
    assert [a for a in c.addresses() if a.startswith(("fd77", "fd78"))] == []
    assert [a for a in filtered_rogue.addresses() if a.startswith("fd77")] == []
    routes = netns.run(c.ns, ["busybox", "ip", "-6", "route", "show", "default"], timeout=10).stdout
    assert f"via {router.link_local}" in routes and f"via {rogue.link_local}" not in routes, routes


def test_remove_leaves_nothing(lab: fwlab.Lab) -> None:
    a, b = lab.vm("a", 1), lab.vm("b", 2)
    lab.sync(a.port(EGRESS_ANY), b.port(EGRESS_ANY))
    assert sorted(nft.list_tables(lab.layout.root_ns)) == [
        ("bridge", firewall.TABLE), ("inet", firewall.TABLE)]
    assert not a.ping(b.ip)
    firewall.remove(lab.layout)
    assert nft.list_tables(lab.layout.root_ns) == []
    assert a.ping(b.ip)
    firewall.remove(lab.layout)  # idempotent
    netns.delete(lab.layout.root_ns)
    firewall.remove(lab.layout)  # no namespace: nothing to do


def test_sync_of_100_ports_with_5_rules_each(lab: fwlab.Lab) -> None:
    """The agent resyncs on every change: measured here (printed with -s)."""
    group = "9e0a0a0a-6709-4a2c-9e6b-000000000009"
    ports = [firewall.FirewallPort(
        port_id=f"{n:08x}-be4c-4000-8000-{n:012x}", device=f"tap{n:08x}-be",
        mac=f"fa:16:3e:01:{n // 256:02x}:{n % 256:02x}",
        fixed_ips=(f"10.67.{n // 256}.{n % 256}", f"fd67::{n:x}"), allowed_address_pairs=(),
        port_security_enabled=True,
        rules=EGRESS_ANY + (ingress("tcp", 22, 22), ingress("icmp"),
                            ingress(None, group=group))) for n in range(100)]
    members = {group: [ip for p in ports for ip in p.fixed_ips]}
    times = []
    for i in range(5):
        changed = ports[:-1] + [ports[-1].__class__(**{**ports[-1].__dict__, "rules": (
            ports[-1].rules + (ingress("udp", 1000 + i, 1000 + i),))})]
        start = time.perf_counter()
        firewall.sync(lab.layout, changed, members)
        times.append(time.perf_counter() - start)
    print(f"\nfirewall.sync, 100 ports x 5 rules: first {times[0] * 1000:.1f} ms, "
          f"then median {sorted(times[1:])[len(times[1:]) // 2] * 1000:.1f} ms")
    assert sorted(times[1:])[1] < 1.0
