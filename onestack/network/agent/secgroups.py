"""The security group facts the firewall works from: a port, a rule, Neutron's
protocol names, and the addresses a port may send from (pure, no effects).

``firewall`` re-exports :class:`FirewallPort` and :class:`SecurityGroupRule`,
the types of its interface (``firewall.FirewallPort``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

# Neutron's protocol names (neutron_lib.constants.IP_PROTOCOL_MAP).
PROTOCOLS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
    "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
# Protocols with ports, by number: nftables' header names.
PORT_HEADERS = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp", 136: "udplite"}
ICMP, ICMPV6 = 1, 58


@dataclass(frozen=True)
class SecurityGroupRule:
    direction: str                   # "ingress" | "egress"
    ethertype: str                   # "IPv4" | "IPv6"
    protocol: str | None             # name or number as the API shows it, None = any
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class FirewallPort:
    port_id: str
    device: str                      # layout.tap(port_id): the device on the bridge in layout.root_ns
    mac: str
    fixed_ips: tuple[str, ...]
    allowed_address_pairs: tuple[tuple[str, str], ...]   # (ip_address or CIDR, mac)
    port_security_enabled: bool
    rules: tuple[SecurityGroupRule, ...]                 # all rules of all its groups
    # the link-local addresses allowed to send this port router advertisements (its
    # network's routers: the ports holding its IPv6 subnets' gateway_ip, and the DHCP
    # port, whose dnsmasq announces the prefixes); RAs from anywhere else are dropped
    ra_sources: tuple[str, ...] = ()


def protocol_number(rule: SecurityGroupRule) -> int | None:
    """The rule's IP protocol number; None for any. As Neutron's iptables driver
    reads it: ``icmp`` in an IPv6 rule is ICMPv6, and protocol 0 (``0``, ``ip``,
    ``hopopt``) is any protocol."""
    proto = rule.protocol
    if proto is None or str(proto).lower() in ("", "any"):
        return None
    text = str(proto).lower()
    number = PROTOCOLS[text] if text in PROTOCOLS else int(text)
    if rule.ethertype == "IPv6" and number == ICMP:
        number = ICMPV6
    if not 0 <= number <= 255:
        raise ValueError(f"invalid protocol {proto!r}")
    return number or None


def allowed_sources(port: FirewallPort) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """(MAC, network) pairs the port may send from: its fixed IPs and IPv6 link-local
    address with its own MAC, and each allowed address pair (with the pair's MAC,
    the port's if none, and that MAC's link-local address)."""
    mac = port.mac.lower()
    out: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    wanted = [(mac, ip) for ip in port.fixed_ips]
    wanted += [((pair_mac or port.mac).lower(), ip) for ip, pair_mac in port.allowed_address_pairs]
    macs: list[str] = []
    for m, ip in wanted:
        if not MAC_RE.fullmatch(m):
            log.warning("port %s: MAC %r ignored", port.port_id, m)
            continue
        try:
            out.append((m, ipaddress.ip_network(ip, strict=False)))
        except ValueError:
            log.warning("port %s: address %r ignored", port.port_id, ip)
            continue
        if m not in macs:
            macs.append(m)
    if mac not in macs and MAC_RE.fullmatch(mac):
        macs.insert(0, mac)
    for m in macs:
        out.append((m, ipaddress.ip_network(link_local(m))))
    return list(dict.fromkeys(out))


def link_local(mac: str) -> str:
    """The IPv6 link-local address of a MAC (modified EUI-64)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(eui)))
