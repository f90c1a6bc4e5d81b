"""Networks: create (with a VXLAN or flat segment), list, show, update, delete.

A project network gets a VXLAN segment (the lowest free VNI of the
configured range) and the tenant MTU; an admin may ask for a ``flat``
network on a configured physical network (once per physical network) or a
given VNI. ``router:external`` networks carry floating IPs and router
gateways; ``shared`` ones accept other projects' ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.network import dataplane, models
from onestack.network.models import Network, Port, Subnet
from onestack.network.service import quotas, teardown
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
from onestack.network.service.common import (
    attr_rules,
    bump,
    check_revision,
    drop_tags,
    finish,
    new_uuid,
    now,
    one,
    owner,
    parse_create,
    parse_update,
    std,
    std_columns,
)
from onestack.network.service.errors import (
    AvailabilityZoneNotFound,
    ExternalNetworkInUse,
    FlatNetworkInUse,
    InvalidInput,
    InvalidSharedSetting,
    NetworkInUse,
    NetworkMTUSubnetConflict,
    NetworkNotFound,
    NoNetworkAvailable,
    TunnelIdInUse,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, chunks, fetch, load_tags, where
from onestack.network.service.resources import NETWORKS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

# Ports Neutron deletes with their network (DHCP, distributed, agent gateway).
AUTO_DELETE_OWNERS = ("network:dhcp", "network:distributed", "network:floatingip_agent_gateway")
FLAT, VXLAN = "flat", "vxlan"
MAX_VNI = 2**24 - 1

COLUMNS = {
    "id": Network.id,
    "name": Network.name,
    "admin_state_up": Network.admin_state_up,
    "status": Network.status,
    "tenant_id": Network.project_id,
    "project_id": Network.project_id,
    "shared": Network.shared,
    "mtu": Network.mtu,
    "router:external": Network.external,
    "provider:network_type": Network.network_type,
    "provider:physical_network": Network.physical_network,
    "provider:segmentation_id": Network.segmentation_id,
    "description": Network.description,
    "created_at": Network.created_at,
    "updated_at": Network.updated_at,
    "revision_number": Network.revision_number,
}
SORT = {"tenant_id": "project_id", "router:external": "external", "availability_zone_hints": "id"}


def visible(caller: Caller) -> list[Any]:
    """What a caller's list may contain: own, shared and external networks."""
    if caller.sees_all:
        return []
    return [or_(Network.project_id == caller.project_id, Network.shared.is_(True), Network.external.is_(True))]


# --- views -----------------------------------------------------------------------------


def views(session: Session, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Wire shapes of many networks: subnets, scopes and tags in a few queries."""
    ids = [r.id for r in rows]
    subnets: dict[str, list[tuple[str, int, str | None]]] = {}
    for part in chunks(ids):
        for nid, sid, version, pool in session.execute(
            select(Subnet.network_id, Subnet.id, Subnet.ip_version, Subnet.subnetpool_id)
            .where(Subnet.network_id.in_(part))
            .order_by(Subnet.created_at, Subnet.id)
        ):
            subnets.setdefault(nid, []).append((sid, version, pool))
    pools = {p for entries in subnets.values() for (_s, _v, p) in entries if p}
    scope_of: dict[str, str | None] = {}
    if pools:
        for pid, scope in session.execute(
            select(models.SubnetPool.id, models.SubnetPool.address_scope_id).where(
                models.SubnetPool.id.in_(list(pools))
            )
        ):
            scope_of[pid] = scope
    tags = load_tags(session, ids)
    return [
        view(r, subnets.get(r.id, []), tags.get(r.id, []), scope_of) for r in rows
    ]


def _scope(entries: list[tuple[str, int, str | None]], version: int, scope_of: dict[str, Any]) -> Any:
    scopes = {scope_of.get(pool) if pool else None for (_s, v, pool) in entries if v == version}
    return scopes.pop() if len(scopes) == 1 else None


def view(
    row: Any,
    subnets: list[tuple[str, int, str | None]],
    tags: list[str],
    scope_of: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        **owner(row.project_id),
        "admin_state_up": row.admin_state_up,
        "mtu": row.mtu,
        "status": row.status,
        "subnets": [s[0] for s in subnets],
        "shared": row.shared,
        "port_security_enabled": row.port_security_enabled,
        "router:external": row.external,
        "provider:network_type": row.network_type,
        "provider:physical_network": row.physical_network,
        "provider:segmentation_id": row.segmentation_id,
        "availability_zone_hints": list(row.availability_zone_hints or []),
        "availability_zones": [],
        "ipv4_address_scope": _scope(subnets, 4, scope_of),
        "ipv6_address_scope": _scope(subnets, 6, scope_of),
        "dns_domain": row.dns_domain,
        **std(row, tags),
    }


def target_of(row: Network) -> dict[str, Any]:
    return {
        "id": row.id,
        **owner(row.project_id),
        "shared": row.shared,
        "router:external": row.external,
        "network_type": row.network_type,
    }


# --- reads ------------------------------------------------------------------------------


_BY_ID = select(Network).where(Network.id == bindparam("id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()


def load(session: Session, caller: Caller, network_id: str, *, lock: bool = False) -> Network:
    """The network if the caller may see it; else 404 (as Neutron hides it)."""
    row = session.execute(_BY_ID_LOCKED if lock else _BY_ID, {"id": network_id}).scalars().first()
    if row is None or not caller.can("get_network", target_of(row)):
        raise NetworkNotFound(net_id=network_id)
    return row


def list_networks(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = visible(caller)
        stmt = select(Network).where(*vis, *where(q, COLUMNS, id_column=Network.id))
        page = fetch(s, stmt, Network, q, sort_columns=SORT, visible=vis,
                     not_found=lambda m: NetworkNotFound(net_id=m))
        rows = [r[0] for r in page.rows]
        items = [i for i in views(s, rows) if caller.can("get_network", i)]
    return finish(caller, NETWORKS, items, q.fields), page


def show(net: Net, caller: Caller, network_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        row = load(s, caller, network_id)
        return one(caller, NETWORKS, views(s, [row])[0], fields)


# --- writes -----------------------------------------------------------------------------


def _physnets(net: Net) -> list[str]:
    return [p.strip() for p in net.config.physical_networks.split(",") if p.strip()]


def _vni_range(net: Net) -> tuple[int, int]:
    low, _, high = net.config.vni_ranges.partition(":")
    return int(low), int(high or low)


def _segment(net: Net, session: Session, p: Parsed) -> tuple[str, str | None, int | None, int]:
    """(network_type, physical_network, segmentation_id, max MTU) for a new network."""
    kind = p.get("provider:network_type", NOT_SPECIFIED)
    physnet = p.get("provider:physical_network", NOT_SPECIFIED)
    seg_id = p.get("provider:segmentation_id", NOT_SPECIFIED)
    if kind is NOT_SPECIFIED:
        if physnet is not NOT_SPECIFIED or seg_id is not NOT_SPECIFIED:
            raise InvalidInput("network_type required")
        return VXLAN, None, _free_vni(net, session), net.config.tenant_network_mtu
    if kind == FLAT:
        if physnet is NOT_SPECIFIED or not physnet:
            raise InvalidInput("physical_network required for flat provider network")
        if physnet not in _physnets(net):
            raise InvalidInput(f"physical_network '{physnet}' unknown for flat provider network")
        if seg_id is not NOT_SPECIFIED and seg_id:
            raise InvalidInput("segmentation_id prohibited for flat provider network")
        taken = session.scalar(
            select(Network.id).where(Network.network_type == FLAT, Network.physical_network == physnet)
        )
        if taken:
            raise FlatNetworkInUse(physical_network=physnet)
        return FLAT, physnet, None, net.config.flat_network_mtu
    if kind == VXLAN:
        if physnet is not NOT_SPECIFIED and physnet:
            raise InvalidInput("provider:physical_network specified for vxlan network")
        if seg_id is NOT_SPECIFIED or seg_id is None:
            return VXLAN, None, _free_vni(net, session), net.config.tenant_network_mtu
        if not 1 <= int(seg_id) <= MAX_VNI:
            raise InvalidInput(f"segmentation_id out of range ({1} through {MAX_VNI})")
        if session.scalar(
            select(Network.id).where(Network.network_type == VXLAN, Network.segmentation_id == seg_id)
        ):
            raise TunnelIdInUse(tunnel_id=seg_id)
        return VXLAN, None, int(seg_id), net.config.tenant_network_mtu
    raise InvalidInput(f"network_type value '{kind}' not supported")


def _free_vni(net: Net, session: Session) -> int:
    """The VNI after the highest in use (one indexed read); only when the range's
    end is reached, the lowest gap."""
    low, high = _vni_range(net)
    db_lock(session, "network-segments", VXLAN)  # one allocation at a time
    top = session.scalar(
        select(func.max(Network.segmentation_id)).where(
            Network.network_type == VXLAN, Network.segmentation_id >= low, Network.segmentation_id <= high
        )
    )
    if top is None:
        return low
    if top < high:
        return int(top) + 1
    used = session.scalars(
        select(Network.segmentation_id)
        .where(Network.network_type == VXLAN, Network.segmentation_id >= low, Network.segmentation_id <= high)
        .order_by(Network.segmentation_id)
    ).all()
    candidate = low
    for vni in used:
        if vni is None or vni < candidate:
            continue
        if vni > candidate:
            break
        candidate += 1
    if candidate > high:
        raise NoNetworkAvailable()
    return candidate


def check_az_hints(net: Net, hints: Iterable[str], resource: str) -> None:
    zones = {a.availability_zone for a in net.agent_source.agents() if a.availability_zone}
    for hint in hints:
        if hint not in zones:
            raise AvailabilityZoneNotFound(availability_zone=hint)


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, NETWORKS, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_network", p.values, attr_rules("create_network", NETWORKS, p, True))
        check_az_hints(net, p["availability_zone_hints"], "network")
    with net.writing() as s:
        wanted: dict[str, int] = {}
        for p in parsed:
            wanted[p["project_id"]] = wanted.get(p["project_id"], 0) + 1
        for pid, count in wanted.items():
            quotas.check(net, s, pid, {"network": count})
        rows = []
        for p in parsed:
            kind, physnet, seg_id, max_mtu = _segment(net, s, p)
            mtu = p["mtu"] or max_mtu
            if mtu > max_mtu:
                raise InvalidInput(f"Requested MTU is too big, maximum is {max_mtu}")
            row = Network(
                id=new_uuid(),
                project_id=p["project_id"],
                name=p["name"],
                admin_state_up=p["admin_state_up"],
                status="ACTIVE",
                shared=p["shared"],
                external=p["router:external"],
                is_default=False,
                mtu=mtu,
                port_security_enabled=p["port_security_enabled"],
                network_type=kind,
                physical_network=physnet,
                segmentation_id=seg_id,
                availability_zone_hints=list(p["availability_zone_hints"]) or None,
                dns_domain=p["dns_domain"],
                **std_columns(p["description"]),
            )
            s.add(row)
            s.flush()
            rows.append(row)
            dataplane.record(s, dataplane.Change(dataplane.NETWORK, dataplane.CREATED, row.id, row.id))
        items = [view(r, [], [], {}) for r in rows]  # new: no subnets, no tags yet
    return finish(caller, NETWORKS, items)


def update(
    net: Net, caller: Caller, network_id: str, body: dict[str, Any], if_match: int | None = None
) -> dict[str, Any]:
    p = parse_update(caller, NETWORKS, body)
    with net.writing() as s:
        row = load(s, caller, network_id, lock=True)
        target = {**target_of(row), **p.values}
        caller.enforce_or_hide(
            "update_network", target, "get_network", NetworkNotFound(net_id=network_id),
            attr_rules("update_network", NETWORKS, p, False),
        )
        check_revision(row, if_match)
        current = {
            "provider:network_type": row.network_type,
            "provider:physical_network": row.physical_network,
            "provider:segmentation_id": row.segmentation_id,
        }
        changed = [k for k in current if k in p.values and p[k] is not NOT_SPECIFIED and p[k] != current[k]]
        if changed:
            raise InvalidInput(
                "Plugin does not support updating the following provider network attributes: "
                "provider:network_type, provider:physical_network"
            )
        if "router:external" in p.values and not p["router:external"] and row.external:
            in_use = s.scalar(
                select(Port.id).where(
                    Port.network_id == row.id,
                    Port.device_owner.in_(("network:router_gateway", "network:floatingip")),
                ).limit(1)
            )
            if in_use:
                raise ExternalNetworkInUse(net_id=row.id)
        if "shared" in p.values and not p["shared"] and row.shared:
            foreign = s.scalar(
                select(Port.id).where(
                    Port.network_id == row.id,
                    Port.project_id != row.project_id,
                    Port.project_id != "",
                    ~Port.device_owner.like("network:%"),
                ).limit(1)
            ) or s.scalar(
                select(Subnet.id).where(Subnet.network_id == row.id, Subnet.project_id != row.project_id).limit(1)
            )
            if foreign:
                raise InvalidSharedSetting(network=row.id)
        if "mtu" in p.values:
            _check_mtu(net, s, row, p["mtu"])
        simple = {
            "name": "name",
            "admin_state_up": "admin_state_up",
            "shared": "shared",
            "router:external": "external",
            "port_security_enabled": "port_security_enabled",
            "dns_domain": "dns_domain",
            "description": "description",
        }
        for attr, column in simple.items():
            if attr in p.values:
                setattr(row, column, p[attr])
        bump(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.NETWORK, dataplane.UPDATED, row.id, row.id))
        return one(caller, NETWORKS, views(s, [row])[0])


def _check_mtu(net: Net, session: Session, row: Network, mtu: int) -> None:
    max_mtu = net.config.flat_network_mtu if row.network_type == FLAT else net.config.tenant_network_mtu
    mtu = mtu or max_mtu
    if mtu > max_mtu:
        raise InvalidInput(f"Requested MTU is too big, maximum is {max_mtu}")
    versions = set(session.scalars(select(Subnet.ip_version).where(Subnet.network_id == row.id)))
    if versions and mtu < 68:
        raise NetworkMTUSubnetConflict(net_id=row.id, mtu=68)
    if 6 in versions and mtu < 1280:
        raise NetworkMTUSubnetConflict(net_id=row.id, mtu=1280)
    row.mtu = mtu


def delete(net: Net, caller: Caller, network_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row = load(s, caller, network_id, lock=True)
        caller.enforce_or_hide("delete_network", target_of(row), "get_network", NetworkNotFound(net_id=network_id))
        check_revision(row, if_match)
        if row.external:
            teardown.remove_free_floating_ips(s, row.id)
        in_use = s.scalars(
            select(Port.id)
            .where(Port.network_id == row.id, ~Port.device_owner.in_(AUTO_DELETE_OWNERS))
            .order_by(Port.created_at, Port.id)
        ).all()
        if in_use:
            raise NetworkInUse(
                net_id=row.id,
                reason="There are one or more ports still in use on the network, id for these ports is: "
                + ",".join(in_use),
            )
        port_ids = list(s.scalars(select(Port.id).where(Port.network_id == row.id)))
        subnet_ids = list(s.scalars(select(Subnet.id).where(Subnet.network_id == row.id)))
        for pid in port_ids:
            dataplane.record(s, dataplane.Change(dataplane.PORT, dataplane.DELETED, pid, row.id))
        drop_tags(s, [row.id, *subnet_ids, *port_ids])
        s.delete(row)  # subnets, ports and allocations go with it (ON DELETE CASCADE)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.NETWORK, dataplane.DELETED, row.id, row.id))


def touch(session: Session, network_id: str) -> None:
    """A subnet came or went: the network's revision moves on."""
    row = session.get(Network, network_id)
    if row is not None:
        bump(row)


__all__ = ["create", "delete", "list_networks", "now", "show", "touch", "update"]
