"""What the agent applies, read from the database into plain values.

Nothing here touches the host: the handlers read a snapshot (one read
transaction) and hand it to the parts that make the host match it.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    PortForwarding,
    PortSecurityGroup,
    Router,
    SecurityGroupRule,
    Subnet,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DHCP_OWNER = "network:dhcp"
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                           "network:ha_router_replicated_interface")
ROUTER_GATEWAY_OWNER = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"


@dataclass(frozen=True)
class SubnetInfo:
    id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[tuple[str, str], ...]  # (destination, nexthop)
    ipv6_ra_mode: str | None
    ipv6_address_mode: str | None

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclass(frozen=True)
class PortInfo:
    id: str
    mac: str
    device_owner: str
    device_id: str
    project_id: str
    admin_state_up: bool
    status: str
    dns_name: str
    fixed_ips: tuple[tuple[str, str], ...]  # (subnet_id, address)


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    project_id: str
    mtu: int
    admin_state_up: bool
    external: bool
    dns_domain: str
    subnets: tuple[SubnetInfo, ...]
    ports: tuple[PortInfo, ...]
    has_router: bool  # a router interface is on it (metadata goes through the router)

    @property
    def dhcp_subnets(self) -> tuple[SubnetInfo, ...]:
        return tuple(s for s in self.subnets if s.enable_dhcp)

    def dhcp_port(self) -> PortInfo | None:
        for p in self.ports:
            if p.device_owner == DHCP_OWNER:
                return p
        return None


def _fixed_ips(s: Session, port_ids: list[str], network_ids: list[str] | None = None
               ) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if not port_ids:
        return out
    stmt = select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address)
    if network_ids is not None:
        stmt = stmt.where(IPAllocation.network_id.in_(network_ids))
    elif len(port_ids) <= 500:
        stmt = stmt.where(IPAllocation.port_id.in_(port_ids))
    wanted = set(port_ids)
    for pid, sid, ip in s.execute(stmt):
        if pid in wanted:
            out[pid].append((sid, ip))
    return out


def network(s: Session, network_id: str) -> NetworkInfo | None:
    """One network with its subnets and ports, read as plain columns (no ORM
    objects: a network without ports is four small queries)."""
    return networks(s, [network_id])[0]


def networks(s: Session, network_ids: list[str]) -> list[NetworkInfo | None]:
    """``network`` of each of these (None: gone), in four queries for all."""
    if not network_ids:
        return []
    wanted = sorted(set(network_ids))
    found = {row[0]: row for row in s.execute(
        select(Network.id, Network.project_id, Network.mtu, Network.admin_state_up,
               Network.external, Network.dns_domain).where(Network.id.in_(wanted)))}
    if not found:
        return [None for _ in network_ids]
    present = sorted(found)
    subnets: dict[str, list[SubnetInfo]] = defaultdict(list)
    for nid, sid, version, cidr, gateway, enable_dhcp, dns, routes, ra_mode, address_mode in s.execute(
            select(Subnet.network_id, Subnet.id, Subnet.ip_version, Subnet.cidr, Subnet.gateway_ip,
                   Subnet.enable_dhcp, Subnet.dns_nameservers, Subnet.host_routes, Subnet.ipv6_ra_mode,
                   Subnet.ipv6_address_mode)
            .where(Subnet.network_id.in_(present)).order_by(Subnet.created_at, Subnet.id)):
        subnets[nid].append(SubnetInfo(
            id=sid, ip_version=version, cidr=cidr, gateway_ip=gateway, enable_dhcp=bool(enable_dhcp),
            dns_nameservers=tuple(dns or ()),
            host_routes=tuple((str(r["destination"]), str(r["nexthop"])) for r in routes or ()),
            ipv6_ra_mode=ra_mode, ipv6_address_mode=address_mode,
        ))
    cols = (Port.network_id, Port.id, Port.mac_address, Port.device_owner, Port.device_id,
            Port.project_id, Port.admin_state_up, Port.status, Port.dns_name)
    rows = s.execute(select(*cols).where(Port.network_id.in_(present)).order_by(Port.id)).all()
    ips = _fixed_ips(s, [r[1] for r in rows], present)
    ports: dict[str, list[PortInfo]] = defaultdict(list)
    for r in rows:
        ports[r[0]].append(PortInfo(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] or "",
                                    tuple(ips.get(r[1], ()))))
    out: list[NetworkInfo | None] = []
    for nid in network_ids:
        row = found.get(nid)
        if row is None:
            out.append(None)
            continue
        its = tuple(ports.get(nid, ()))
        out.append(NetworkInfo(
            id=row[0], project_id=row[1], mtu=row[2], admin_state_up=row[3],
            external=row[4], dns_domain=row[5] or "", subnets=tuple(subnets.get(nid, ())), ports=its,
            has_router=any(p.device_owner in ROUTER_INTERFACE_OWNERS for p in its),
        ))
    return out


def network_ids(s: Session) -> list[str]:
    return list(s.scalars(select(Network.id)))


def router_ids(s: Session) -> list[str]:
    return list(s.scalars(select(Router.id)))


# --- routers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterInfo:
    """A router as ``l3.RouterState`` needs it, plus what the agent does around it."""

    id: str
    project_id: str
    admin_state_up: bool
    enable_snat: bool
    gateway: tuple[str, str, str, tuple[str, ...], int] | None  # port, network, mac, cidrs, mtu
    gateway_ip: str | None
    interfaces: tuple[tuple[str, str, str, tuple[str, ...], int], ...]
    routes: tuple[tuple[str, str], ...]
    floating_ips: tuple[tuple[str, str], ...]  # (floating, fixed)
    floating_ip_ids: tuple[str, ...]
    port_forwardings: tuple[tuple[str, str, str, str, str], ...]
    networks: tuple[tuple[str, int], ...]  # (network id, mtu) of every port: bridges needed
    port_ids: tuple[str, ...]


def _cidrs(subnets: dict[str, Subnet], fixed: list[tuple[str, str]]) -> tuple[str, ...]:
    out = []
    for sid, ip in fixed:
        sub = subnets.get(sid)
        if sub is not None:
            out.append(f"{ip}/{ipaddress.ip_network(sub.cidr).prefixlen}")
    return tuple(out)


def _ports_range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}:{end}"


def router(s: Session, router_id: str) -> RouterInfo | None:
    row = s.get(Router, router_id)
    if row is None:
        return None
    ports = list(s.scalars(select(Port).where(Port.device_id == router_id,
                                              Port.device_owner.in_((*ROUTER_INTERFACE_OWNERS,
                                                                     ROUTER_GATEWAY_OWNER)))))
    ips = _fixed_ips(s, [p.id for p in ports])
    net_ids = sorted({p.network_id for p in ports})
    nets = {n.id: n for n in s.scalars(select(Network).where(Network.id.in_(net_ids)))} if net_ids else {}
    subnets = {sub.id: sub for sub in s.scalars(select(Subnet).where(Subnet.network_id.in_(net_ids)))} \
        if net_ids else {}
    gateway = None
    gateway_ip = None
    interfaces = []
    for p in sorted(ports, key=lambda p: p.id):
        mtu = nets[p.network_id].mtu if p.network_id in nets else 1500
        entry = (p.id, p.network_id, p.mac_address, _cidrs(subnets, ips.get(p.id, [])), mtu)
        if p.id == row.gw_port_id:
            gateway = entry
            for sid, _ip in ips.get(p.id, []):
                sub = subnets.get(sid)
                if sub is not None and sub.gateway_ip and sub.ip_version == 4:
                    gateway_ip = sub.gateway_ip
                    break
        elif p.device_owner in ROUTER_INTERFACE_OWNERS:
            interfaces.append(entry)
    fips = list(s.scalars(select(FloatingIP).where(FloatingIP.router_id == router_id)
                          .order_by(FloatingIP.floating_ip_address)))
    floating = tuple((f.floating_ip_address, f.fixed_ip_address) for f in fips if f.fixed_ip_address)
    forwards = []
    by_fip = {f.id: f.floating_ip_address for f in fips}
    if by_fip:
        for pf in s.scalars(select(PortForwarding).where(PortForwarding.floatingip_id.in_(list(by_fip)))):
            forwards.append((by_fip[pf.floatingip_id], pf.protocol,
                             _ports_range(pf.external_port_start, pf.external_port_end),
                             pf.internal_ip_address,
                             _ports_range(pf.internal_port_start, pf.internal_port_end)))
    return RouterInfo(
        id=row.id, project_id=row.project_id, admin_state_up=row.admin_state_up,
        enable_snat=row.enable_snat, gateway=gateway, gateway_ip=gateway_ip,
        interfaces=tuple(interfaces),
        routes=tuple((str(r["destination"]), str(r["nexthop"])) for r in row.routes or ()),
        floating_ips=floating, floating_ip_ids=tuple(f.id for f in fips if f.fixed_ip_address),
        port_forwardings=tuple(sorted(forwards)),
        networks=tuple((nid, nets[nid].mtu) for nid in net_ids if nid in nets),
        port_ids=tuple(p.id for p in ports),
    )


# --- security groups --------------------------------------------------------------------------


@dataclass(frozen=True)
class FirewallPortInfo:
    id: str
    mac: str
    fixed_ips: tuple[str, ...]
    allowed_address_pairs: tuple[tuple[str, str], ...]
    port_security_enabled: bool
    groups: tuple[str, ...]
    ra_sources: tuple[str, ...] = ()  # link-local addresses of its network's routers


@dataclass(frozen=True)
class RuleInfo:
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class FirewallInfo:
    ports: tuple[FirewallPortInfo, ...]
    rules: dict[str, tuple[RuleInfo, ...]]  # by security group
    members: dict[str, tuple[str, ...]]  # group -> addresses of its ports (fixed IPs and pairs)


def firewall(s: Session) -> FirewallInfo:
    """Every port a VM (or a namespace standing in for one) plugs: not the
    ports of routers, DHCP servers and floating IPs, which pass unfiltered."""
    infra = (DHCP_OWNER, FLOATINGIP_OWNER, ROUTER_GATEWAY_OWNER, *ROUTER_INTERFACE_OWNERS)
    rows = s.execute(select(Port.id, Port.mac_address, Port.port_security_enabled, Port.allowed_address_pairs,
                            Port.network_id)
                     .where(Port.device_owner.not_in(infra)).order_by(Port.id)).all()
    ids = [r[0] for r in rows]
    ips = _fixed_ips(s, ids)
    groups: dict[str, list[str]] = defaultdict(list)
    if ids:
        for pid, gid in s.execute(select(PortSecurityGroup.port_id, PortSecurityGroup.security_group_id)):
            groups[pid].append(gid)
    routers = ra_sources(s) if ids else {}
    members: dict[str, list[str]] = defaultdict(list)
    ports = []
    for pid, mac, security, pairs, network_id in rows:
        addresses = tuple(ip for _sid, ip in ips.get(pid, []))
        allowed = tuple((str(p.get("ip_address")), str(p.get("mac_address") or mac)) for p in _pairs(pairs))
        for gid in groups.get(pid, []):
            # as Neutron: a remote group's members are its ports' fixed IPs and
            # allowed address pairs
            members[gid].extend(addresses)
            members[gid].extend(ip for ip, _mac in allowed)
        ports.append(FirewallPortInfo(
            id=pid, mac=mac, fixed_ips=addresses, allowed_address_pairs=allowed,
            port_security_enabled=bool(security), groups=tuple(sorted(groups.get(pid, []))),
            ra_sources=routers.get(network_id, ()),
        ))
    rules: dict[str, list[RuleInfo]] = defaultdict(list)
    wanted = {g for gs in groups.values() for g in gs}
    if wanted:
        for r in s.scalars(select(SecurityGroupRule).order_by(SecurityGroupRule.id)):
            if r.security_group_id in wanted:
                rules[r.security_group_id].append(RuleInfo(
                    r.direction, r.ethertype, r.protocol, r.port_range_min, r.port_range_max,
                    r.remote_ip_prefix, r.remote_group_id))
    return FirewallInfo(ports=tuple(ports), rules={k: tuple(v) for k, v in rules.items()},
                        members={k: tuple(v) for k, v in members.items()})


def ra_sources(s: Session) -> dict[str, tuple[str, ...]]:
    """By network: the link-local addresses its instances may take router
    advertisements from, as Neutron's ``_select_ra_ips_for_network_ids``: the port
    holding an IPv6 subnet's ``gateway_ip`` (the router's radvd), a ``gateway_ip``
    that is itself link-local (a router outside the cloud); and, here, the DHCP
    port (its dnsmasq announces the prefixes)."""
    from onestack.network.agent.secgroups import MAC_RE, link_local

    out: dict[str, set[str]] = defaultdict(set)
    gateways = s.execute(select(Subnet.network_id, Subnet.gateway_ip)
                         .where(Subnet.ip_version == 6, Subnet.gateway_ip.is_not(None))).all()
    wanted = {(nid, str(ipaddress.ip_address(gw))) for nid, gw in gateways if gw}
    for nid, gw in wanted:
        if ipaddress.ip_address(gw).is_link_local:
            out[nid].add(gw)
    macs: set[tuple[str, str]] = set()
    if wanted:
        stmt = (select(Port.network_id, Port.mac_address, IPAllocation.ip_address)
                .join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(IPAllocation.ip_address.in_(sorted({gw for _, gw in wanted}))))
        macs |= {(nid, mac) for nid, mac, ip in s.execute(stmt)
                 if (nid, str(ipaddress.ip_address(ip))) in wanted}
    macs |= {(nid, mac) for nid, mac in s.execute(
        select(Port.network_id, Port.mac_address).where(Port.device_owner == DHCP_OWNER))}
    for nid, mac in macs:
        if mac and MAC_RE.fullmatch(mac.lower()):
            out[nid].add(link_local(mac.lower()))
    return {nid: tuple(sorted(addresses)) for nid, addresses in out.items()}


def _pairs(value: Any) -> list[dict[str, Any]]:
    return [p for p in value or () if isinstance(p, dict) and p.get("ip_address")]


# --- ports and their devices ------------------------------------------------------------------


def port_states(s: Session, network_ids: list[str] | None = None, id_prefixes: list[str] | None = None
                ) -> list[tuple[str, str, str, bool, str]]:
    """(port id, network id, status, admin_state_up, device_owner) of every port
    (of these networks; whose id starts with one of these prefixes)."""
    stmt = select(Port.id, Port.network_id, Port.status, Port.admin_state_up, Port.device_owner)
    if network_ids is not None:
        stmt = stmt.where(Port.network_id.in_(network_ids))
    if id_prefixes is not None:
        stmt = stmt.where(or_(*[Port.id.startswith(p, autoescape=True) for p in id_prefixes]))
    rows = s.execute(stmt)
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def port_for_address(s: Session, network_ids: list[str], address: str) -> tuple[str, str, str] | None:
    """(port id, device_id, project_id) of the instance port holding ``address`` on one of
    these networks (metadata requests are identified by it)."""
    stmt = (select(Port.id, Port.device_id, Port.project_id, Port.device_owner)
            .join(IPAllocation, IPAllocation.port_id == Port.id)
            .where(IPAllocation.ip_address == address, IPAllocation.network_id.in_(network_ids)))
    for pid, device_id, project_id, owner in s.execute(stmt):
        if owner.startswith("compute:") and device_id:
            return pid, device_id, project_id
    return None


def router_networks(s: Session, router_id: str) -> list[str]:
    return list(s.scalars(select(Port.network_id).where(
        Port.device_id == router_id, Port.device_owner.in_(ROUTER_INTERFACE_OWNERS))))
