"""Subnets: IPv4 and IPv6 (SLAAC, DHCPv6), pools, gateway, DNS, host routes.

Validation follows Neutron's ``_validate_subnet`` in its order and words; a
subnet may come from a subnet pool (any prefix of a given length, or a
requested one). Creating an IPv6 SLAAC subnet gives the network's existing
ports their EUI-64 address on it, as Neutron does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict
from onestack.network import dataplane
from onestack.network.models import IPAllocation, Network, Port, Subnet
from onestack.network.service import ipam, networks, quotas, subnetpools
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
from onestack.network.service.common import (
    attr_rules,
    bump,
    bump_ports,
    check_revision,
    drop_tags,
    finish,
    new_uuid,
    one,
    owner,
    parse_create,
    parse_update,
    std,
    std_columns,
)
from onestack.network.service.errors import (
    HTTPNotFound,
    InvalidInput,
    SubnetInUse,
    SubnetNotFound,
    _Templated,
    bad_request,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, fetch, load_tags, where
from onestack.network.service.resources import SUBNETS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
)


class DNSNameServersExhausted(_Templated, BadRequest):
    template = (
        "Unable to complete operation for %(subnet_id)s. "
        "The number of DNS nameservers exceeds the limit %(quota)s."
    )


class HostRoutesExhausted(_Templated, BadRequest):
    template = (
        "Unable to complete operation for %(subnet_id)s. "
        "The number of host routes exceeds the limit %(quota)s."
    )


class GatewayIpInUse(_Templated, Conflict):
    template = "Current gateway ip %(ip_address)s already in use by port %(port_id)s. Unable to update."


COLUMNS = {
    "id": Subnet.id,
    "name": Subnet.name,
    "ip_version": Subnet.ip_version,
    "network_id": Subnet.network_id,
    "subnetpool_id": Subnet.subnetpool_id,
    "cidr": Subnet.cidr,
    "gateway_ip": Subnet.gateway_ip,
    "tenant_id": Subnet.project_id,
    "project_id": Subnet.project_id,
    "enable_dhcp": Subnet.enable_dhcp,
    "ipv6_ra_mode": Subnet.ipv6_ra_mode,
    "ipv6_address_mode": Subnet.ipv6_address_mode,
    "shared": Network.shared,
    "router:external": Network.external,
    "description": Subnet.description,
    "created_at": Subnet.created_at,
    "updated_at": Subnet.updated_at,
    "revision_number": Subnet.revision_number,
}
SORT = {"tenant_id": "project_id"}


def visible(caller: Caller) -> list[Any]:
    if caller.sees_all:
        return []
    nets = select(Network.id).where(
        or_(Network.shared.is_(True), Network.external.is_(True), Network.project_id == caller.project_id)
    )
    return [or_(Subnet.project_id == caller.project_id, Subnet.network_id.in_(nets))]


def view(row: Subnet, tags: list[str], external: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        **owner(row.project_id),
        "network_id": row.network_id,
        "ip_version": row.ip_version,
        "subnetpool_id": row.subnetpool_id,
        "enable_dhcp": row.enable_dhcp,
        "ipv6_ra_mode": row.ipv6_ra_mode,
        "ipv6_address_mode": row.ipv6_address_mode,
        "gateway_ip": row.gateway_ip,
        "cidr": row.cidr,
        "allocation_pools": list(row.allocation_pools or []),
        "host_routes": list(row.host_routes or []),
        "dns_nameservers": list(row.dns_nameservers or []),
        "router:external": external,
        **std(row, tags),
    }


def target(item: dict[str, Any], network: Network | None = None, *, shared: bool = False,
           net_owner: str = "") -> dict[str, Any]:
    out = dict(item)
    out["network:project_id"] = network.project_id if network is not None else net_owner
    out["shared"] = network.shared if network is not None else shared
    return out


def views(session: Session, rows: Sequence[Subnet]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(wire shape, policy target) of each subnet."""
    tags = load_tags(session, [r.id for r in rows])
    net_ids = list({r.network_id for r in rows})
    nets = {
        n.id: n for n in session.scalars(select(Network).where(Network.id.in_(net_ids)))
    } if net_ids else {}
    out = []
    for r in rows:
        network = nets.get(r.network_id)
        item = view(r, tags.get(r.id, []), bool(network and network.external))
        out.append((item, target(item, network)))
    return out


def load(session: Session, caller: Caller, subnet_id: str, *, lock: bool = False) -> tuple[Subnet, dict[str, Any]]:
    stmt = select(Subnet).where(Subnet.id == subnet_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None:
        raise SubnetNotFound(subnet_id=subnet_id)
    item, tgt = views(session, [row])[0]
    if not caller.can("get_subnet", tgt):
        raise SubnetNotFound(subnet_id=subnet_id)
    return row, tgt


def list_subnets(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = visible(caller)
        stmt = select(Subnet).join(Network, Network.id == Subnet.network_id).where(
            *vis, *where(q, COLUMNS, id_column=Subnet.id)
        )
        page = fetch(s, stmt, Subnet, q, sort_columns=SORT, visible=vis,
                     not_found=lambda m: SubnetNotFound(subnet_id=m))
        pairs = [p for p in views(s, [r[0] for r in page.rows]) if caller.can("get_subnet", p[1])]
    return finish(caller, SUBNETS, [p[0] for p in pairs], q.fields, [p[1] for p in pairs]), page


def show(net: Net, caller: Caller, subnet_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        row, tgt = load(s, caller, subnet_id)
        return one(caller, SUBNETS, views(s, [row])[0][0], fields, tgt)


# --- validation ------------------------------------------------------------------------------


def _version_of(addr: str) -> int:
    return ipaddress.ip_interface(addr).version if "/" in addr else ipaddress.ip_address(addr).version


def _check_version(version: int, addr: str, name: str) -> None:
    if _version_of(addr) != version:
        raise InvalidInput(f"{name} '{addr}' does not match the ip_version '{version}'")


def validate(values: dict[str, Any], cur: Subnet | None = None, *, subnet_id: str = "new subnet") -> None:
    """Neutron's ``_validate_subnet``: the checks a create or an update needs."""
    version = values["ip_version"]
    cidr: Any = values.get("cidr")
    has_cidr = cidr not in (None, NOT_SPECIFIED)
    net = None
    if has_cidr:
        _check_version(version, cidr, "cidr")
        net = ipaddress.ip_network(cidr, strict=False)
    dhcp_was = bool(cur.enable_dhcp) if cur is not None else False
    if net is not None and version == 6 and int(net.network_address) == 0:
        raise InvalidInput("IPv6 subnet '::' is not supported")
    if net is not None and values.get("enable_dhcp") and not dhcp_was:
        if (version == 4 and net.prefixlen > 30) or (version == 6 and net.prefixlen > 126):
            raise InvalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
        if net.is_multicast:
            raise InvalidInput("Multicast IP subnet is not supported if enable_dhcp is True")
        if net.is_loopback:
            raise InvalidInput("Loopback IP subnet is not supported if enable_dhcp is True")
        if version == 4 and int(net.network_address) == 0:
            raise InvalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
    gateway = values.get("gateway_ip", NOT_SPECIFIED)
    if gateway not in (None, NOT_SPECIFIED):
        _check_version(version, gateway, "gateway_ip")
        if has_cidr and ipam.gateway_invalid(cidr, gateway):
            raise InvalidInput("Gateway is not valid on subnet")
    dns = values.get("dns_nameservers", NOT_SPECIFIED)
    if dns is not NOT_SPECIFIED:
        if len(dns) > MAX_DNS_NAMESERVERS:
            raise DNSNameServersExhausted(subnet_id=subnet_id, quota=MAX_DNS_NAMESERVERS)
        for server in dns:
            _check_version(version, server, "dns_nameserver")
    routes = values.get("host_routes", NOT_SPECIFIED)
    if routes is not NOT_SPECIFIED:
        if len(routes) > MAX_HOST_ROUTES:
            raise HostRoutesExhausted(subnet_id=subnet_id, quota=MAX_HOST_ROUTES)
        for route in routes:
            _check_version(version, route["nexthop"], "nexthop")
            _check_version(version, route["destination"], "destination")
    ra = values.get("ipv6_ra_mode", NOT_SPECIFIED)
    mode = values.get("ipv6_address_mode", NOT_SPECIFIED)
    ra_set, mode_set = ra not in (None, NOT_SPECIFIED), mode not in (None, NOT_SPECIFIED)
    if version == 4:
        if ra_set:
            raise InvalidInput("ipv6_ra_mode is not valid when ip_version is 4")
        if mode_set:
            raise InvalidInput("ipv6_address_mode is not valid when ip_version is 4")
        return
    if cur is not None:
        if "enable_dhcp" in values and not values["enable_dhcp"] and (
            cur.ipv6_ra_mode or cur.ipv6_address_mode
        ):
            raise InvalidInput("Cannot disable enable_dhcp with ipv6 attributes set")
        return
    if (ra_set or mode_set) and not values.get("enable_dhcp"):
        raise InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
    if ra_set and mode_set and ra != mode:
        raise InvalidInput(
            f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{mode}' is not valid. "
            "If both attributes are set, they must be the same value"
        )
    if net is not None and mode in ipam.AUTO_ADDRESS_MODES and net.prefixlen != 64:
        raise InvalidInput(
            f"Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address "
            "format, which requires the prefix to be /64"
        )


def _check_overlap(session: Session, network: Network, cidr: str) -> None:
    new = ipaddress.ip_network(cidr, strict=False)
    if new.prefixlen == 0:
        raise InvalidInput("0 is not allowed as CIDR prefix length")
    for other in session.scalars(select(Subnet.cidr).where(Subnet.network_id == network.id)):
        old = ipaddress.ip_network(other, strict=False)
        if old.version == new.version and old.overlaps(new):
            raise InvalidInput(
                f"Requested subnet with cidr: {cidr} for network: {network.id} overlaps with another subnet"
            )


def check_network_owner(caller: Caller, network: Network, project_id: str) -> None:
    """Neutron's ownership check for ports and subnets: a non-admin may only use
    another project's network when it is shared (else "not found")."""
    if caller.is_admin or caller.is_service or network.shared:
        return
    if network.project_id != project_id:
        raise HTTPNotFound()


# --- writes ----------------------------------------------------------------------------------


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, SUBNETS, b) for b in bodies]
    with net.writing() as s:
        rows = [_create_one(net, caller, s, p) for p in parsed]
        return finish(caller, SUBNETS, [v[0] for v in views(s, rows)])


def _create_one(net: Net, caller: Caller, s: Session, p: Parsed) -> Subnet:
    network = networks.load(s, caller, p["network_id"], lock=True)
    check_network_owner(caller, network, p["project_id"])
    tgt = target(p.values, network)
    tgt["router:external"] = network.external
    caller.enforce("create_subnet", tgt, attr_rules("create_subnet", SUBNETS, p, True))
    values = dict(p.values)
    pool = subnetpools.pool_for_subnet(s, caller, values)
    if values["cidr"] is NOT_SPECIFIED and pool is None:
        raise bad_request("subnets", "a subnetpool must be specified in the absence of a cidr")
    validate(values)
    subnetpools.check_affinity(s, network.id, values["ip_version"], pool.id if pool is not None else None)
    if pool is not None:
        values["cidr"] = subnetpools.allocate_prefix(s, pool, values)
    cidr = str(ipaddress.ip_network(values["cidr"], strict=False))
    _check_overlap(s, network, cidr)
    gateway = values["gateway_ip"]
    if gateway is NOT_SPECIFIED:
        first = ipaddress.ip_network(cidr).network_address + 1
        gateway = str(first) if ipam.check_subnet_ip(cidr, str(first), "network:router_interface") else None
    if gateway is not None and values["gateway_ip"] is not NOT_SPECIFIED:
        _check_version(values["ip_version"], gateway, "gateway_ip")
    if values["allocation_pools"] is NOT_SPECIFIED:
        pools = ipam.generate_pools(cidr, gateway)
    else:
        pools = ipam.validate_pools(values["allocation_pools"], cidr, gateway)
    quotas.check(net, s, values["project_id"], {"subnet": 1})
    version = values["ip_version"]
    row = Subnet(
        id=new_uuid(),
        project_id=values["project_id"],
        network_id=network.id,
        name=values["name"],
        ip_version=version,
        cidr=cidr,
        gateway_ip=gateway,
        allocation_pools=ipam.pools_json(pools, version),
        dns_nameservers=list(values["dns_nameservers"]) if values["dns_nameservers"] is not NOT_SPECIFIED
        and values["dns_nameservers"] else None,
        host_routes=list(values["host_routes"]) if values["host_routes"] is not NOT_SPECIFIED
        and values["host_routes"] else None,
        enable_dhcp=values["enable_dhcp"],
        ipv6_ra_mode=None if values["ipv6_ra_mode"] is NOT_SPECIFIED else values["ipv6_ra_mode"],
        ipv6_address_mode=None if values["ipv6_address_mode"] is NOT_SPECIFIED else values["ipv6_address_mode"],
        subnetpool_id=pool.id if pool is not None else None,
        **std_columns(values["description"]),
    )
    s.add(row)
    s.flush()
    if ipam.is_auto_address(row):
        _add_auto_addresses(s, row)
    bump(network)
    dataplane.record(s, dataplane.Change(dataplane.SUBNET, dataplane.CREATED, row.id, network.id))
    return row


def _add_auto_addresses(s: Session, subnet: Subnet) -> None:
    """A new SLAAC / DHCPv6-stateless subnet: each port (not router ports) gets its address."""
    ports = s.execute(
        select(Port.id, Port.mac_address).where(
            Port.network_id == subnet.network_id, ~Port.device_owner.in_(ROUTER_INTERFACE_OWNERS)
        )
    ).all()
    changed = []
    for port_id, mac in ports:
        address = ipam.eui64(subnet.cidr, mac)
        if not ipam.taken(s, subnet.id, address):
            s.add(IPAllocation(subnet_id=subnet.id, ip_address=address, port_id=port_id,
                               network_id=subnet.network_id))
            changed.append(port_id)
            dataplane.record(s, dataplane.Change(dataplane.PORT, dataplane.UPDATED, port_id,
                                                 subnet.network_id))
    bump_ports(s, changed)


def update(
    net: Net, caller: Caller, subnet_id: str, body: dict[str, Any], if_match: int | None = None
) -> dict[str, Any]:
    p = parse_update(caller, SUBNETS, body)
    with net.writing() as s:
        row, tgt = load(s, caller, subnet_id, lock=True)
        caller.enforce_or_hide(
            "update_subnet", {**tgt, **p.values}, "get_subnet", SubnetNotFound(subnet_id=subnet_id),
            attr_rules("update_subnet", SUBNETS, p, False),
        )
        check_revision(row, if_match)
        values = {"ip_version": row.ip_version, "cidr": row.cidr, **p.values}
        validate(values, row, subnet_id=row.id)
        gateway = p.get("gateway_ip", NOT_SPECIFIED)
        if gateway is not NOT_SPECIFIED and gateway != row.gateway_ip and row.gateway_ip:
            holder = s.scalar(
                select(IPAllocation.port_id)
                .join(Port, Port.id == IPAllocation.port_id)
                .where(
                    IPAllocation.subnet_id == row.id,
                    IPAllocation.ip_address == row.gateway_ip,
                    Port.device_owner.in_(ROUTER_INTERFACE_OWNERS),
                )
            )
            if holder:
                raise GatewayIpInUse(ip_address=row.gateway_ip, port_id=holder)
        new_gateway = row.gateway_ip if gateway is NOT_SPECIFIED else gateway
        if "allocation_pools" in p.values:
            pools = ipam.validate_pools(p["allocation_pools"], row.cidr, new_gateway)
            row.allocation_pools = ipam.pools_json(pools, row.ip_version)
        elif gateway is not NOT_SPECIFIED and new_gateway:
            ipam.validate_pools(row.allocation_pools or [], row.cidr, new_gateway)
        if gateway is not NOT_SPECIFIED:
            row.gateway_ip = gateway
        for attr in ("name", "description", "enable_dhcp"):
            if attr in p.values:
                setattr(row, attr, p[attr])
        if "dns_nameservers" in p.values:
            row.dns_nameservers = list(p["dns_nameservers"]) or None
        if "host_routes" in p.values:
            row.host_routes = list(p["host_routes"]) or None
        bump(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.SUBNET, dataplane.UPDATED, row.id, row.network_id))
        item, tgt = views(s, [row])[0]
        return one(caller, SUBNETS, item, (), tgt)


def delete(net: Net, caller: Caller, subnet_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row, tgt = load(s, caller, subnet_id, lock=True)
        caller.enforce_or_hide("delete_subnet", tgt, "get_subnet", SubnetNotFound(subnet_id=subnet_id))
        check_revision(row, if_match)
        held = s.execute(
            select(Port.id, Port.device_owner)
            .join(IPAllocation, IPAllocation.port_id == Port.id)
            .where(IPAllocation.subnet_id == row.id)
        ).all()
        holders = [owner_ for _id, owner_ in held]
        if any(owner_ in ROUTER_INTERFACE_OWNERS for owner_ in holders):
            raise SubnetInUse(subnet_id=row.id)
        if not ipam.is_auto_address(row) and any(
            owner_ not in networks.AUTO_DELETE_OWNERS for owner_ in holders
        ):
            raise SubnetInUse(subnet_id=row.id)
        network = s.get(Network, row.network_id)
        drop_tags(s, [row.id])
        bump_ports(s, [port_id for port_id, _owner in held])
        s.delete(row)  # its allocations go with it
        if network is not None:
            bump(network)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.SUBNET, dataplane.DELETED, row.id, row.network_id))
