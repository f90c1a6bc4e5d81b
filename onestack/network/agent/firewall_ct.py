"""Connections the security groups no longer allow, to be forgotten after a sync.

The firewall accepts established connections before any rule (as Neutron's
does), so a connection admitted by a rule outlives the rule until its conntrack
entry goes. Neutron's firewall drivers delete those entries when a rule or a
remote group member is removed; here, after a :func:`firewall.sync` that took
something away, every tracked connection in the zone of a filtered port is
checked against the rules now in force, and those no port would admit any more
are forgotten. Connections still allowed are left alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onestack.network.agent import secgroups as fw

if TYPE_CHECKING:
    from onestack.host.ctzones import Connection

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
# DHCP as the firewall always allows it: (proto, sport, dport) out of and into a port
DHCP_OUT = {(17, 68, 67), (17, 546, 547)}
DHCP_IN = {(17, 67, 68), (17, 547, 546)}


@dataclass(frozen=True)
class Applied:
    """What one sync put in force, to tell whether the next one takes anything away."""

    rules: Mapping[str, frozenset[fw.SecurityGroupRule]]  # by device, filtered ports only
    members: Mapping[str, frozenset[str]]
    unfiltered: frozenset[str]  # devices listed with port security off

    @staticmethod
    def of(ports: Sequence[fw.FirewallPort], members: Mapping[str, Sequence[str]]) -> Applied:
        # ports of the same groups share one rules tuple: one set for all of them
        sets: dict[int, frozenset[fw.SecurityGroupRule]] = {}
        for p in ports:
            if id(p.rules) not in sets:
                sets[id(p.rules)] = frozenset(p.rules)
        return Applied(
            rules={p.device: sets[id(p.rules)] for p in ports if p.port_security_enabled},
            members={g: frozenset(m) for g, m in members.items()},
            unfiltered=frozenset(p.device for p in ports if not p.port_security_enabled))


def takes_away(before: Applied | None, after: Applied) -> bool:
    """Whether ``after`` may admit less than ``before``: a rule or a group member
    gone, or port security turned on. Nothing known before (the agent started):
    assume so. A port new to this host has no connections to check."""
    if before is None:
        return True
    compared: set[tuple[int, int]] = set()  # ports share their sets: each pair once
    for device, rules in after.rules.items():
        if device in before.unfiltered:
            return True
        had = before.rules.get(device)
        if had is None or had is rules or (id(had), id(rules)) in compared:
            continue
        if not rules >= had:
            return True
        compared.add((id(had), id(rules)))
    return any(not after.members.get(g, frozenset()) >= m for g, m in before.members.items())


def stale(connections: Sequence[Connection], ports: Sequence[fw.FirewallPort],
          members: Mapping[str, Sequence[str]], zones: Mapping[str, int]) -> list[Connection]:
    """The connections a filtered port at either end no longer admits. ``zones``:
    each port device's conntrack zone (its bridge's); a port whose bridge is not
    known here has no connections here."""
    owners: dict[int, list[tuple[fw.FirewallPort, list[Net]]]] = {}
    for port in ports:
        if port.port_security_enabled and port.device in zones:
            nets = [net for _, net in fw.allowed_sources(port)]
            owners.setdefault(zones[port.device], []).append((port, nets))
    groups = {g: [_net(a) for a in addrs] for g, addrs in members.items()}
    out = []
    for conn in connections:
        here = owners.get(conn.zone)
        if not here:
            continue
        src = ipaddress.ip_address(conn.src)
        dst = ipaddress.ip_address(conn.dst)
        senders = [p for p, nets in here if any(src in n for n in nets)]
        receivers = [p for p, nets in here if any(dst in n for n in nets)]
        if senders and not any(admits(p, "egress", conn, dst, groups) for p in senders):
            out.append(conn)
        elif receivers and not any(admits(p, "ingress", conn, src, groups) for p in receivers):
            out.append(conn)
    return out


def admits(port: fw.FirewallPort, direction: str, conn: Connection,
           remote: ipaddress.IPv4Address | ipaddress.IPv6Address,
           groups: Mapping[str, Sequence[Net | None]]) -> bool:
    """Whether ``port`` lets ``conn`` out (egress) or in (ingress)."""
    if (conn.proto, conn.sport, conn.dport) in (DHCP_OUT if direction == "egress" else DHCP_IN):
        return True
    return any(rule_admits(r, conn, remote, groups) for r in port.rules
               if r.direction == direction)


def rule_admits(rule: fw.SecurityGroupRule, conn: Connection,
                remote: ipaddress.IPv4Address | ipaddress.IPv6Address,
                groups: Mapping[str, Sequence[Net | None]]) -> bool:
    """The Python reading of :func:`firewall.rule_match` for one connection."""
    if (rule.ethertype == "IPv6") != (conn.family == 6):
        return False
    try:
        number = fw.protocol_number(rule)
    except ValueError:
        return False
    if number is not None:
        if number != conn.proto:
            return False
        low, high = rule.port_range_min, rule.port_range_max
        if number in fw.PORT_HEADERS and (low is not None or high is not None):
            low = low if low is not None else high
            high = high if high is not None else low
            if conn.dport is None or not (low or 0) <= conn.dport <= (high or 65535):
                return False
        elif number in (fw.ICMP, fw.ICMPV6) and low is not None:
            if conn.icmp_type != low or (high is not None and conn.icmp_code != high):
                return False
    if rule.remote_group_id is not None:
        return any(n is not None and remote in n for n in groups.get(rule.remote_group_id, ()))
    if rule.remote_ip_prefix:
        net = _net(rule.remote_ip_prefix)
        return net is not None and remote in net
    return True


def _net(text: str) -> Net | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
