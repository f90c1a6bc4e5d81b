"""Port forwarding on floating IPs (``/floatingips/{id}/port_forwardings``).

A free floating IP (not associated with a port) forwards a TCP/UDP port, or
a range, to a fixed IPv4 address of a port behind a router that reaches the
floating IP's network; ranges are N-N or 1-N; forwardings on one floating IP
may not overlap, nor may two reach the same internal socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.network import dataplane
from onestack.network.models import FloatingIP, PortForwarding, Subnet
from onestack.network.service import floatingips, port_views
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
from onestack.network.service.common import finish, new_uuid, one, parse_create, parse_update
from onestack.network.service.errors import (
    ExternalGatewayForFloatingIPNotFound,
    FloatingIPPortAlreadyAssociated,
    PortForwardingNotFound,
    PortHasBindingFloatingIP,
    bad_request,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, fetch, where
from onestack.network.service.resources import PORT_FORWARDINGS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net


COLUMNS = {
    "id": PortForwarding.id, "protocol": PortForwarding.protocol,
    "internal_port_id": PortForwarding.internal_port_id,
    "external_port": PortForwarding.external_port_start,
    "description": PortForwarding.description,
}


def _range(start: int, end: int) -> str:
    return f"{start}:{end}"


view = floatingips.forwarding_view


def _fip(session: Session, caller: Caller, fip_id: str, *, lock: bool = False) -> FloatingIP:
    return floatingips.load(session, caller, fip_id, lock=lock)


def _target(fip: FloatingIP, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(extra or {}), "ext_parent:project_id": fip.project_id, "floatingip_id": fip.id,
            "ext_parent_floatingip_id": fip.id}


def list_forwardings(net: Net, caller: Caller, fip_id: str, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        fip = _fip(s, caller, fip_id)
        caller.enforce("get_floatingip_port_forwarding", _target(fip))
        cond = [PortForwarding.floatingip_id == fip.id]
        stmt = select(PortForwarding).where(*cond, *where(q, COLUMNS))
        page = fetch(s, stmt, PortForwarding, q, sort_columns={"external_port": "external_port_start"},
                     visible=cond, not_found=lambda m: PortForwardingNotFound(id=m))
        items = [view(r[0]) for r in page.rows]
    return finish(caller, PORT_FORWARDINGS, items, q.fields), page


def show(net: Net, caller: Caller, fip_id: str, pf_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        fip = _fip(s, caller, fip_id)
        caller.enforce("get_floatingip_port_forwarding", _target(fip))
        row = s.get(PortForwarding, pf_id)
        if row is None or row.floatingip_id != fip.id:
            raise PortForwardingNotFound(id=pf_id)
        return one(caller, PORT_FORWARDINGS, view(row), fields)


def _ports(values: dict[str, Any], current: PortForwarding | None) -> tuple[int, int, int, int]:
    """(internal start, end, external start, end) from single ports or ranges."""

    def parse_range(text: Any, name: str) -> tuple[int, int]:
        parts = str(text).split(":")
        try:
            nums = [int(x) for x in parts]
        except ValueError:
            raise bad_request("port_forwarding", f"Invalid {name}: {text}") from None
        if len(nums) == 1:
            nums = nums * 2
        if len(nums) != 2 or any(n < 1 or n > 65535 for n in nums):
            raise bad_request("port_forwarding",
                              "Invalid port value, the port value must be a value between 1 and 65535")
        return nums[0], nums[1]

    def pick(single: str, rng: str, cur: tuple[int, int] | None) -> tuple[int, int] | None:
        s_val, r_val = values.get(single, NOT_SPECIFIED), values.get(rng, NOT_SPECIFIED)
        if s_val not in (NOT_SPECIFIED, None) and r_val not in (NOT_SPECIFIED, None):
            raise bad_request("port_forwarding", f"{single} and {rng} cannot be set at the same time")
        if s_val not in (NOT_SPECIFIED, None):
            return int(s_val), int(s_val)
        if r_val not in (NOT_SPECIFIED, None):
            return parse_range(r_val, rng)
        return cur

    cur_int = (current.internal_port_start, current.internal_port_end) if current else None
    cur_ext = (current.external_port_start, current.external_port_end) if current else None
    internal = pick("internal_port", "internal_port_range", cur_int)
    external = pick("external_port", "external_port_range", cur_ext)
    if internal is None:
        raise bad_request("port_forwarding", "Internal port or internal port range must be specified")
    if external is None:
        raise bad_request("port_forwarding", "External port or external port range must be specified")
    int_span, ext_span = internal[1] - internal[0], external[1] - external[0]
    if int_span < 0 or ext_span < 0 or (int_span > 0 and int_span != ext_span):
        raise bad_request(
            "port_forwarding",
            "Invalid ranges of internal and/or external ports. The relation between internal and "
            "external ports must be N-N or 1-N",
        )
    return internal[0], internal[1], external[0], external[1]


def _check(net: Net, s: Session, caller: Caller, fip: FloatingIP, values: dict[str, Any],
           ports: tuple[int, int, int, int], pf_id: str | None) -> str:
    """Checks of a forwarding; returns the router that serves it."""
    if fip.fixed_port_id:
        raise FloatingIPPortAlreadyAssociated(
            port_id=values["internal_port_id"], fip_id=fip.id, floating_ip_address=fip.floating_ip_address,
            fixed_ip=values.get("internal_ip_address"), net_id=fip.floating_network_id,
        )
    port, item, _t = port_views.load(s, caller, values["internal_port_id"], net.config.dns_domain)
    bound = s.scalars(select(FloatingIP).where(FloatingIP.fixed_port_id == port.id)).first()
    if bound is not None:
        raise PortHasBindingFloatingIP(floating_ip_address=bound.floating_ip_address, fip_id=bound.id, port_id=port.id,
                    fixed_ip=values.get("internal_ip_address"))
    v4 = [f for f in item["fixed_ips"] if ipaddress.ip_address(f["ip_address"]).version == 4]
    if not v4:
        raise bad_request("port_forwarding",
                          f"Requested internal port {port.id} must allocate an IPv4 address at least.")
    address = values.get("internal_ip_address")
    match = [f for f in v4 if f["ip_address"] == address] if address else v4[:1]
    if not match:
        raise bad_request(
            "port_forwarding",
            f"Requested internal IP address {address} is not suitable for internal neutron port {port.id}, "
            f"as its fixed_ips are {v4}",
        )
    values["internal_ip_address"] = match[0]["ip_address"]
    subnet = s.get(Subnet, match[0]["subnet_id"])
    assert subnet is not None
    try:
        router_id = floatingips.router_for(s, port, subnet, fip.floating_network_id)
    except ExternalGatewayForFloatingIPNotFound:
        raise bad_request(
            "port_forwarding",
            f"External network {fip.floating_network_id} is not reachable from subnet {subnet.id}. Cannot "
            f"set Port forwarding for port {port.id} with Floating IP {fip.id}",
        ) from None
    if fip.router_id and fip.router_id != router_id:
        raise bad_request(
            "port_forwarding",
            f"The Floating IP {fip.id} had been set on router {fip.router_id}, the internal Neutron port "
            f"{port.id} can not reach it",
        )
    i0, i1, e0, e1 = ports
    for other in s.scalars(select(PortForwarding).where(PortForwarding.floatingip_id == fip.id,
                                                        PortForwarding.protocol == values["protocol"])):
        if other.id == pf_id:
            continue
        if max(e0, other.external_port_start) <= min(e1, other.external_port_end):
            raise bad_request(
                "port_forwarding",
                f"There is a port collision with the external_port_range. The following ranges collide: "
                f"{_range(other.external_port_start, other.external_port_end)} and {_range(e0, e1)}",
            )
    db_lock(s, "port-forwarding-internal", port.id)  # internal ranges of any floating IP
    for other in s.scalars(select(PortForwarding).where(
            PortForwarding.internal_port_id == port.id, PortForwarding.protocol == values["protocol"],
            PortForwarding.internal_ip_address == values["internal_ip_address"])):
        if other.id == pf_id:
            continue
        if max(i0, other.internal_port_start) <= min(i1, other.internal_port_end):
            raise bad_request(
                "port_forwarding",
                f"There is a port collision with the internal_port_range. The following ranges collide: "
                f"{_range(other.internal_port_start, other.internal_port_end)} and {_range(i0, i1)}",
            )
    return router_id


def create(net: Net, caller: Caller, fip_id: str, body: dict[str, Any]) -> dict[str, Any]:
    p: Parsed = parse_create(caller, PORT_FORWARDINGS, body)
    with net.writing() as s:
        fip = _fip(s, caller, fip_id, lock=True)
        caller.enforce("create_floatingip_port_forwarding", _target(fip, p.values))
        values = dict(p.values)
        ports = _ports(values, None)
        router_id = _check(net, s, caller, fip, values, ports, None)
        row = PortForwarding(
            id=new_uuid(), floatingip_id=fip.id, internal_port_id=values["internal_port_id"],
            internal_ip_address=values["internal_ip_address"], protocol=values["protocol"],
            internal_port_start=ports[0], internal_port_end=ports[1],
            external_port_start=ports[2], external_port_end=ports[3], description=values["description"],
        )
        s.add(row)
        fip.router_id = router_id
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.PORT_FORWARDING, dataplane.CREATED, row.id,
                                             fip.floating_network_id, "", {"floatingip_id": fip.id}))
        return view(row)


def update(net: Net, caller: Caller, fip_id: str, pf_id: str, body: dict[str, Any]) -> dict[str, Any]:
    p = parse_update(caller, PORT_FORWARDINGS, body)
    with net.writing() as s:
        fip = _fip(s, caller, fip_id, lock=True)
        caller.enforce("update_floatingip_port_forwarding", _target(fip, p.values))
        row = s.get(PortForwarding, pf_id)
        if row is None or row.floatingip_id != fip.id:
            raise PortForwardingNotFound(id=pf_id)
        values = {
            "internal_port_id": row.internal_port_id, "internal_ip_address": row.internal_ip_address,
            "protocol": row.protocol, "description": row.description, **p.values,
        }
        ports = _ports(p.values, row)
        _check(net, s, caller, fip, values, ports, row.id)
        row.internal_port_id = values["internal_port_id"]
        row.internal_ip_address = values["internal_ip_address"]
        row.protocol = values["protocol"]
        row.description = values["description"]
        row.internal_port_start, row.internal_port_end, row.external_port_start, row.external_port_end = ports
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.PORT_FORWARDING, dataplane.UPDATED, row.id,
                                             fip.floating_network_id, "", {"floatingip_id": fip.id}))
        return view(row)


def delete(net: Net, caller: Caller, fip_id: str, pf_id: str) -> None:
    with net.writing() as s:
        fip = _fip(s, caller, fip_id, lock=True)
        caller.enforce("delete_floatingip_port_forwarding", _target(fip))
        row = s.get(PortForwarding, pf_id)
        if row is None or row.floatingip_id != fip.id:
            raise PortForwardingNotFound(id=pf_id)
        s.delete(row)
        s.flush()
        if not s.scalar(select(PortForwarding.id).where(PortForwarding.floatingip_id == fip.id).limit(1)):
            if not fip.fixed_port_id:
                fip.router_id = None
        dataplane.record(s, dataplane.Change(dataplane.PORT_FORWARDING, dataplane.DELETED, pf_id,
                                             fip.floating_network_id, "", {"floatingip_id": fip.id}))
