"""Ports as the API shows them, and listing them fast.

A page of ports is read as plain column tuples (no ORM objects), then its
fixed IPs, security groups, tags and networks in a few set-based queries
(chunks of ids), so listing 10,000 ports is a handful of queries whatever the
page size. The policy target of a port adds its network's owner and
``shared`` flag (Neutron's ``network:project_id`` and ``field:networks:shared``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, bindparam, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common import gcpause
from onestack.network.models import IPAllocation, Network, Port, PortSecurityGroup
from onestack.network.service.common import iso
from onestack.network.service.errors import PortNotFound
from onestack.network.service.policy import Caller
from onestack.network.service.query import CHUNK, ListQuery, chunks, fetch, load_tags, where
from onestack.network.service.resources import PORTS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

# The list reads timestamps as stored (text on SQLite, not parsed into datetimes).
COLS = (
    Port.id, Port.name, Port.network_id, Port.project_id, Port.mac_address, Port.admin_state_up,
    Port.status, Port.device_id, Port.device_owner, Port.port_security_enabled, Port.host_id,
    Port.vif_type, Port.vif_details, Port.vnic_type, Port.profile, Port.allowed_address_pairs,
    Port.extra_dhcp_opts, Port.dns_name, Port.description,
    type_coerce(Port.created_at, String).label("created_at"),
    type_coerce(Port.updated_at, String).label("updated_at"),
    Port.revision_number,
)

COLUMNS = {
    "id": Port.id,
    "name": Port.name,
    "network_id": Port.network_id,
    "tenant_id": Port.project_id,
    "project_id": Port.project_id,
    "mac_address": Port.mac_address,
    "admin_state_up": Port.admin_state_up,
    "status": Port.status,
    "device_id": Port.device_id,
    "device_owner": Port.device_owner,
    "binding:host_id": Port.host_id,
    "binding:vnic_type": Port.vnic_type,
    "description": Port.description,
    "created_at": Port.created_at,
    "updated_at": Port.updated_at,
    "revision_number": Port.revision_number,
}
SORT = {"tenant_id": "project_id"}
_IPS = select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address)
_IPS_OF = _IPS.where(IPAllocation.port_id.in_(bindparam("ids", expanding=True)))
_GROUPS = select(PortSecurityGroup.port_id, PortSecurityGroup.security_group_id)
_GROUPS_OF = _GROUPS.where(PortSecurityGroup.port_id.in_(bindparam("ids", expanding=True)))
_NETS = select(Network.id, Network.project_id, Network.shared).where(Network.id.in_(bindparam("ids", expanding=True)))


def _fixed_ips_filter(values: list[Any]) -> ColumnElement[bool]:
    spec: dict[str, list[str]] = values[0] if values else {}
    conds: list[ColumnElement[bool]] = []
    if "ip_address" in spec:
        conds.append(IPAllocation.ip_address.in_(spec["ip_address"]))
    if "subnet_id" in spec:
        conds.append(IPAllocation.subnet_id.in_(spec["subnet_id"]))
    for substr in spec.get("ip_address_substr", []):
        conds.append(IPAllocation.ip_address.contains(substr, autoescape=True))
    return Port.id.in_(select(IPAllocation.port_id).where(and_(*conds)))


def _sg_filter(values: list[Any]) -> ColumnElement[bool]:
    return Port.id.in_(
        select(PortSecurityGroup.port_id).where(PortSecurityGroup.security_group_id.in_(values))
    )


SPECIAL = {"fixed_ips": _fixed_ips_filter, "security_groups": _sg_filter}


def visible(caller: Caller) -> list[Any]:
    """A project sees its own ports and the ports on its networks."""
    if caller.sees_all:
        return []
    own_nets = select(Network.id).where(Network.project_id == caller.project_id)
    return [or_(Port.project_id == caller.project_id, Port.network_id.in_(own_nets))]


def dns_assignment(dns_name: str, ips: list[dict[str, str]], domain: str) -> list[dict[str, str]]:
    out = []
    for ip in ips:
        address = ip["ip_address"]
        host = dns_name or "host-" + address.replace(".", "-").replace(":", "-")
        out.append({"ip_address": address, "hostname": host, "fqdn": f"{host}.{domain}"})
    return out


def views(
    session: Session, rows: Sequence[Any], domain: str, scope: Any = None, *, targets: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wire shapes and policy targets of port rows (``COLS`` tuples or ``Port`` objects).

    ``scope``: a select of the ids of exactly these ports (a whole, unpaged list):
    their addresses and groups are then read with it instead of lists of ids.
    ``targets=False``: the wire shapes only (no policy targets; their list is empty).
    """
    values = [tuple(r) for r in rows] if rows and not isinstance(rows[0], Port) else [_values(r) for r in rows]
    ids = [v[0] for v in values]
    ips: dict[str, list[dict[str, str]]] = {}
    groups: dict[str, list[str]] = {}
    run = session.connection().execute
    queries: list[tuple[Any, Any, dict[str, Any]]]
    if scope is not None:
        queries = [(_IPS.where(IPAllocation.port_id.in_(scope)), _GROUPS.where(PortSecurityGroup.port_id.in_(scope)),
                    {})]
    else:
        queries = [(_IPS_OF, _GROUPS_OF, {"ids": list(part)}) for part in chunks(ids)]
    for ips_query, groups_query, params in queries:
        for pid, sid, address in run(ips_query, params):
            found = ips.get(pid)
            if found is None:
                ips[pid] = [{"subnet_id": sid, "ip_address": address}]
            else:
                found.append({"subnet_id": sid, "ip_address": address})
        for pid, sg in run(groups_query, params):
            gs = groups.get(pid)
            if gs is None:
                groups[pid] = [sg]
            else:
                gs.append(sg)
    tags = load_tags(session, ids, scope) if ids else {}
    nets = network_owners(session, list({v[2] for v in values})) if targets else {}
    items: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    no_net = ("", False)
    for v in values:
        pid = v[0]
        fixed = ips.get(pid) or []
        if len(fixed) > 1:
            fixed.sort(key=lambda x: (x["subnet_id"], x["ip_address"]))
        gs = groups.get(pid)
        if gs is not None and len(gs) > 1:
            gs.sort()
        item = _render(v, fixed, gs or [], tags.get(pid) or [], domain)
        items.append(item)
        if targets:
            net_owner, shared = nets.get(v[2], no_net)
            out.append(target(item, net_owner, shared))
    return items, out


def network_owners(session: Session, network_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """``{network id: (its project, shared)}``: what a port's policy target adds."""
    run = session.connection().execute
    nets: dict[str, tuple[str, bool]] = {}
    for part in chunks(network_ids):
        for nid, pid, shared in run(_NETS, {"ids": list(part)}):
            nets[nid] = (pid, shared)
    return nets


# The attributes of a port a view is made of, in ``COLS`` order.
_NAMES = tuple(c.key if hasattr(c, "key") else c.name for c in COLS)


def _values(r: Any) -> tuple[Any, ...]:
    return tuple(getattr(r, name) for name in _NAMES)


def render(r: Any, fixed: list[dict[str, str]], groups: list[str], tags: list[str], domain: str) -> dict[str, Any]:
    """The wire shape of one port (``r``: a ``Port`` or anything with its attributes)."""
    return _render(_values(r), fixed, groups, tags, domain)


def _render(
    v: tuple[Any, ...], fixed: list[dict[str, str]], groups: list[str], tags: list[str], domain: str
) -> dict[str, Any]:
    (port_id, name, network_id, project_id, mac, admin_state_up, status, device_id, device_owner,
     port_security, host_id, vif_type, vif_details, vnic_type, profile, pairs, dhcp_opts, dns_name,
     description, created_at, updated_at, revision) = v
    return {
        "id": port_id,
        "name": name,
        "network_id": network_id,
        "tenant_id": project_id,
        "project_id": project_id,
        "mac_address": mac,
        "admin_state_up": admin_state_up,
        "status": status,
        "device_id": device_id,
        "device_owner": device_owner,
        "fixed_ips": fixed,
        "port_security_enabled": port_security,
        "security_groups": groups,
        "binding:vnic_type": vnic_type,
        "binding:profile": profile or {},
        "binding:host_id": host_id,
        "binding:vif_type": vif_type,
        "binding:vif_details": vif_details or {},
        "allowed_address_pairs": pairs or [],
        "extra_dhcp_opts": dhcp_opts or [],
        "dns_name": dns_name,
        "dns_assignment": dns_assignment(dns_name, fixed, domain),
        "description": description,
        "tags": tags,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
        "revision_number": revision,
    }


def target(item: dict[str, Any], net_owner: str, shared: bool) -> dict[str, Any]:
    out = dict(item)
    out["network:project_id"] = net_owner
    out["shared"] = shared
    return out


def load(session: Session, caller: Caller, port_id: str, domain: str, *,
         lock: bool = False) -> tuple[Port, dict[str, Any], dict[str, Any]]:
    """(row, wire shape, policy target) of a port the caller may see; else 404."""
    stmt = select(Port).where(Port.id == port_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None:
        raise PortNotFound(port_id=port_id)
    items, targets = views(session, [row], domain)
    if not caller.can("get_port", targets[0]):
        raise PortNotFound(port_id=port_id)
    return row, items[0], targets[0]


def list_ports(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    from onestack.network.service.common import finish

    with net.db.read() as s:
        vis = visible(caller)
        conds = [*vis, *where(q, COLUMNS, SPECIAL, id_column=Port.id)]
        stmt = select(*COLS).where(*conds)
        page = fetch(s, stmt, Port, q, sort_columns=SORT, visible=vis,
                     not_found=lambda m: PortNotFound(port_id=m), columns_only=True)
        large = len(page.rows) > CHUNK
        scope = select(Port.id).where(*conds) if page.limit is None and large else None
        with gcpause.paused() if large else nullcontext():
            items, targets = views(s, page.rows, net.config.dns_domain, scope)
    with gcpause.paused() if large else nullcontext():
        allowed = caller.can_each("get_port", targets)
        keep = [i for i, ok in enumerate(allowed) if ok]
        if len(keep) != len(items):
            items = [items[i] for i in keep]
            targets = [targets[i] for i in keep]
        return finish(caller, PORTS, items, q.fields, targets), page


def show(net: Net, caller: Caller, port_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    from onestack.network.service.common import one

    with net.db.read() as s:
        _row, item, tgt = load(s, caller, port_id, net.config.dns_domain)
        return one(caller, PORTS, item, fields, tgt)
