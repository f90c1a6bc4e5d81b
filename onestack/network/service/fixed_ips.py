"""A port's fixed IPs: which subnets and addresses a create or update asks for.

Neutron's rules: without ``fixed_ips`` a port gets one address from the first
IPv4 subnet that has one free (and likewise DHCPv6-stateful), plus its EUI-64
address on every SLAAC / DHCPv6-stateless subnet; an entry names a subnet, an
address, or both; SLAAC subnets are joined implicitly (except by router
ports) and take no explicit address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest
from onestack.network.models import IPAllocation, Network, Subnet
from onestack.network.service import ipam
from onestack.network.service.attributes import NOT_SPECIFIED
from onestack.network.service.errors import (
    InvalidInput,
    IpAddressGenerationFailure,
    SubnetNotFound,
    _Templated,
)

ROUTER_OWNERS = ipam.ROUTER_PORT_OWNERS


class InvalidIpForNetwork(_Templated, BadRequest):
    template = "IP address %(ip_address)s is not a valid IP for any of the subnets on the specified network."


class InvalidIpForSubnet(_Templated, BadRequest):
    template = "IP address %(ip_address)s is not a valid IP for the specified subnet."


@dataclass
class Wanted:
    subnet: Subnet
    address: str | None  # None: the next free one
    free: bool = False  # the address was found free with the subnet locked, in this transaction


_SUBNETS_OF = select(Subnet).where(Subnet.network_id == bindparam("net")).order_by(Subnet.created_at, Subnet.id)
_SUBNETS_OF_LOCKED = _SUBNETS_OF.with_for_update()


def subnets_of(session: Session, network_id: str, *, lock: bool = False) -> list[Subnet]:
    """The network's subnets (locked for the transaction with ``lock``: the IPAM of
    the network is then ours until the commit, on PostgreSQL as on SQLite)."""
    stmt = _SUBNETS_OF_LOCKED if lock else _SUBNETS_OF
    return list(session.execute(stmt, {"net": network_id}).scalars())


def _resolve(session: Session, network: Network, subnets: list[Subnet], entry: dict[str, Any],
             owner: str) -> Wanted:
    """One requested fixed IP: the subnet it names or the one holding its address."""
    if not subnets:
        raise InvalidInput("IP allocation requires subnets for network")
    address = entry.get("ip_address")
    if address is not None:
        address = str(ipam.ipaddress.ip_address(address))
    if "subnet_id" in entry:
        subnet = next((s for s in subnets if s.id == entry["subnet_id"]), None)
        if subnet is None:
            if session.get(Subnet, entry["subnet_id"]) is None:
                raise SubnetNotFound(subnet_id=entry["subnet_id"])
            raise InvalidInput(
                f"Failed to create port on network {network.id}, because fixed_ips included "
                f"invalid subnet {entry['subnet_id']}"
            )
        if address is not None and not ipam.check_subnet_ip(subnet.cidr, address, owner):
            raise InvalidIpForSubnet(ip_address=address)
        return Wanted(subnet, address)
    if address is None:
        raise InvalidInput("IP allocation requires subnet_id or ip_address")
    for subnet in subnets:
        if ipam.check_subnet_ip(subnet.cidr, address, owner):
            return Wanted(subnet, address)
    raise InvalidIpForNetwork(ip_address=address)


def _auto_address(subnet: Subnet, mac: str, owner: str) -> bool:
    return ipam.is_auto_address(subnet) and owner not in ROUTER_OWNERS


def plan(session: Session, network: Network, requested: Any, owner: str, mac: str) -> list[Wanted]:
    """The addresses a new port asks for (``requested`` is its ``fixed_ips``)."""
    subnets = subnets_of(session, network.id, lock=True)
    wanted: list[Wanted] = []
    if requested is NOT_SPECIFIED or requested is None:
        for version, stateful in ((4, True), (6, True)):
            candidates = [
                s for s in subnets if s.ip_version == version and not ipam.is_auto_address(s)
            ] if stateful else []
            if candidates:
                wanted.append(_first_with_room(session, network, candidates))
    else:
        for entry in requested:
            item = _resolve(session, network, subnets, entry, owner)
            if item.address is not None and _auto_address(item.subnet, mac, owner):
                raise InvalidInput(
                    f"IPv6 address {item.address} cannot be directly assigned to a port on subnet "
                    f"{item.subnet.id} as the subnet is configured for automatic addresses"
                )
            wanted.append(item)
    named = {w.subnet.id for w in wanted}
    for subnet in subnets:
        if _auto_address(subnet, mac, owner) and subnet.id not in named:
            wanted.append(Wanted(subnet, ipam.eui64(subnet.cidr, mac)))
        elif _auto_address(subnet, mac, owner):
            for w in wanted:
                if w.subnet.id == subnet.id and w.address is None:
                    w.address = ipam.eui64(subnet.cidr, mac)
    return wanted


def _first_with_room(session: Session, network: Network, subnets: list[Subnet]) -> Wanted:
    """The next free address of the first subnet that has one (each subnet locked)."""
    for subnet in subnets:  # locked by plan()
        found = ipam.next_free(session, subnet)
        if found is not None:
            return Wanted(subnet, found, free=True)
    raise IpAddressGenerationFailure(net_id=network.id)


def assign(session: Session, port_id: str, wanted: list[Wanted]) -> list[dict[str, str]]:
    """Write the allocations (locking each subnet first, unless its address was
    found free under the lock already); the port's ``fixed_ips``."""
    out = []
    for item in wanted:
        if item.free and item.address is not None:
            ipam.insert(session, item.subnet, port_id, item.address)
            address = item.address
        else:
            subnet = ipam.lock(session, item.subnet.id) or item.subnet
            address = ipam.allocate(session, subnet, port_id, address=item.address)
        out.append({"subnet_id": item.subnet.id, "ip_address": address})
    return out


def current(session: Session, port_id: str) -> list[dict[str, str]]:
    return [
        {"subnet_id": sid, "ip_address": ip}
        for sid, ip in session.execute(
            select(IPAllocation.subnet_id, IPAllocation.ip_address).where(IPAllocation.port_id == port_id)
        )
    ]


def change(session: Session, network: Network, port_id: str, requested: list[dict[str, Any]],
           owner: str, mac: str) -> bool:
    """Make the port's allocations what ``requested`` asks (an update); True if any changed.

    Addresses asked for again are kept; a subnet named without an address keeps
    the port's address there (or gets a new one); the rest are released, except
    SLAAC addresses of ordinary ports, which stay as long as their subnet.
    """
    subnets = subnets_of(session, network.id)
    existing = current(session, port_id)
    keep: list[dict[str, str]] = []
    new: list[Wanted] = []
    remaining = list(existing)
    items = [_resolve(session, network, subnets, e, owner) for e in requested]
    for item in items:
        if item.address is not None:
            match = next((e for e in remaining if e["ip_address"] == item.address
                          and e["subnet_id"] == item.subnet.id), None)
            if match is not None:
                remaining.remove(match)
                keep.append(match)
            elif _auto_address(item.subnet, mac, owner):
                raise InvalidInput(
                    f"IPv6 address {item.address} cannot be directly assigned to a port on subnet "
                    f"{item.subnet.id} as the subnet is configured for automatic addresses"
                )
            else:
                new.append(item)
    for item in items:
        if item.address is None:
            match = next((e for e in remaining if e["subnet_id"] == item.subnet.id), None)
            if match is not None:
                remaining.remove(match)
                keep.append(match)
            elif _auto_address(item.subnet, mac, owner):
                new.append(Wanted(item.subnet, ipam.eui64(item.subnet.cidr, mac)))
            else:
                new.append(item)
    released = [
        e for e in remaining
        if not (owner not in ROUTER_OWNERS and any(
            s.id == e["subnet_id"] and ipam.is_auto_address(s) for s in subnets))
    ]
    for e in released:
        session.execute(
            delete(IPAllocation).where(
                IPAllocation.subnet_id == e["subnet_id"], IPAllocation.ip_address == e["ip_address"]
            )
        )
    session.flush()
    assign(session, port_id, new)
    return bool(released or new)
