"""Floating IPs: an address of an external network, NATed to a fixed IPv4 address.

The address is held by a port on the external network (owner
``network:floatingip``, no project). Associating it with a port needs a
router with a gateway on that external network and an interface on the
fixed IP's subnet (else 404 ``ExternalGatewayForFloatingIPNotFound``); a
project may only associate its own ports; one fixed IP has at most one
floating IP per external network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.common.errors import Conflict
from onestack.network import dataplane
from onestack.network.models import FloatingIP, IPAllocation, Network, Port, PortForwarding, Subnet
from onestack.network.service import fixed_ips, networks, port_views, quotas, teardown
from onestack.network.service import ports as port_service
from onestack.network.service.attributes import parse_create as _parse
from onestack.network.service.common import (
    attr_rules,
    bump,
    check_revision,
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
    ExternalGatewayForFloatingIPNotFound,
    FipInUseByPortForwarding,
    FloatingIPNotFound,
    FloatingIPPortAlreadyAssociated,
    IpAddressGenerationFailure,
    _Templated,
    bad_request,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, chunks, fetch, load_tags, where
from onestack.network.service.resources import FLOATINGIPS, PORTS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

FIP_OWNER = "network:floatingip"
INTERFACE = "network:router_interface"
GATEWAY = "network:router_gateway"


class ExternalIpAddressExhausted(_Templated, Conflict):
    template = "Unable to find any IP address on external network %(net_id)s."


COLUMNS = {
    "id": FloatingIP.id, "floating_ip_address": FloatingIP.floating_ip_address,
    "floating_network_id": FloatingIP.floating_network_id, "router_id": FloatingIP.router_id,
    "port_id": FloatingIP.fixed_port_id, "fixed_ip_address": FloatingIP.fixed_ip_address,
    "tenant_id": FloatingIP.project_id, "project_id": FloatingIP.project_id,
    "status": FloatingIP.status, "description": FloatingIP.description,
    "created_at": FloatingIP.created_at, "updated_at": FloatingIP.updated_at,
    "revision_number": FloatingIP.revision_number,
}
SORT = {"tenant_id": "project_id", "port_id": "fixed_port_id"}


def visible(caller: Caller) -> list[Any]:
    return [] if caller.sees_all else [FloatingIP.project_id == caller.project_id]


def views(session: Session, rows: Sequence[FloatingIP]) -> list[dict[str, Any]]:
    port_ids = [r.fixed_port_id for r in rows if r.fixed_port_id]
    details: dict[str, dict[str, Any]] = {}
    for part in chunks(port_ids):
        for p in session.scalars(select(Port).where(Port.id.in_(part))):
            details[p.id] = {
                "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                "admin_state_up": p.admin_state_up, "status": p.status, "device_id": p.device_id,
                "device_owner": p.device_owner,
            }
    forwardings: dict[str, list[dict[str, Any]]] = {}
    ids = [r.id for r in rows]
    for part in chunks(ids):
        for pf in session.scalars(select(PortForwarding).where(PortForwarding.floatingip_id.in_(part))):
            forwardings.setdefault(pf.floatingip_id, []).append(brief(pf))
    tags = load_tags(session, ids)
    return [
        {
            "id": r.id,
            **owner(r.project_id),
            "floating_ip_address": r.floating_ip_address,
            "floating_network_id": r.floating_network_id,
            "router_id": r.router_id,
            "port_id": r.fixed_port_id,
            "fixed_ip_address": r.fixed_ip_address,
            "status": r.status,
            "port_details": details.get(r.fixed_port_id) if r.fixed_port_id else None,
            "port_forwardings": forwardings.get(r.id, []),
            **std(r, tags.get(r.id, [])),
        }
        for r in rows
    ]


def forwarding_view(pf: PortForwarding) -> dict[str, Any]:
    """A port forwarding as the API shows it (single ports, and ranges ``a:b``)."""
    return {
        "id": pf.id,
        "external_port": pf.external_port_start if pf.external_port_start == pf.external_port_end else None,
        "internal_port": pf.internal_port_start if pf.internal_port_start == pf.internal_port_end else None,
        "external_port_range": f"{pf.external_port_start}:{pf.external_port_end}",
        "internal_port_range": f"{pf.internal_port_start}:{pf.internal_port_end}",
        "internal_ip_address": pf.internal_ip_address,
        "protocol": pf.protocol,
        "internal_port_id": pf.internal_port_id,
        "description": pf.description,
    }


def brief(pf: PortForwarding) -> dict[str, Any]:
    """How a floating IP lists its forwardings (floating-ip-port-forwarding-detail)."""
    out = forwarding_view(pf)
    out.pop("description")
    return out


def target_of(row: FloatingIP) -> dict[str, Any]:
    return {"id": row.id, **owner(row.project_id), "floating_network_id": row.floating_network_id}


def load(session: Session, caller: Caller, fip_id: str, *, lock: bool = False) -> FloatingIP:
    stmt = select(FloatingIP).where(FloatingIP.id == fip_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None or not caller.can("get_floatingip", target_of(row)):
        raise FloatingIPNotFound(floatingip_id=fip_id)
    return row


def list_fips(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = visible(caller)
        stmt = select(FloatingIP).where(*vis, *where(q, COLUMNS, id_column=FloatingIP.id))
        page = fetch(s, stmt, FloatingIP, q, sort_columns=SORT, visible=vis,
                     not_found=lambda m: FloatingIPNotFound(floatingip_id=m))
        items = views(s, [r[0] for r in page.rows])
    items = [i for i in items if caller.can("get_floatingip", i)]
    return finish(caller, FLOATINGIPS, items, q.fields), page


def show(net: Net, caller: Caller, fip_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        return one(caller, FLOATINGIPS, views(s, [load(s, caller, fip_id)])[0], fields)


# --- association -----------------------------------------------------------------------------------


def router_for(s: Session, port: Port, subnet: Subnet, external_network_id: str) -> str:
    """A router joining ``subnet`` (where ``port`` has its fixed IP) and the external
    network - the one whose interface holds the subnet's gateway, else the first."""
    candidates = s.execute(
        select(Port.device_id, IPAllocation.ip_address)
        .join(IPAllocation, IPAllocation.port_id == Port.id)
        .where(Port.network_id == port.network_id, Port.device_owner == INTERFACE,
               IPAllocation.subnet_id == subnet.id)
        .order_by(Port.created_at, Port.id)
    ).all()
    first = None
    for router_id, address in candidates:
        gateway = s.scalar(select(Port.id).where(Port.device_id == router_id, Port.device_owner == GATEWAY,
                                                 Port.network_id == external_network_id))
        if gateway is None:
            continue
        if address == subnet.gateway_ip:
            return str(router_id)
        first = first or router_id
    if first:
        return str(first)
    raise ExternalGatewayForFloatingIPNotFound(
        subnet_id=subnet.id, external_network_id=external_network_id, port_id=port.id
    )


def _association(net: Net, s: Session, caller: Caller, row: FloatingIP, port_id: str,
                 fixed_ip: str | None) -> tuple[Port, str, str]:
    """(port, fixed IP, router) of an association, with Neutron's checks."""
    port, item, _target = port_views.load(s, caller, port_id, net.config.dns_domain)
    if port.project_id != row.project_id and not caller.is_admin:
        raise bad_request(
            "floatingip",
            f"Cannot process floating IP association with Port {port_id}, since that port is owned by a "
            "different project",
        )
    if port.device_owner == "network:dhcp":
        raise bad_request("floatingip", f"Port {port_id} is unable to be assigned a floating IP")
    fixed = item["fixed_ips"]
    if fixed_ip:
        if ipaddress.ip_address(fixed_ip).version != 4:
            raise bad_request(
                "floatingip",
                f"Cannot process floating IP association with {fixed_ip}, since that is not an IPv4 address",
            )
        match = [f for f in fixed if f["ip_address"] == fixed_ip]
        if not match:
            raise bad_request("floatingip", f"Port {port_id} does not have fixed ip {fixed_ip}")
        chosen = match[0]
    else:
        v4 = [f for f in fixed if ipaddress.ip_address(f["ip_address"]).version == 4]
        if not v4:
            raise bad_request("floatingip", f"Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses")
        if len(v4) > 1:
            raise bad_request(
                "floatingip",
                f"Port {port_id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address "
                "when assigning a floating IP",
            )
        chosen = v4[0]
    subnet = s.get(Subnet, chosen["subnet_id"])
    assert subnet is not None
    router_id = router_for(s, port, subnet, row.floating_network_id)
    return port, chosen["ip_address"], router_id


def _associate(net: Net, s: Session, caller: Caller, row: FloatingIP, port_id: str | None,
               fixed_ip: str | None) -> None:
    if fixed_ip and not port_id:
        raise bad_request("floatingip", "fixed_ip_address cannot be specified without a port_id")
    if not port_id:
        teardown.fip_changed(s, row.fixed_port_id)
        row.fixed_port_id = row.fixed_ip_address = None
        if not s.scalar(select(PortForwarding.id).where(PortForwarding.floatingip_id == row.id).limit(1)):
            row.router_id = None
        row.status = "DOWN"
        return
    if s.scalar(select(PortForwarding.id).where(PortForwarding.floatingip_id == row.id).limit(1)):
        raise FipInUseByPortForwarding(id=row.id)
    port, address, router_id = _association(net, s, caller, row, port_id, fixed_ip)
    if port.id != row.fixed_port_id or address != row.fixed_ip_address:
        # One floating IP per fixed address: serialize the units that check it.
        db_lock(s, "floatingip-port", port.id)
        taken = s.scalar(
            select(FloatingIP.id).where(
                FloatingIP.fixed_port_id == port.id, FloatingIP.floating_network_id == row.floating_network_id,
                FloatingIP.fixed_ip_address == address, FloatingIP.id != row.id,
            )
        )
        if taken:
            raise FloatingIPPortAlreadyAssociated(
                port_id=port.id, fip_id=row.id, floating_ip_address=row.floating_ip_address,
                fixed_ip=address, net_id=row.floating_network_id,
            )
    if port.id != row.fixed_port_id or address != row.fixed_ip_address:
        teardown.fip_changed(s, row.fixed_port_id)
        dataplane.server_event(s, dataplane.NETWORK_CHANGED, port.device_owner, port.device_id, port.id)
    row.fixed_port_id, row.fixed_ip_address, row.router_id = port.id, address, router_id


# --- create / update / delete ----------------------------------------------------------------------


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, FLOATINGIPS, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_floatingip", p.values, attr_rules("create_floatingip", FLOATINGIPS, p, True))
    with net.writing() as s:
        rows = []
        for p in parsed:
            network = s.get(Network, p["floating_network_id"])
            if network is None or not caller.can("get_network", networks.target_of(network)):
                raise networks.NetworkNotFound(net_id=p["floating_network_id"])
            if not network.external:
                raise bad_request("floatingip", f"Network {network.id} is not a valid external network")
            v4 = list(s.scalars(select(Subnet).where(Subnet.network_id == network.id, Subnet.ip_version == 4)))
            if not v4:
                raise bad_request("floatingip", f"Network {network.id} does not contain any IPv4 subnet")
            quotas.check(net, s, p["project_id"], {"floatingip": 1})
            row = FloatingIP(id=new_uuid(), project_id=p["project_id"], floating_network_id=network.id,
                             floating_ip_address="", floating_port_id="", status="DOWN",
                             **std_columns(p["description"]))
            wanted: dict[str, str] = {}
            if p["subnet_id"]:
                wanted["subnet_id"] = p["subnet_id"]
            if p["floating_ip_address"]:
                wanted["ip_address"] = p["floating_ip_address"]
            body: dict[str, Any] = {
                "network_id": network.id, "device_owner": FIP_OWNER, "device_id": row.id, "name": "",
                "project_id": "", "admin_state_up": True,
                "fixed_ips": [wanted] if wanted else [{"subnet_id": v4[0].id}] if len(v4) == 1 else None,
            }
            if body["fixed_ips"] is None:
                del body["fixed_ips"]
            try:
                port = port_service.create_one(net, caller.elevated(), s,
                                               _parse(PORTS, body, caller_project=caller.project_id,
                                                      can_set_project=True))
            except IpAddressGenerationFailure:
                raise ExternalIpAddressExhausted(net_id=network.id) from None
            ips = [f for f in fixed_ips.current(s, port.id) if ipaddress.ip_address(f["ip_address"]).version == 4]
            if not ips:
                raise ExternalIpAddressExhausted(net_id=network.id)
            row.floating_ip_address = ips[0]["ip_address"]
            row.floating_port_id = port.id
            s.add(row)
            s.flush()
            if p["port_id"]:
                _associate(net, s, caller, row, p["port_id"], p["fixed_ip_address"])
            elif p["fixed_ip_address"]:
                raise bad_request("floatingip", "fixed_ip_address cannot be specified without a port_id")
            rows.append(row)
            dataplane.record(s, dataplane.Change(dataplane.FLOATING_IP, dataplane.CREATED, row.id, network.id))
        s.flush()
        return finish(caller, FLOATINGIPS, views(s, rows))


def update(net: Net, caller: Caller, fip_id: str, body: dict[str, Any],
           if_match: int | None = None) -> dict[str, Any]:
    p = parse_update(caller, FLOATINGIPS, body)
    with net.writing() as s:
        row = load(s, caller, fip_id, lock=True)
        caller.enforce_or_hide("update_floatingip", {**target_of(row), **p.values}, "get_floatingip",
                               FloatingIPNotFound(floatingip_id=fip_id),
                               attr_rules("update_floatingip", FLOATINGIPS, p, False))
        check_revision(row, if_match)
        if "port_id" in p.values or "fixed_ip_address" in p.values:
            port_id = p["port_id"] if "port_id" in p.values else row.fixed_port_id
            _associate(net, s, caller, row, port_id, p.get("fixed_ip_address"))
        if "description" in p.values:
            row.description = p["description"]
        bump(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.FLOATING_IP, dataplane.UPDATED, row.id,
                                             row.floating_network_id))
        return one(caller, FLOATINGIPS, views(s, [row])[0])


def delete(net: Net, caller: Caller, fip_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row = load(s, caller, fip_id, lock=True)
        caller.enforce_or_hide("delete_floatingip", target_of(row), "get_floatingip",
                               FloatingIPNotFound(floatingip_id=fip_id))
        check_revision(row, if_match)
        teardown.remove_floating_ip(s, row)
