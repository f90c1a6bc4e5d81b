"""Security groups and anti-spoofing of this host's ports, in nftables.

Designed as Neutron's iptables firewall driver on a Linux bridge, in nftables
(docs/network.md, "Security groups"). Everything lives in the cloud's root
namespace (``layout.root_ns``), in two tables of the same name replaced
together in one transaction by every :func:`sync`:

``bridge`` table (sees the bridge ports: ``iifname``/``oifname`` are taps)
    ``prerouting`` (priority -200): a frame from a filtered port (set ``ports``)
    gets the port's number as its packet mark (map ``port_numbers``), then
    anti-spoofing against the sets ``macs``, ``sources4`` and ``sources6``
    (``ifname . ether_addr [. address]``: the port's fixed IPs, its IPv6
    link-local address and its allowed address pairs, each pair with its own
    MAC) in the chains ``spoof4``, ``arp4``, ``spoof6``; DHCP discovery from
    0.0.0.0 and IPv6 DAD/MLD from :: allowed; DHCP/DHCPv6 server replies and
    router advertisements from the port dropped.
    ``forward`` (priority -200, before br_netfilter's own hook at -1): the mark
    becomes the destination port's number (0: not filtered).
``inet`` table (bridged IP seen through br_netfilter: conntrack works here)
    ``zone`` (prerouting, raw priority): conntrack zone per bridge (its
    ifindex), so equal addresses on two networks never share a connection.
    ``prerouting`` (after conntrack) applies the source port's egress rules,
    ``forward`` the destination port's ingress rules: unmarked (not a filtered
    port) accepted, established/related accepted, invalid dropped, ICMPv6
    ND/MLD (and RS out) accepted, router advertisements to a port only from its
    ``ra_sources`` (set ``ra_sources``: mark . address), others dropped whatever
    the rules say; then a verdict map on the mark (``egress``,
    ``ingress``) jumps to the port's rules, a chain shared by every port with
    the same rules: DHCP as Neutron allows it, the security group rules, and a
    final drop (default deny). Remote groups are matched against named sets of
    their members' addresses, one per group and IP version.

The ``bridge`` family has no conntrack on this kernel (``nf_conntrack_bridge``
is not built), hence the two tables and the mark between them. Ports not
listed, or with port security off, are in no map: they pass unfiltered.
Conntrack entries outlive a table's replacement, so connections the new rules
still allow carry on; after a sync that took something away, the connections no
rule admits any more are forgotten (``firewall_ct``, as Neutron's ``conntrack -D``).
The interface's types and the pure facts (protocols, a port's allowed sources)
are in ``secgroups``.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence

from onestack.host import nft
from onestack.host.errors import HostError
from onestack.host.nft import Json, Table
from onestack.network.agent import firewall_ct, fwdelta, nftsets
from onestack.network.agent.layout import Layout
from onestack.network.agent.nftsets import Memo, split_addresses
from onestack.network.agent.nftsets import element as _element
from onestack.network.agent.secgroups import (  # the interface's types live there
    ICMP,
    ICMPV6,
    PORT_HEADERS,
    PROTOCOLS,
    FirewallPort,
    SecurityGroupRule,
    allowed_sources,
    link_local,
    protocol_number,
)

__all__ = ["FirewallPort", "SecurityGroupRule", "PROTOCOLS", "link_local", "protocol_number",
           "remove", "render", "rule_match", "sync"]
log = logging.getLogger(__name__)

# What the last sync of each root namespace put in force (to tell what a sync takes
# away), and what its tables hold (to change only what differs at the next one).
_applied: dict[str, firewall_ct.Applied] = {}
_rendered: dict[str, fwdelta.Rendered] = {}
_applied_lock = threading.Lock()

TABLE = "onestack_sg"
MAX_PORTS = 0xFFFFFFFF

# ICMPv6 a port may always send / receive (Neutron's ICMPV6_ALLOWED_EGRESS_TYPES and
# ICMPV6_ALLOWED_INGRESS_TYPES): MLD, RS, NS, NA. Router advertisements are received
# only from the port's ``ra_sources`` (Neutron's RA rule from the gateway's link-local
# address), whatever the security group rules say.
ICMPV6_EGRESS = (130, 131, 132, 143, 133, 135, 136)
ICMPV6_INGRESS = (130, 131, 132, 135, 136)
ICMPV6_FROM_UNSPECIFIED = (131, 135, 143)  # MLD reports and DAD before an address
ROUTER_ADVERTISEMENT = 134


# --- effects ---------------------------------------------------------------------------


def sync(layout: Layout, ports: Sequence[FirewallPort],
         group_members: Mapping[str, Sequence[str]]) -> None:
    """Makes the cloud's firewall exactly these ports, in one atomic nft transaction
    in ``layout.root_ns`` (which must exist); then, if it took anything away (a
    rule, a group member, a newly filtered port), forgets the tracked connections
    no rule admits any more. Blocking: call it from a thread."""
    from onestack.host import bridge_fw

    ports = list(ports)
    now = firewall_ct.Applied.of(ports, group_members)
    with _applied_lock:
        before = _applied.pop(layout.root_ns, None)
        previous = _rendered.pop(layout.root_ns, None)
    result: list[fwdelta.Rendered] = []

    def build(bridges: Mapping[str, int]) -> list[Table] | str:
        """The change as element deltas from the last sync's state when it can be,
        else both tables whole (then the next sync may be a delta again)."""
        from onestack.common import gcpause

        numbered = _numbered(ports, previous.numbers if previous is not None else None)
        with gcpause.paused():
            _elements.turn()
            nftsets.turn()
            after = state(numbered, group_members, bridges)
        result.append(after)
        commands = fwdelta.diff(previous, after) if previous is not None else None
        # a table gone behind our back: both made again whole (a delta touching both
        # fails without it, and then is replaced by a full render; look for others:
        # listing the tables costs as much as a small transaction)
        if commands is not None and fwdelta.families(commands) != {"bridge", "inet"} \
                and not fwdelta.tables_there():
            commands = None
        if commands is None:
            return render(ports, group_members, bridges, after.numbers)
        if not commands:
            return []
        import orjson

        return orjson.dumps({"nftables": commands}).decode()

    def tidy(bridges: Mapping[str, int], masters: Mapping[str, str]) -> None:
        if firewall_ct.takes_away(before, now):
            try:
                forget_stale(ports, group_members, bridges, masters)
            except Exception:  # the rules are in force; only old connections linger
                log.exception("could not forget the connections the security groups "
                              "no longer allow")

    try:
        bridge_fw.apply(layout.root_ns, build, after=tidy)
    except HostError:
        if previous is None:
            raise
        # the tables are not what the last sync left (changed behind our back): whole
        log.warning("firewall delta refused; the tables are replaced whole", exc_info=True)
        previous = None
        result.clear()
        bridge_fw.apply(layout.root_ns, build, after=tidy)
    with _applied_lock:
        _applied[layout.root_ns] = now
        if result:
            _rendered[layout.root_ns] = result[-1]


def forget_stale(ports: Sequence[FirewallPort], group_members: Mapping[str, Sequence[str]],
                 bridges: Mapping[str, int], masters: Mapping[str, str]) -> int:
    """In the root namespace's thread: deletes the conntrack entries of connections
    that no filtered port at either end admits any more (as Neutron's
    ``conntrack -D``); how many went."""
    from onestack.host import ctzones

    zones = {dev: zone_of(bridges[bridge]) for dev, bridge in masters.items()}
    found = ctzones.connections(set(zones.values()))
    doomed = firewall_ct.stale(found, ports, group_members, zones)
    return ctzones.forget(doomed) if doomed else 0


def remove(layout: Layout) -> None:
    """The cloud's firewall gone (both tables); nothing if there is none."""
    from onestack.host import bridge_fw

    bridge_fw.delete(layout.root_ns, [("bridge", TABLE), ("inet", TABLE)])
    with _applied_lock:
        _applied.pop(layout.root_ns, None)
        _rendered.pop(layout.root_ns, None)


# --- rendering (pure) ----------------------------------------------------------------------


def render(ports: Sequence[FirewallPort], group_members: Mapping[str, Sequence[str]],
           bridges: Mapping[str, int], numbers: Mapping[str, int] | None = None) -> list[Table]:
    """The ``bridge`` and ``inet`` tables for these ports; ``bridges`` maps the
    namespace's bridges to their ifindex (conntrack zones); ``numbers``: the
    ports' numbers (marks) of the sync before, kept (``fwdelta.numbering``).

    Per-port facts are set elements (cheap to load); rules are shared: one pair of
    chains per distinct set of security group rules, whatever the number of ports."""
    from onestack.common import gcpause

    numbered = _numbered(ports, numbers)
    # Nothing built here is cyclic: without the pause, the collector walks the
    # growing document again every few thousand objects (half of a 10,000-port render).
    with gcpause.paused():
        _elements.turn()
        nftsets.turn()
        return [_bridge_table(numbered), _inet_table(numbered, group_members, bridges)]


def _numbered(ports: Sequence[FirewallPort], numbers: Mapping[str, int] | None
              ) -> list[tuple[int, FirewallPort]]:
    filtered = sorted({p.device: p for p in ports if p.port_security_enabled}.values(),
                      key=lambda p: p.device)
    if len(filtered) > MAX_PORTS:
        raise ValueError(f"at most {MAX_PORTS} filtered ports per host")
    return list(zip(fwdelta.numbering([p.device for p in filtered], numbers), filtered, strict=True))


def state(numbered: Sequence[tuple[int, FirewallPort]], group_members: Mapping[str, Sequence[str]],
          bridges: Mapping[str, int]) -> fwdelta.Rendered:
    """What ``render`` of these numbered ports puts in the tables, per port (for
    ``fwdelta.diff``); the per-port elements and chains come from the same caches."""
    out = fwdelta.Rendered()
    ra_texts: dict[tuple[str, ...], tuple[str, ...]] = {}
    chains: dict[int, tuple[tuple[str, tuple[SecurityGroupRule, ...]], ...]] = {}
    for n, port in numbered:
        macs, v4, v6 = _port_elements(port)
        pair = chains.get(id(port.rules))
        if pair is None:
            pair = chains[id(port.rules)] = tuple(
                (_chain_of(d, port.rules)[1], _chain_of(d, port.rules)[0]) for d in ("egress", "ingress"))
        if port.ra_sources not in ra_texts:
            ra_texts[port.ra_sources] = tuple(str(a) for a in _ra_addresses(port))
        out.ports[port.device] = fwdelta.PortFacts(n, macs, v4, v6, pair[0][0], pair[1][0],
                                                   ra_texts[port.ra_sources])
    out.chains = frozenset(name for pair in chains.values() for name, _rules in pair)
    groups = sorted({r.remote_group_id for pair in chains.values() for _name, rules in pair
                     for r in rules if r.remote_group_id is not None})
    for group in groups:
        v4s, v6s = split_addresses(group_members.get(group, ()))
        out.groups[group_set(group, 4)] = tuple(v4s)
        out.groups[group_set(group, 6)] = tuple(v6s)
    out.zone_rule = _zone_rule(bridges)
    return out


def _zone_rule(bridges: Mapping[str, int]) -> Json | None:
    zones = sorted([name, zone_of(index)] for name, index in bridges.items())
    if not zones:
        return None
    return nft.rule("zone", {"mangle": {"key": nft.ct("zone"), "value": {"map": {
        "key": nft.meta("iifname"), "data": {"set": zones}}}}})


def _bridge_table(numbered: Sequence[tuple[int, FirewallPort]]) -> Table:
    """Marks and anti-spoofing, where the bridge ports are seen."""
    l2 = Table("bridge", TABLE)
    macs: list[Json] = []
    sources4: list[Json] = []
    sources6: list[Json] = []
    for _, port in numbered:
        port_macs, port_v4, port_v6 = _port_elements(port)
        macs.extend(port_macs)
        sources4.extend(port_v4)
        sources6.extend(port_v6)
    l2.add(
        nft.named_set("ports", "ifname", [p.device for _, p in numbered]),
        _named_map("port_numbers", "ifname", "mark", [[p.device, n] for n, p in numbered]),
        nft.named_set("macs", ["ifname", "ether_addr"], macs),
        nft.named_set("sources4", ["ifname", "ether_addr", "ipv4_addr"], sources4,
                      flags=["interval"]),
        nft.named_set("sources6", ["ifname", "ether_addr", "ipv6_addr"], sources6,
                      flags=["interval"]),
        nft.chain("prerouting", hook="prerouting", priority=-200, policy="accept"),
        nft.chain("forward", hook="forward", priority=-200, policy="accept"),
        nft.chain("spoof4"), nft.chain("arp4"), nft.chain("spoof6"),
    )
    iifname, ether_src = nft.meta("iifname"), nft.payload("ether", "saddr")
    l2.add(
        nft.rule("prerouting", nft.match(iifname, "@ports", op="!="), nft.accept()),
        nft.rule("prerouting", _set_mark({"map": {"key": iifname, "data": "@port_numbers"}})),
        nft.rule("prerouting", nft.match({"concat": [iifname, ether_src]}, "@macs", op="!="),
                 nft.drop(), comment="MAC spoofing"),
        nft.rule("prerouting", _vmap(nft.payload("ether", "type"), [
            ("ip", nft.jump("spoof4")), ("arp", nft.jump("arp4")),
            ("ip6", nft.jump("spoof6"))])),
        # IPv4: DHCP discovery before an address; no DHCP server; own sources only
        nft.rule("spoof4", nft.match(nft.payload("ip", "saddr"), "0.0.0.0"),
                 nft.match(nft.payload("ip", "daddr"), "255.255.255.255"), *_udp(68, 67),
                 nft.accept()),
        nft.rule("spoof4", *_udp(67, 68), nft.drop(), comment="DHCP server"),
        nft.rule("spoof4", nft.match({"concat": [iifname, ether_src, nft.payload("ip", "saddr")]},
                                     "@sources4"), nft.accept()),
        nft.rule("spoof4", nft.drop(), comment="IP spoofing"),
        # ARP: the sender is one of the port's (MAC, IPv4) pairs, or a probe from 0.0.0.0
        nft.rule("arp4", nft.match({"concat": [iifname, nft.payload("arp", "saddr ether")]},
                                   "@macs"),
                 nft.match(nft.payload("arp", "saddr ip"), "0.0.0.0"), nft.accept()),
        nft.rule("arp4", nft.match({"concat": [iifname, nft.payload("arp", "saddr ether"),
                                               nft.payload("arp", "saddr ip")]}, "@sources4"),
                 nft.accept()),
        nft.rule("arp4", nft.drop(), comment="ARP spoofing"),
        # IPv6: no router advertisement, no DHCPv6 server; DAD and MLD from ::
        nft.rule("spoof6", _icmpv6_types([ROUTER_ADVERTISEMENT]), nft.drop(),
                 comment="router advertisement"),
        nft.rule("spoof6", *_udp(547, 546), nft.drop(), comment="DHCPv6 server"),
        nft.rule("spoof6", nft.match(nft.payload("ip6", "saddr"), "::"),
                 nft.match(nft.payload("ip6", "daddr"), nft.prefix("ff02::/16")),
                 _icmpv6_types(ICMPV6_FROM_UNSPECIFIED), nft.accept()),
        nft.rule("spoof6", nft.match({"concat": [iifname, ether_src, nft.payload("ip6", "saddr")]},
                                     "@sources6"), nft.accept()),
        nft.rule("spoof6", nft.drop(), comment="IPv6 spoofing"),
        # the mark now names the destination (the source's rules were applied in
        # the inet table's prerouting): 0 if it is not filtered
        nft.rule("forward", _set_mark(0)),
        nft.rule("forward", _set_mark({"map": {"key": nft.meta("oifname"),
                                               "data": "@port_numbers"}})),
    )
    return _ordered(l2)




_elements = Memo()  # port facts -> its set elements


def _port_elements(port: FirewallPort) -> tuple[tuple[Json, ...], tuple[Json, ...], tuple[Json, ...]]:
    """The port's elements of the ``macs``, ``sources4`` and ``sources6`` sets
    (remembered: a port that did not change costs nothing at the next sync)."""
    key = (port.device, port.mac, port.fixed_ips, port.allowed_address_pairs)
    found = _elements.get(key)
    if found is None:
        found = _compute_elements(port)
        _elements.put(key, found)
    return found  # type: ignore[return-value]


def _compute_elements(port: FirewallPort) -> tuple[tuple[Json, ...], tuple[Json, ...], tuple[Json, ...]]:
    pairs = allowed_sources(port)
    macs: list[Json] = []
    v4: list[Json] = []
    v6: list[Json] = []
    for mac in sorted({m for m, _ in pairs}):
        macs.append({"concat": [port.device, mac]})
        nets = [n for m, n in pairs if m == mac]
        for net in ipaddress.collapse_addresses(n for n in nets if n.version == 4):
            v4.append({"concat": [port.device, mac, _element(net)]})
        for net6 in ipaddress.collapse_addresses(n for n in nets if n.version == 6):
            v6.append({"concat": [port.device, mac, _element(net6)]})
    return tuple(macs), tuple(v4), tuple(v6)


def _ra_addresses(port: FirewallPort) -> list[ipaddress.IPv6Address]:
    out = []
    for text in port.ra_sources:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            log.warning("port %s: router advertisement source %r ignored", port.port_id, text)
            continue
        if isinstance(address, ipaddress.IPv6Address):
            out.append(address)
    return sorted(set(out))


def _inet_table(numbered: Sequence[tuple[int, FirewallPort]],
                group_members: Mapping[str, Sequence[str]], bridges: Mapping[str, int]) -> Table:
    """Connection state and the security group rules."""
    l3 = Table("inet", TABLE)
    chains: dict[tuple[str, tuple[SecurityGroupRule, ...]], str] = {}
    egress: list[list[object]] = []
    ingress: list[list[object]] = []
    # ports of the same groups share one rules tuple (states.firewall_ports): looked up
    # by identity first, as hashing 10,000 tuples of rules is most of this loop
    jumps: dict[int, tuple[Json, Json]] = {}
    for n, port in numbered:
        pair = jumps.get(id(port.rules))
        if pair is None:
            out = []
            for direction in ("egress", "ingress"):
                rules, name = _chain_of(direction, port.rules)
                chains[direction, rules] = name
                out.append(nft.jump(name))
            pair = jumps[id(port.rules)] = (out[0], out[1])
        egress.append([n, pair[0]])
        ingress.append([n, pair[1]])
    groups = sorted({r.remote_group_id for (_, rules) in chains for r in rules
                     if r.remote_group_id is not None})
    for group in groups:
        v4, v6 = split_addresses(group_members.get(group, ()))
        l3.add(nft.named_set(group_set(group, 4), "ipv4_addr", v4, flags=["interval"]),
               nft.named_set(group_set(group, 6), "ipv6_addr", v6, flags=["interval"]))
    ra_texts: dict[tuple[str, ...], list[str]] = {}
    for _, port in numbered:
        if port.ra_sources not in ra_texts:
            ra_texts[port.ra_sources] = [str(a) for a in _ra_addresses(port)]
    ra_sources = [{"concat": [n, text]} for n, port in numbered for text in ra_texts[port.ra_sources]]
    l3.add(_named_map("egress", "mark", "verdict", egress),
           _named_map("ingress", "mark", "verdict", ingress),
           nft.named_set("ra_sources", ["mark", "ipv6_addr"], ra_sources),
           nft.chain("zone", hook="prerouting", priority=-300, policy="accept"),
           nft.chain("prerouting", hook="prerouting", priority=0, policy="accept"),
           nft.chain("forward", hook="forward", priority=0, policy="accept"))
    zone_rule = _zone_rule(bridges)
    if zone_rule is not None:
        l3.add(zone_rule)
    mark = nft.meta("mark")
    for hook, rules_map in (("prerouting", "@egress"), ("forward", "@ingress")):
        icmpv6 = ICMPV6_EGRESS if hook == "prerouting" else ICMPV6_INGRESS
        l3.add(
            nft.rule(hook, nft.match(mark, 0), nft.accept(), comment="not a filtered port"),
            nft.rule(hook, nft.ct_state("established", "related"), nft.accept()),
            nft.rule(hook, nft.ct_state("invalid"), nft.drop()),
            nft.rule(hook, _nfproto("ipv6"), _l4proto(ICMPV6), _icmpv6_types(sorted(icmpv6)),
                     nft.accept(), comment="neighbour discovery, MLD"),
        )
        if hook == "forward":  # to the port: router advertisements from its routers only
            l3.add(
                nft.rule(hook, _nfproto("ipv6"), _l4proto(ICMPV6),
                         _icmpv6_types([ROUTER_ADVERTISEMENT]),
                         nft.match({"concat": [mark, nft.payload("ip6", "saddr")]}, "@ra_sources"),
                         nft.accept(), comment="router advertisement from a router of the port"),
                nft.rule(hook, _nfproto("ipv6"), _l4proto(ICMPV6),
                         _icmpv6_types([ROUTER_ADVERTISEMENT]), nft.drop(),
                         comment="router advertisement not from a router of the port"),
            )
        l3.add(nft.rule(hook, {"vmap": {"key": mark, "data": rules_map}}))
    for (direction, rules), name in chains.items():
        l3.add(*_rules_chain_items(direction, name, rules))
    return _ordered(l3)


@functools.lru_cache(maxsize=8192)
def _chain_of(direction: str, rules: tuple[SecurityGroupRule, ...]
              ) -> tuple[tuple[SecurityGroupRule, ...], str]:
    """A port's rules of one direction, deduplicated in a canonical order, and the
    name of the chain holding them."""
    unique = tuple(sorted(set(_unique(rules, direction)), key=repr))
    return unique, _rules_chain(direction, unique)


@functools.lru_cache(maxsize=1024)
def _rules_chain_items(direction: str, name: str,
                       rules: tuple[SecurityGroupRule, ...]) -> tuple[Json, ...]:
    return tuple(egress_chain(name, rules) if direction == "egress"
                 else ingress_chain(name, rules))


def _rules_chain(direction: str, rules: tuple[SecurityGroupRule, ...]) -> str:
    """A chain's name from its rules: the same rules keep the same chain."""
    digest = hashlib.sha256(repr(rules).encode()).hexdigest()[:12]
    return f"{direction}-{digest}"


def _ordered(table: Table) -> Table:
    """Chains, then sets and maps (a verdict map names chains), then the rules
    that name them; stable otherwise."""
    table.items.sort(key=lambda item: 0 if "chain" in item else 2 if "rule" in item else 1)
    return table


def zone_of(ifindex: int) -> int:
    """A bridge's conntrack zone: 1..65535, from its ifindex (0 is the default zone)."""
    return (ifindex - 1) % 0xFFFF + 1


def group_set(group_id: str, version: int) -> str:
    return f"group{version}-{group_id}"


# --- security group rules (inet table) ----------------------------------------------------


def egress_chain(name: str, rules: Iterable[SecurityGroupRule]) -> list[Json]:
    """From a port (prerouting: the destination's ingress rules come in forward):
    DHCP client traffic, then the egress rules, else drop."""
    return _port_chain(name, [(68, 67), (546, 547)], "DHCP client", rules)


def ingress_chain(name: str, rules: Iterable[SecurityGroupRule]) -> list[Json]:
    """To a port: DHCP replies, then the ingress rules, else drop."""
    return _port_chain(name, [(67, 68), (547, 546)], "DHCP server", rules)


def _port_chain(name: str, dhcp: list[tuple[int, int]], dhcp_comment: str,
                 rules: Iterable[SecurityGroupRule]) -> list[Json]:
    """A chain: DHCP's UDP port pairs accepted, then each expressible rule, else drop."""
    items: list[Json] = [
        nft.chain(name),
        nft.rule(name, _udp_pairs(dhcp), nft.accept(), comment=dhcp_comment),
    ]
    for rule in rules:
        match = _checked_match(rule)
        if match is not None:
            items.append(nft.rule(name, *match, nft.accept()))
    items.append(nft.rule(name, nft.drop()))
    return items


def _checked_match(rule: SecurityGroupRule) -> list[Json] | None:
    """A rule's conditions, or None (logged) for one that cannot be expressed: it
    admits nothing, and the other ports' firewall is still applied."""
    try:
        return rule_match(rule)
    except (ValueError, TypeError) as exc:
        log.warning("security group rule %s skipped: %s", rule, exc)
        return None


def _unique(rules: Iterable[SecurityGroupRule], direction: str) -> list[SecurityGroupRule]:
    return list(dict.fromkeys(r for r in rules if r.direction == direction))


def rule_match(rule: SecurityGroupRule) -> list[Json]:
    """The conditions of one security group rule (the verdict is the chain's)."""
    version = 6 if rule.ethertype == "IPv6" else 4
    family = "ip6" if version == 6 else "ip"
    out: list[Json] = [_nfproto("ipv6" if version == 6 else "ipv4")]
    number = protocol_number(rule)
    if number is not None:
        out.append(_l4proto(number))
        low, high = rule.port_range_min, rule.port_range_max
        if number in PORT_HEADERS and (low is not None or high is not None):
            low = low if low is not None else high
            high = high if high is not None else low
            if (low, high) != (1, 65535):
                out.append(nft.match(nft.payload(PORT_HEADERS[number], "dport"),
                                     low if low == high else {"range": [low, high]}))
        elif number in (ICMP, ICMPV6) and low is not None:
            header = "icmp" if number == ICMP else "icmpv6"
            out.append(nft.match(nft.payload(header, "type"), low))
            if high is not None:
                out.append(nft.match(nft.payload(header, "code"), high))
    field = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_group_id is not None:
        out.append(nft.match(nft.payload(family, field),
                             nft.setref(group_set(rule.remote_group_id, version))))
    elif rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != version:
            raise ValueError(f"remote_ip_prefix {rule.remote_ip_prefix} is not {rule.ethertype}")
        out.extend(_address(family, field, net))
    return out


# --- small JSON pieces ------------------------------------------------------------------------


def _vmap(key: Json, entries: Sequence[tuple[object, Json]]) -> Json:
    return {"vmap": {"key": key, "data": {"set": [[k, v] for k, v in entries]}}}


def _set_mark(value: Json | int) -> Json:
    return {"mangle": {"key": nft.meta("mark"), "value": value}}


def _named_map(name: str, key: str, value: str, elements: Sequence[Sequence[object]]) -> Json:
    body: Json = {"name": name, "type": key, "map": value}
    if elements:
        body["elem"] = [list(e) for e in elements]
    return {"map": body}


def _udp_pairs(pairs: Sequence[tuple[int, int]]) -> Json:
    return nft.match({"concat": [nft.payload("udp", "sport"), nft.payload("udp", "dport")]},
                     {"set": [{"concat": list(p)} for p in pairs]})


def _nfproto(name: str) -> Json:
    return nft.match(nft.meta("nfproto"), name)


def _l4proto(number: int) -> Json:
    return nft.match(nft.meta("l4proto"), number)


def _udp(sport: int, dport: int) -> list[Json]:
    return [nft.match(nft.payload("udp", "sport"), sport),
            nft.match(nft.payload("udp", "dport"), dport)]


def _icmpv6_types(types: Sequence[int]) -> Json:
    right: object = types[0] if len(types) == 1 else {"set": list(types)}
    return nft.match(nft.payload("icmpv6", "type"), right)


def _address(family: str, field: str,
             net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[Json]:
    """A match on an address field; nothing for a /0 (any address)."""
    if net.prefixlen == 0:
        return []
    if net.prefixlen == net.max_prefixlen:
        return [nft.match(nft.payload(family, field), str(net.network_address))]
    return [nft.match(nft.payload(family, field), nft.prefix(str(net)))]


