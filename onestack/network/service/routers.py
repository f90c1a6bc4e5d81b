"""Routers: external gateway (SNAT, fixed IPs), interfaces, static routes.

A router's gateway is a port on an external network (owner
``network:router_gateway``, no project); an interface is a port on a
project network (``network:router_interface``) holding the subnet's gateway
address, or a port the caller brings. The subnets behind one router may not
overlap. Routes must go through a subnet the router is connected to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict
from onestack.network import dataplane
from onestack.network.models import FloatingIP, IPAllocation, Network, Port, Router, Subnet
from onestack.network.service import fixed_ips, networks, quotas, teardown
from onestack.network.service import ports as port_service
from onestack.network.service import subnets as subnet_service
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
from onestack.network.service.attributes import parse_create as _parse
from onestack.network.service.common import (
    attr_rules,
    bump,
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
    HTTPBadRequest,
    PortInUse,
    RouterExternalGatewayInUseByFloatingIp,
    RouterInterfaceInUseByFloatingIP,
    RouterInterfaceNotFound,
    RouterInterfaceNotFoundForSubnet,
    RouterInUse,
    RouterNotFound,
    _Templated,
    bad_request,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, chunks, fetch, load_tags, where
from onestack.network.service.resources import PORTS, ROUTERS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

GATEWAY = "network:router_gateway"
INTERFACE = "network:router_interface"
MAX_ROUTES = 30


class InvalidRoutes(_Templated, BadRequest):
    template = "Invalid format for routes: %(routes)s, %(reason)s"


class RoutesExhausted(_Templated, BadRequest):
    template = "Unable to complete operation for %(router_id)s. The number of routes exceeds the maximum %(quota)s."


class RouterInterfaceInUseByRoute(_Templated, Conflict):
    template = (
        "Router interface for subnet %(subnet_id)s on router %(router_id)s cannot be deleted, "
        "as it is required by one or more routes."
    )


class SubnetMismatchForPort(_Templated, BadRequest):
    template = "Subnet on port %(port_id)s does not match the requested subnet %(subnet_id)s."


COLUMNS = {
    "id": Router.id, "name": Router.name, "admin_state_up": Router.admin_state_up,
    "status": Router.status, "tenant_id": Router.project_id, "project_id": Router.project_id,
    "description": Router.description, "created_at": Router.created_at,
    "updated_at": Router.updated_at, "revision_number": Router.revision_number,
}


def visible(caller: Caller) -> list[Any]:
    return [] if caller.sees_all else [Router.project_id == caller.project_id]


def views(session: Session, rows: Sequence[Router]) -> list[dict[str, Any]]:
    gw_ids = [r.gw_port_id for r in rows if r.gw_port_id]
    gw: dict[str, tuple[str, list[dict[str, str]]]] = {}
    for part in chunks(gw_ids):
        for pid, nid in session.execute(select(Port.id, Port.network_id).where(Port.id.in_(part))):
            gw[pid] = (nid, [])
        for pid, sid, ip in session.execute(
            select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address).where(
                IPAllocation.port_id.in_(part)
            )
        ):
            gw[pid][1].append({"subnet_id": sid, "ip_address": ip})
    tags = load_tags(session, [r.id for r in rows])
    out = []
    for r in rows:
        info = None
        if r.gw_port_id and r.gw_port_id in gw:
            nid, ips = gw[r.gw_port_id]
            info = {"network_id": nid, "external_fixed_ips": sorted(ips, key=lambda x: x["subnet_id"]),
                    "enable_snat": r.enable_snat}
        out.append({
            "id": r.id,
            "name": r.name,
            **owner(r.project_id),
            "admin_state_up": r.admin_state_up,
            "status": r.status,
            "external_gateway_info": info,
            "routes": list(r.routes or []),
            "availability_zone_hints": list(r.availability_zone_hints or []),
            "availability_zones": [],
            **std(r, tags.get(r.id, [])),
        })
    return out


def target_of(row: Router) -> dict[str, Any]:
    return {"id": row.id, **owner(row.project_id), "name": row.name}


def load(session: Session, caller: Caller, router_id: str, *, lock: bool = False) -> Router:
    stmt = select(Router).where(Router.id == router_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None or not caller.can("get_router", target_of(row)):
        raise RouterNotFound(router_id=router_id)
    return row


def list_routers(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = visible(caller)
        stmt = select(Router).where(*vis, *where(q, COLUMNS, id_column=Router.id))
        page = fetch(s, stmt, Router, q, sort_columns={"tenant_id": "project_id"}, visible=vis,
                     not_found=lambda m: RouterNotFound(router_id=m))
        items = views(s, [r[0] for r in page.rows])
    items = [i for i in items if caller.can("get_router", i)]
    return finish(caller, ROUTERS, items, q.fields), page


def show(net: Net, caller: Caller, router_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        return one(caller, ROUTERS, views(s, [load(s, caller, router_id)])[0], fields)


# --- gateway -------------------------------------------------------------------------------------


def _gateway_values(info: dict[str, Any] | None) -> tuple[str | None, bool, list[dict[str, Any]] | None]:
    if not info:
        return None, True, None
    snat = info.get("enable_snat", True)
    snat = snat if isinstance(snat, bool) else str(snat).lower() in ("1", "true", "t", "yes", "on", "y")
    return info["network_id"], snat, info.get("external_fixed_ips")


def _set_gateway(net: Net, caller: Caller, s: Session, router: Router,
                 info: dict[str, Any] | None) -> None:
    """Create, move, change or clear the router's gateway port."""
    network_id, snat, fixed = _gateway_values(info)
    current = s.get(Port, router.gw_port_id) if router.gw_port_id else None
    network: Network | None = None
    if network_id is not None:
        network = s.get(Network, network_id)
        if network is None:
            raise networks.NetworkNotFound(net_id=network_id)
        if not network.external:
            raise bad_request("router", f"Network {network_id} is not an external network")
        gateways = {sub.gateway_ip for sub in s.scalars(select(Subnet).where(Subnet.network_id == network.id))}
        for ip in fixed or []:
            if ip.get("ip_address") and ip["ip_address"] in gateways:
                raise bad_request("router", f"External IP {ip['ip_address']} is the same as the gateway IP")
    if current is not None and (network_id != current.network_id or fixed is not None):
        if network_id != current.network_id and _serves_floating_ips(s, router.id):
            raise RouterExternalGatewayInUseByFloatingIp(router_id=router.id, net_id=current.network_id)
        if network is not None and network_id == current.network_id and fixed is not None:
            fixed_ips.change(s, network, current.id, fixed, GATEWAY, current.mac_address)
            bump(current)
        else:
            router.gw_port_id = None
            s.flush()
            teardown.remove_port(s, current)
            current = None
    if network_id is not None and current is None:
        body: dict[str, Any] = {
            "network_id": network_id, "device_owner": GATEWAY, "device_id": router.id, "name": "",
            "project_id": "", "admin_state_up": True,
        }
        if fixed:
            body["fixed_ips"] = fixed
        parsed = _parse(PORTS, body, caller_project=caller.project_id, can_set_project=True)
        port = port_service.create_one(net, caller.elevated(), s, parsed)
        if not fixed_ips.current(s, port.id):
            raise bad_request("router", f"No IPs available for external network {network_id}")
        router.gw_port_id = port.id
    router.enable_snat = snat if network_id is not None else True


def _serves_floating_ips(s: Session, router_id: str) -> bool:
    return s.scalar(select(FloatingIP.id).where(FloatingIP.router_id == router_id).limit(1)) is not None


# --- routes --------------------------------------------------------------------------------------


def _connected(s: Session, router: Router) -> tuple[list[Any], list[str]]:
    """(CIDRs the router reaches directly, its own addresses) - for route validation."""
    cidrs: list[Any] = []
    addresses: list[str] = []
    for port in s.scalars(select(Port).where(Port.device_id == router.id,
                                             Port.device_owner.in_((INTERFACE, GATEWAY)))):
        for sid, ip in s.execute(select(IPAllocation.subnet_id, IPAllocation.ip_address)
                                 .where(IPAllocation.port_id == port.id)):
            subnet = s.get(Subnet, sid)
            if subnet is not None:
                cidrs.append(ipaddress.ip_network(subnet.cidr))
            if port.device_owner == INTERFACE:
                addresses.append(ip)
        if port.device_owner == GATEWAY:
            for sub in s.scalars(select(Subnet).where(Subnet.network_id == port.network_id)):
                cidrs.append(ipaddress.ip_network(sub.cidr))
    return cidrs, addresses


def validate_routes(s: Session, router: Router, routes: list[dict[str, str]]) -> None:
    if len(routes) > MAX_ROUTES:
        raise RoutesExhausted(router_id=router.id, quota=MAX_ROUTES)
    cidrs, addresses = _connected(s, router)
    for route in routes:
        hop = ipaddress.ip_address(route["nexthop"])
        if not any(hop in c for c in cidrs):
            raise InvalidRoutes(routes=routes, reason="the nexthop is not connected with router")
        if route["nexthop"] in addresses:
            raise InvalidRoutes(routes=routes, reason="the nexthop is used by router")


# --- create / update / delete --------------------------------------------------------------------


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, ROUTERS, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_router", p.values, attr_rules("create_router", ROUTERS, p, True))
        networks.check_az_hints(net, p["availability_zone_hints"], "router")
    with net.writing() as s:
        rows = []
        for p in parsed:
            quotas.check(net, s, p["project_id"], {"router": 1})
            row = Router(id=new_uuid(), project_id=p["project_id"], name=p["name"],
                         admin_state_up=p["admin_state_up"], status="ACTIVE", enable_snat=True,
                         availability_zone_hints=list(p["availability_zone_hints"]) or None,
                         **std_columns(p["description"]))
            s.add(row)
            s.flush()
            if p["external_gateway_info"]:
                _set_gateway(net, caller, s, row, p["external_gateway_info"])
            rows.append(row)
            dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.CREATED, row.id))
        s.flush()
        return finish(caller, ROUTERS, views(s, rows))


def update(net: Net, caller: Caller, router_id: str, body: dict[str, Any],
           if_match: int | None = None) -> dict[str, Any]:
    p = parse_update(caller, ROUTERS, body)
    with net.writing() as s:
        row = update_in(net, caller, s, router_id, p, if_match)
        return one(caller, ROUTERS, views(s, [row])[0])


def update_in(net: Net, caller: Caller, s: Session, router_id: str, p: Parsed,
              if_match: int | None = None) -> Router:
    row = load(s, caller, router_id, lock=True)
    caller.enforce_or_hide("update_router", {**target_of(row), **p.values}, "get_router",
                           RouterNotFound(router_id=router_id), attr_rules("update_router", ROUTERS, p, False))
    check_revision(row, if_match)
    if "external_gateway_info" in p.values:
        _set_gateway(net, caller, s, row, p["external_gateway_info"])
        s.flush()
    if "routes" in p.values and p["routes"] is not NOT_SPECIFIED:
        validate_routes(s, row, p["routes"])
        row.routes = list(p["routes"]) or None
    for attr in ("name", "description", "admin_state_up"):
        if attr in p.values:
            setattr(row, attr, p[attr])
    bump(row)
    s.flush()
    dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.UPDATED, row.id))
    return row


def delete(net: Net, caller: Caller, router_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row = load(s, caller, router_id, lock=True)
        caller.enforce_or_hide("delete_router", target_of(row), "get_router", RouterNotFound(router_id=router_id))
        check_revision(row, if_match)
        attached = list(s.scalars(select(Port.id).where(Port.device_id == row.id, Port.device_owner == INTERFACE)))
        if attached:
            raise RouterInUse(router_id=row.id, reason="has ports still attached: " + ", ".join(attached))
        if _serves_floating_ips(s, row.id):
            raise RouterInUse(router_id=row.id, reason="still has floating IPs")
        gw = s.get(Port, row.gw_port_id) if row.gw_port_id else None
        row.gw_port_id = None
        s.flush()
        if gw is not None:
            teardown.remove_port(s, gw)
        drop_tags(s, [row.id])
        s.delete(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.DELETED, row.id))


# --- interfaces ----------------------------------------------------------------------------------


def _interface_info(router: Router, port: Any, subnet_ids: list[str]) -> dict[str, Any]:
    return {"id": router.id, **owner(router.project_id), "port_id": port.id,
            "network_id": port.network_id, "subnet_id": subnet_ids[0] if subnet_ids else None,
            "subnet_ids": subnet_ids}


def _validate_info(info: Any, removal: bool) -> tuple[str | None, str | None]:
    if not isinstance(info, dict) or ("port_id" not in info and "subnet_id" not in info):
        raise bad_request("router", "Either subnet_id or port_id must be specified")
    from onestack.network.service import validators

    for key in ("port_id", "subnet_id"):
        if key in info:
            err = validators.uuid(info[key])
            if err:
                raise bad_request("router", err)
    if not removal and "port_id" in info and "subnet_id" in info:
        raise bad_request("router", "Cannot specify both subnet-id and port-id")
    return info.get("port_id"), info.get("subnet_id")


def _router_subnets(s: Session, router: Router) -> list[Subnet]:
    out: list[Subnet] = []
    for port in s.scalars(select(Port).where(Port.device_id == router.id,
                                             Port.device_owner.in_((INTERFACE, GATEWAY)))):
        if port.device_owner == GATEWAY:
            out.extend(s.scalars(select(Subnet).where(Subnet.network_id == port.network_id)))
        else:
            out.extend(s.scalars(select(Subnet).join(IPAllocation, IPAllocation.subnet_id == Subnet.id)
                                 .where(IPAllocation.port_id == port.id)))
    return out


def _check_overlap(s: Session, router: Router, new: list[Subnet]) -> None:
    existing = _router_subnets(s, router)
    new_ids = {n.id for n in new}
    for sub in existing:
        if sub.id in new_ids:
            raise bad_request("router", f"Router already has a port on subnet {sub.id}")
    for sub in existing:
        for n in new:
            a, b = ipaddress.ip_network(sub.cidr), ipaddress.ip_network(n.cidr)
            if a.version == b.version and a.overlaps(b):  # type: ignore[arg-type]
                raise bad_request(
                    "router",
                    f"Cidr {n.cidr} of subnet {n.id} overlaps with cidr {sub.cidr} of subnet {sub.id}",
                )


def add_interface(net: Net, caller: Caller, router_id: str, info: Any) -> dict[str, Any]:
    with net.writing() as s:
        router = load(s, caller, router_id, lock=True)
        caller.enforce_or_hide("add_router_interface", target_of(router), "get_router",
                               RouterNotFound(router_id=router_id))
        port_id, subnet_id = _validate_info(info, removal=False)
        if port_id:
            result = _add_by_port(s, caller, net, router, port_id)
        else:
            assert subnet_id is not None
            result = _add_by_subnet(net, s, caller, router, subnet_id)
        bump(router)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.UPDATED, router.id,
                                             result["network_id"]))
        return result


def _add_by_port(s: Session, caller: Caller, net: Net, router: Router, port_id: str) -> dict[str, Any]:
    from onestack.network.service import port_views

    port, item, _target = port_views.load(s, caller, port_id, net.config.dns_domain, lock=True)
    if port.device_id:
        raise PortInUse(net_id=port.network_id, port_id=port.id, device_id=port.device_id)
    if not item["fixed_ips"]:
        raise bad_request("router", "Router port must have at least one fixed IP")
    subnets = [s.get(Subnet, ip["subnet_id"]) for ip in item["fixed_ips"]]
    subs = [x for x in subnets if x is not None]
    _check_overlap(s, router, subs)
    if len([x for x in subs if x.ip_version == 4]) > 1:
        raise bad_request("router", "Cannot have multiple IPv4 subnets on router port")
    port.device_id = router.id
    port.device_owner = INTERFACE
    bump(port)
    return _interface_info(router, port, [x.id for x in subs])


def _add_by_subnet(net: Net, s: Session, caller: Caller, router: Router, subnet_id: str) -> dict[str, Any]:
    subnet, _tgt = subnet_service.load(s, caller, subnet_id)
    if not subnet.gateway_ip:
        raise bad_request("router", "Subnet for router interface must have a gateway IP")
    if subnet.project_id != caller.project_id and not caller.is_admin:
        raise bad_request(
            "router",
            f"Cannot add interface to router because subnet {subnet_id} is not owned by project making the request",
        )
    if subnet.ip_version == 6 and subnet.ipv6_ra_mode is None and subnet.ipv6_address_mode is not None:
        raise bad_request(
            "router",
            f"IPv6 subnet {subnet.id} configured to receive RAs from an external router cannot be added to "
            "Neutron Router.",
        )
    _check_overlap(s, router, [subnet])
    body = {
        "network_id": subnet.network_id, "device_owner": INTERFACE, "device_id": router.id, "name": "",
        "project_id": router.project_id, "admin_state_up": True,
        "fixed_ips": [{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}],
    }
    parsed = _parse(PORTS, body, caller_project=caller.project_id, can_set_project=True)
    port = port_service.create_one(net, caller.elevated(), s, parsed)
    return _interface_info(router, port, [subnet.id])


def remove_interface(net: Net, caller: Caller, router_id: str, info: Any) -> dict[str, Any]:
    with net.writing() as s:
        router = load(s, caller, router_id, lock=True)
        caller.enforce_or_hide("remove_router_interface", target_of(router), "get_router",
                               RouterNotFound(router_id=router_id))
        port_id, subnet_id = _validate_info(info, removal=True)
        if port_id:
            port = s.get(Port, port_id)
            if port is None or port.device_id != router.id or port.device_owner != INTERFACE:
                raise RouterInterfaceNotFound(router_id=router.id, port_id=port_id)
            subnet_ids = [sid for (sid,) in s.execute(select(IPAllocation.subnet_id)
                                                        .where(IPAllocation.port_id == port.id))]
            if subnet_id and subnet_id not in subnet_ids:
                raise SubnetMismatchForPort(port_id=port_id, subnet_id=subnet_id)
        else:
            assert subnet_id is not None
            subnet_service.load(s, caller, subnet_id)
            port = s.scalars(
                select(Port).join(IPAllocation, IPAllocation.port_id == Port.id).where(
                    Port.device_id == router.id, Port.device_owner == INTERFACE,
                    IPAllocation.subnet_id == subnet_id,
                )
            ).first()
            if port is None:
                raise RouterInterfaceNotFoundForSubnet(router_id=router.id, subnet_id=subnet_id)
            subnet_ids = [sid for (sid,) in s.execute(select(IPAllocation.subnet_id)
                                                        .where(IPAllocation.port_id == port.id))]
        for sid in subnet_ids:
            _check_not_in_use(s, router, sid)
        result = _interface_info(router, port, subnet_ids)
        teardown.remove_port(s, port)
        bump(router)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.UPDATED, router.id, result["network_id"]))
        return result


def _check_not_in_use(s: Session, router: Router, subnet_id: str) -> None:
    subnet = s.get(Subnet, subnet_id)
    if subnet is None:
        return
    cidr = ipaddress.ip_network(subnet.cidr)
    users = set(s.scalars(select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet_id)))
    for fip in s.scalars(select(FloatingIP).where(FloatingIP.router_id == router.id)):
        if fip.fixed_ip_address and ipaddress.ip_address(fip.fixed_ip_address) in cidr and fip.fixed_port_id in users:
            raise RouterInterfaceInUseByFloatingIP(router_id=router.id, subnet_id=subnet_id)
    for route in router.routes or []:
        if ipaddress.ip_address(route["nexthop"]) in cidr:
            raise RouterInterfaceInUseByRoute(router_id=router.id, subnet_id=subnet_id)


# --- extraroute-atomic ---------------------------------------------------------------------------


def change_routes(net: Net, caller: Caller, router_id: str, body: Any, add: bool) -> dict[str, Any]:
    from onestack.network.service import validators

    if not isinstance(body, dict) or not isinstance(body.get("router"), dict):
        raise HTTPBadRequest("Unable to find 'router' in request body")
    routes = body["router"].get("routes")
    if set(body["router"]) - {"routes"} or routes is None:
        raise HTTPBadRequest("Unrecognized attribute(s) '{}'".format(
            ", ".join(sorted(set(body["router"]) - {"routes"})) or "routes"))
    reason = validators.hostroutes(routes)
    if reason:
        raise HTTPBadRequest(f"Invalid input for routes. Reason: {reason}.")
    with net.writing() as s:
        row = load(s, caller, router_id, lock=True)
        action = "add_extraroutes" if add else "remove_extraroutes"
        caller.enforce_or_hide(action, target_of(row), "get_router", RouterNotFound(router_id=router_id))
        current = list(row.routes or [])
        if add:
            merged = current + [r for r in routes if r not in current]
            validate_routes(s, row, merged)
        else:
            merged = [r for r in current if r not in routes]
        row.routes = merged or None
        bump(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.ROUTER, dataplane.UPDATED, row.id))
        return one(caller, ROUTERS, views(s, [row])[0])
