"""The security group rule attribute converters (Neutron's security group extension):
protocol names or numbers, ports, ethertype, remote IP prefix - each with its own error."""

from __future__ import annotations

import ipaddress
from typing import Any

from onestack.common.errors import BadRequest
from onestack.network.service.errors import _Templated

PROTOCOLS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
    "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
NUMBER_TO_NAME = {
    "51": "ah", "33": "dccp", "8": "egp", "50": "esp", "47": "gre", "0": "ip", "1": "icmp",
    "2": "igmp", "4": "ipip", "41": "ipv6-encap", "44": "ipv6-frag", "58": "ipv6-icmp",
    "59": "ipv6-nonxt", "60": "ipv6-opts", "43": "ipv6-route", "89": "ospf", "113": "pgm",
    "46": "rsvp", "132": "sctp", "6": "tcp", "17": "udp", "136": "udplite", "112": "vrrp",
}
SUPPORTED = (None, "any", *PROTOCOLS)
PORT_PROTOCOLS = ("dccp", "sctp", "tcp", "udp", "udplite")
PORT_PROTOCOL_NUMBERS = (33, 132, 6, 17, 136)
IPV6_ONLY = (
    "ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
    "41", "44", "58", "59", "60", "43",
)


class SecurityGroupRuleInvalidProtocol(_Templated, BadRequest):
    template = (
        "Security group rule protocol %(protocol)s not supported. Only protocol values "
        "%(values)s and integer representations [0 to 255] are supported."
    )


class SecurityGroupRuleInvalidEtherType(_Templated, BadRequest):
    template = "Security group rule for ethertype '%(ethertype)s' not supported. Allowed values are %(values)s."


class SecurityGroupInvalidPortValue(_Templated, BadRequest):
    template = "Invalid value for port %(port)s"


class InvalidCIDR(_Templated, BadRequest):
    template = "Invalid CIDR %(input)s given as IP prefix."


def convert_protocol(value: Any) -> str | None:
    if value is None or value == "any":
        return None
    values = repr(SUPPORTED)
    if isinstance(value, bool):
        raise SecurityGroupRuleInvalidProtocol(protocol=value, values=values)
    try:
        number = int(value)
    except (ValueError, TypeError):
        if isinstance(value, str) and value.lower() in SUPPORTED:
            return value.lower()
        raise SecurityGroupRuleInvalidProtocol(protocol=value, values=values) from None
    if 0 <= number <= 255:
        return str(value)
    raise SecurityGroupRuleInvalidProtocol(protocol=value, values=values)


def convert_port(value: Any) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value).strip())
        if 0 <= number <= 65535 and not isinstance(value, bool):
            return number
    except (ValueError, TypeError):
        pass
    raise SecurityGroupInvalidPortValue(port=value)


def convert_ethertype(value: Any) -> str:
    if isinstance(value, str):
        for ethertype in ("IPv4", "IPv6"):
            if ethertype.lower() == value.lower():
                return ethertype
    raise SecurityGroupRuleInvalidEtherType(ethertype=value, values=["IPv4", "IPv6"])


def convert_prefix(value: Any) -> str | None:
    if not value:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(ipaddress.ip_interface(value.strip()))
    except ValueError:
        raise InvalidCIDR(input=value) from None


