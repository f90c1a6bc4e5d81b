"""IP address management: allocation pools, and addresses for ports.

Correct under concurrency by construction: an allocation is a row whose
primary key is (subnet, address), written in the port's write transaction
after the subnet row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite has one writer). Two ports never get one address, and an address
comes back only when the row holding it is deleted.

Picking a free address is cheap however full the subnet is: each subnet
keeps a cursor (``next_ip``) just past the last address handed out; the
search walks the pools from there in batches (one indexed ``IN`` query per
64 candidates), wrapping around, and only a nearly full subnet falls back to
reading its allocations once. Addresses therefore come in order
(10.0.0.2, .3, ...) and a released one is reused when the cursor comes
round again. IPv6 SLAAC / DHCPv6-stateless subnets give each port its
EUI-64 address (from the MAC) instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict
from onestack.network.models import IPAllocation, Subnet
from onestack.network.service.errors import (
    GatewayConflictWithAllocationPools,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    _Templated,
)

Pool = tuple[int, int]  # first and last address, inclusive, as integers
BATCH = 64
ROUTER_PORT_OWNERS = (
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
    "network:router_gateway",
)
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")


class InvalidAllocationPool(_Templated, BadRequest):
    template = "The allocation pool %(pool)s is not valid."


class OutOfBoundsAllocationPool(_Templated, BadRequest):
    template = "The allocation pool %(pool)s spans beyond the subnet cidr %(subnet_cidr)s."


class OverlappingAllocationPools(_Templated, Conflict):
    template = "Found overlapping allocation pools: %(pool_1)s %(pool_2)s for subnet %(subnet_cidr)s."


def net_of(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def text(value: int, version: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def number(address: str) -> int:
    return int(ipaddress.ip_address(address))


def range_text(pool: Pool, version: int) -> str:
    """netaddr's ``IPRange`` rendering: ``10.0.0.2-10.0.0.254``."""
    return f"{text(pool[0], version)}-{text(pool[1], version)}"


def usable_range(cidr: str) -> Pool:
    """The addresses pools may cover: not the network address, nor v4 broadcast."""
    net = net_of(cidr)
    first, last = int(net.network_address), int(net.broadcast_address)
    if first == last:
        return first, last
    if net.version == 4:
        return (first + 1, last - 1) if net.prefixlen <= 30 else (first, last)
    return first + 1, last


def generate_pools(cidr: str, gateway: str | None) -> list[Pool]:
    """The default pools: the usable range without the gateway address."""
    start, end = usable_range(cidr)
    pools = [(start, end)]
    if gateway:
        gw = number(gateway)
        if start <= gw <= end:
            pools = [p for p in ((start, gw - 1), (gw + 1, end)) if p[0] <= p[1]]
    return pools


def pools_json(pools: Sequence[Pool], version: int) -> list[dict[str, str]]:
    return [{"start": text(a, version), "end": text(b, version)} for a, b in pools]


def pools_of(subnet: Any) -> list[Pool]:
    return sorted((number(p["start"]), number(p["end"])) for p in subnet.allocation_pools or [])


def validate_pools(raw: list[dict[str, str]], cidr: str, gateway: str | None) -> list[Pool]:
    """Requested pools: right version, inside the subnet, ordered, disjoint, no gateway."""
    net = net_of(cidr)
    first, last = usable_range(cidr)
    pools: list[Pool] = []
    for entry in raw:
        try:
            start, end = ipaddress.ip_address(entry["start"]), ipaddress.ip_address(entry["end"])
        except ValueError:
            raise InvalidAllocationPool(pool=entry) from None
        if start.version != net.version or end.version != net.version or int(start) > int(end):
            raise InvalidAllocationPool(pool=entry)
        pools.append((int(start), int(end)))
    for span in pools:
        if span[0] < first or span[1] > last:
            raise OutOfBoundsAllocationPool(pool=range_text(span, net.version), subnet_cidr=cidr)
    for i, left in enumerate(pools):
        for right in pools[i + 1 :]:
            if left[0] <= right[1] and right[0] <= left[1]:
                raise OverlappingAllocationPools(
                    pool_1=range_text(left, net.version),
                    pool_2=range_text(right, net.version),
                    subnet_cidr=cidr,
                )
    if gateway:
        gw = number(gateway)
        for span in pools:
            if span[0] <= gw <= span[1]:
                raise GatewayConflictWithAllocationPools(
                    ip_address=gateway, pool=range_text(span, net.version)
                )
    return sorted(pools)


def check_subnet_ip(cidr: str, address: str, owner: str = "") -> bool:
    """Is ``address`` usable on the subnet (not its network or v4 broadcast address)?"""
    net = net_of(cidr)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version != net.version or ip not in net:
        return False
    if net.version == 4:
        return ip != net.network_address and ip != net.broadcast_address
    return owner in (*ROUTER_PORT_OWNERS, "") or ip != net.network_address


def gateway_invalid(cidr: str, gateway: str) -> bool:
    """Neutron's rule: a gateway inside a v4 subnet may not be its network or broadcast."""
    net = net_of(cidr)
    ip = ipaddress.ip_address(gateway)
    return ip in net and net.version == 4 and ip in (net.network_address, net.broadcast_address)


def is_auto_address(subnet: Any) -> bool:
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in AUTO_ADDRESS_MODES


def eui64(cidr: str, mac: str) -> str:
    """The SLAAC address of ``mac`` in a /64 (RFC 4291: flip the U/L bit, insert ff:fe)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    suffix = int.from_bytes(bytes(iid), "big")
    return str(ipaddress.IPv6Address(int(net_of(cidr).network_address) | suffix))


# --- allocation ---------------------------------------------------------------------------


def _walk(pools: Sequence[Pool], cursor: int) -> Iterator[int]:
    """Every pool address once, starting at ``cursor`` and wrapping around."""
    if not pools:
        return
    index = next((i for i, p in enumerate(pools) if p[1] >= cursor), 0)
    start = max(cursor, pools[index][0]) if pools[index][1] >= cursor else pools[index][0]
    count = len(pools)
    for step in range(count):
        first, last = pools[(index + step) % count]
        yield from range(start if step == 0 else first, last + 1)
    yield from range(pools[index][0], start)


def _batches(numbers: Iterator[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for value in numbers:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_LOCK = select(Subnet).where(Subnet.id == bindparam("id")).with_for_update()
_TAKEN_AMONG = select(IPAllocation.ip_address).where(
    IPAllocation.subnet_id == bindparam("subnet"), IPAllocation.ip_address.in_(bindparam("ips", expanding=True))
)
_INSERT = cast(Table, IPAllocation.__table__).insert()


def lock(session: Session, subnet_id: str) -> Subnet | None:
    """The subnet row, locked for the rest of the transaction (PostgreSQL)."""
    return session.execute(_LOCK, {"id": subnet_id}).scalars().first()


def taken(session: Session, subnet_id: str, address: str) -> bool:
    return session.get(IPAllocation, (subnet_id, address)) is not None


def next_free(session: Session, subnet: Subnet) -> str | None:
    """The next free pool address after the subnet's cursor, or None when full."""
    pools = pools_of(subnet)
    if not pools:
        return None
    version = subnet.ip_version
    cursor = number(subnet.next_ip) if subnet.next_ip else pools[0][0]
    walk = _walk(pools, cursor)
    for tries, batch in enumerate(_batches(walk, BATCH)):
        if tries == 4:
            break
        texts = [text(n, version) for n in batch]
        used = set(session.execute(_TAKEN_AMONG, {"subnet": subnet.id, "ips": texts}).scalars())
        for value, address in zip(batch, texts, strict=True):
            if address not in used:
                subnet.next_ip = text(value + 1, version)
                return address
    # Nearly full: read the allocations once and walk past them.
    used_numbers = {
        number(a)
        for a in session.scalars(select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet.id))
    }
    for value in _walk(pools, cursor):
        if value not in used_numbers:
            subnet.next_ip = text(value + 1, version)
            return text(value, version)
    return None


def allocate(
    session: Session,
    subnet: Subnet,
    port_id: str,
    *,
    address: str | None = None,
) -> str:
    """Give ``port_id`` an address of ``subnet`` (``address``, or the next free one)."""
    if address is None:
        found = next_free(session, subnet)
        if found is None:
            raise IpAddressGenerationFailure(net_id=subnet.network_id)
        address = found
    elif taken(session, subnet.id, address):
        raise IpAddressAlreadyAllocated(ip=address, subnet_id=subnet.id)
    insert(session, subnet, port_id, address)
    return address


def insert(session: Session, subnet: Any, port_id: str, address: str) -> None:
    """The allocation row itself (its primary key refuses a second holder)."""
    session.execute(
        _INSERT, {"subnet_id": subnet.id, "ip_address": address, "port_id": port_id, "network_id": subnet.network_id}
    )


def availability(session: Session, subnet: Any) -> dict[str, int]:
    """Used and total addresses of a subnet (for network-ip-availabilities)."""
    net = net_of(subnet.cidr)
    pools = pools_of(subnet)
    used_addresses = list(
        session.scalars(select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet.id))
    )
    in_pool = sum(1 for a in used_addresses if any(p[0] <= number(a) <= p[1] for p in pools))
    total_in_subnet = net.num_addresses - (2 if net.version == 4 and net.prefixlen <= 30 else 0)
    if net.version == 6:
        total_in_subnet = net.num_addresses - 1
    return {
        "total_ips_in_subnet": total_in_subnet,
        "total_ips_in_allocation_pool": sum(b - a + 1 for a, b in pools),
        "used_ips_in_subnet": len(used_addresses),
        "used_ips_in_allocation_pool": in_pool,
    }
