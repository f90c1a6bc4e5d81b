"""Subnet pools and address scopes, and allocating a subnet's prefix from a pool.

A pool's free space is its prefixes minus the subnets already allocated from
it; "any" requests take the first aligned block of the asked length from the
smallest free block that holds it (best fit), "specific" requests must fall
inside one free block. The pool row is locked while allocating (PostgreSQL),
so two concurrent subnets never get overlapping prefixes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.common.db import lock_row
from onestack.common.errors import BadRequest, Conflict
from onestack.network.models import AddressScope, Subnet, SubnetPool
from onestack.network.service import quotas
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
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
    AddressScopeInUse,
    AddressScopeNotFound,
    InvalidInput,
    SubnetPoolNotFound,
    _Templated,
    bad_request,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, fetch, load_tags, where
from onestack.network.service.resources import ADDRESS_SCOPES, SUBNETPOOLS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net as NetService

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
VERSION_INFO = {4: (32, 8, 32), 6: (128, 64, 64)}  # max prefixlen, default min, quota unit


class PrefixVersionMismatch(_Templated, BadRequest):
    template = "Cannot mix IPv4 and IPv6 prefixes in a subnet pool."


class EmptySubnetPoolPrefixList(_Templated, BadRequest):
    template = "Empty subnet pool prefix list."


class UnsupportedMinSubnetPoolPrefix(_Templated, BadRequest):
    template = "Prefix '%(prefix)s' not supported in IPv%(version)s pool."


class IllegalSubnetPoolPrefixBounds(_Templated, BadRequest):
    template = (
        "Illegal prefix bounds: %(prefix_type)s=%(prefixlen)s, "
        "%(base_prefix_type)s=%(base_prefixlen)s."
    )


class IllegalSubnetPoolPrefixUpdate(_Templated, BadRequest):
    template = "Illegal update to prefixes: %(msg)s."


class MinPrefixSubnetAllocationError(_Templated, BadRequest):
    template = "Unable to allocate subnet with prefix length %(prefixlen)s, minimum allowed prefix is %(min_prefixlen)s."


class MaxPrefixSubnetAllocationError(_Templated, BadRequest):
    template = "Unable to allocate subnet with prefix length %(prefixlen)s, maximum allowed prefix is %(max_prefixlen)s."


class SubnetAllocationError(_Templated, Conflict):
    template = "Failed to allocate subnet: %(reason)s."


class SubnetPoolDeleteError(_Templated, BadRequest):
    template = "Unable to delete subnet pool: %(reason)s."


class SubnetPoolQuotaExceeded(_Templated, Conflict):
    template = "Per-project subnet pool prefix quota exceeded."


class NetworkSubnetPoolAffinityError(_Templated, BadRequest):
    template = "Subnets hosted on the same network must be allocated from the same subnet pool."


class AddressScopePrefixConflict(_Templated, Conflict):
    template = (
        "Failed to associate address scope: subnetpools within an address scope "
        "must have unique prefixes."
    )


class IllegalSubnetPoolIpVersionAssociationToAddressScope(_Templated, BadRequest):
    template = (
        "Illegal subnetpool association: subnetpool %(subnetpool_id)s cannot associate with "
        "address scope %(address_scope_id)s because subnetpool ip_version is not %(ip_version)s."
    )


# --- address scopes --------------------------------------------------------------------------


def scope_view(row: AddressScope) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, **owner(row.project_id), "shared": row.shared,
            "ip_version": row.ip_version}


SCOPE_COLUMNS = {
    "id": AddressScope.id, "name": AddressScope.name, "shared": AddressScope.shared,
    "ip_version": AddressScope.ip_version, "tenant_id": AddressScope.project_id,
    "project_id": AddressScope.project_id,
}


def _scope_visible(caller: Caller) -> list[Any]:
    if caller.sees_all:
        return []
    return [or_(AddressScope.project_id == caller.project_id, AddressScope.shared.is_(True))]


def load_scope(session: Session, caller: Caller, scope_id: str) -> AddressScope:
    row = session.get(AddressScope, scope_id)
    if row is None or not caller.can("get_address_scope", scope_view(row)):
        raise AddressScopeNotFound(address_scope_id=scope_id)
    return row


def list_scopes(net: NetService, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = _scope_visible(caller)
        stmt = select(AddressScope).where(*vis, *where(q, SCOPE_COLUMNS))
        page = fetch(s, stmt, AddressScope, q, sort_columns={"tenant_id": "project_id"}, visible=vis,
                     not_found=lambda m: AddressScopeNotFound(address_scope_id=m))
        items = [scope_view(r[0]) for r in page.rows]
    items = [i for i in items if caller.can("get_address_scope", i)]
    return finish(caller, ADDRESS_SCOPES, items, q.fields), page


def show_scope(net: NetService, caller: Caller, scope_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        return one(caller, ADDRESS_SCOPES, scope_view(load_scope(s, caller, scope_id)), fields)


def create_scopes(net: NetService, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, ADDRESS_SCOPES, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_address_scope", p.values, attr_rules("create_address_scope", ADDRESS_SCOPES, p, True))
    with net.db.write() as s:
        rows = []
        for p in parsed:
            row = AddressScope(id=new_uuid(), project_id=p["project_id"], name=p["name"], shared=p["shared"],
                               ip_version=p["ip_version"])
            s.add(row)
            rows.append(row)
        s.flush()
        return finish(caller, ADDRESS_SCOPES, [scope_view(r) for r in rows])


def update_scope(net: NetService, caller: Caller, scope_id: str, body: dict[str, Any]) -> dict[str, Any]:
    p = parse_update(caller, ADDRESS_SCOPES, body)
    with net.db.write() as s:
        row = load_scope(s, caller, scope_id)
        caller.enforce_or_hide("update_address_scope", {**scope_view(row), **p.values}, "get_address_scope",
                               AddressScopeNotFound(address_scope_id=scope_id),
                               attr_rules("update_address_scope", ADDRESS_SCOPES, p, False))
        if "shared" in p.values and not p["shared"] and row.shared:
            raise bad_request("address_scope", "Shared address scope can't be unshared")
        for attr in ("name", "shared"):
            if attr in p.values:
                setattr(row, attr, p[attr])
        s.flush()
        return one(caller, ADDRESS_SCOPES, scope_view(row))


def delete_scope(net: NetService, caller: Caller, scope_id: str) -> None:
    with net.db.write() as s:
        row = load_scope(s, caller, scope_id)
        caller.enforce_or_hide("delete_address_scope", scope_view(row), "get_address_scope",
                               AddressScopeNotFound(address_scope_id=scope_id))
        lock_row(s, row)  # before looking for pools in it
        if s.scalar(select(SubnetPool.id).where(SubnetPool.address_scope_id == row.id).limit(1)):
            raise AddressScopeInUse(address_scope_id=row.id)
        s.delete(row)


# --- subnet pools ----------------------------------------------------------------------------


POOL_COLUMNS = {
    "id": SubnetPool.id, "name": SubnetPool.name, "ip_version": SubnetPool.ip_version,
    "default_prefixlen": SubnetPool.default_prefixlen, "min_prefixlen": SubnetPool.min_prefixlen,
    "max_prefixlen": SubnetPool.max_prefixlen, "shared": SubnetPool.shared,
    "is_default": SubnetPool.is_default, "default_quota": SubnetPool.default_quota,
    "address_scope_id": SubnetPool.address_scope_id, "tenant_id": SubnetPool.project_id,
    "project_id": SubnetPool.project_id, "description": SubnetPool.description,
    "created_at": SubnetPool.created_at, "updated_at": SubnetPool.updated_at,
    "revision_number": SubnetPool.revision_number,
}


def pool_view(row: SubnetPool, tags: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        **owner(row.project_id),
        "prefixes": list(row.prefixes or []),
        "default_quota": row.default_quota,
        "ip_version": row.ip_version,
        "default_prefixlen": row.default_prefixlen,
        "min_prefixlen": row.min_prefixlen,
        "max_prefixlen": row.max_prefixlen,
        "is_default": row.is_default,
        "shared": row.shared,
        "address_scope_id": row.address_scope_id,
        **std(row, tags),
    }


def _pool_visible(caller: Caller) -> list[Any]:
    if caller.sees_all:
        return []
    return [or_(SubnetPool.project_id == caller.project_id, SubnetPool.shared.is_(True))]


def load_pool(session: Session, caller: Caller, pool_id: str, *, lock: bool = False) -> SubnetPool:
    stmt = select(SubnetPool).where(SubnetPool.id == pool_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None or not caller.can("get_subnetpool", pool_view(row, [])):
        raise SubnetPoolNotFound(subnetpool_id=pool_id)
    return row


def list_pools(net: NetService, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = _pool_visible(caller)
        stmt = select(SubnetPool).where(*vis, *where(q, POOL_COLUMNS, id_column=SubnetPool.id))
        page = fetch(s, stmt, SubnetPool, q, sort_columns={"tenant_id": "project_id"}, visible=vis,
                     not_found=lambda m: SubnetPoolNotFound(subnetpool_id=m))
        rows = [r[0] for r in page.rows]
        tags = load_tags(s, [r.id for r in rows])
        items = [pool_view(r, tags.get(r.id, [])) for r in rows]
    items = [i for i in items if caller.can("get_subnetpool", i)]
    return finish(caller, SUBNETPOOLS, items, q.fields), page


def show_pool(net: NetService, caller: Caller, pool_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        row = load_pool(s, caller, pool_id)
        return one(caller, SUBNETPOOLS, pool_view(row, load_tags(s, [row.id]).get(row.id, [])), fields)


def _prefixes(raw: Iterable[str]) -> list[Net]:
    nets = [ipaddress.ip_network(p, strict=False) for p in raw]
    if not nets:
        raise EmptySubnetPoolPrefixList()
    if len({n.version for n in nets}) > 1:
        raise PrefixVersionMismatch()
    return list(ipaddress.collapse_addresses(cast(Any, nets)))


def _bounds(version: int, values: dict[str, Any], current: SubnetPool | None = None) -> tuple[int, int, int]:
    top, default_min, _unit = VERSION_INFO[version]

    def pick(key: str, fallback: int | None) -> int | None:
        value = values.get(key, NOT_SPECIFIED)
        if value is NOT_SPECIFIED:
            return getattr(current, key) if current is not None else fallback
        return int(value)

    min_len = pick("min_prefixlen", default_min)
    max_len = pick("max_prefixlen", top)
    assert min_len is not None and max_len is not None
    default = pick("default_prefixlen", None)
    if default is None:
        default = min_len
    if min_len < 0:
        raise UnsupportedMinSubnetPoolPrefix(prefix=min_len, version=version)
    if min_len > max_len:
        raise IllegalSubnetPoolPrefixBounds(prefix_type="min_prefixlen", prefixlen=min_len,
                                            base_prefix_type="max_prefixlen", base_prefixlen=max_len)
    if max_len > top:
        raise IllegalSubnetPoolPrefixBounds(prefix_type="max_prefixlen", prefixlen=max_len,
                                            base_prefix_type="ip_version_max", base_prefixlen=top)
    if default < min_len:
        raise IllegalSubnetPoolPrefixBounds(prefix_type="default_prefixlen", prefixlen=default,
                                            base_prefix_type="min_prefixlen", base_prefixlen=min_len)
    if default > max_len:
        raise IllegalSubnetPoolPrefixBounds(prefix_type="default_prefixlen", prefixlen=default,
                                            base_prefix_type="max_prefixlen", base_prefixlen=max_len)
    return min_len, max_len, default


def _check_default(session: Session, version: int, exclude: str | None = None) -> None:
    db_lock(session, "subnetpool-default", str(version))  # one default per family, even racing
    stmt = select(SubnetPool.id).where(SubnetPool.is_default.is_(True), SubnetPool.ip_version == version)
    if exclude:
        stmt = stmt.where(SubnetPool.id != exclude)
    if session.scalar(stmt.limit(1)):
        raise InvalidInput(
            "A default subnetpool for this IP family has already been set. "
            "Only one default may exist per IP family"
        )


def _check_scope(session: Session, caller: Caller, scope_id: Any, pool_id: str, version: int,
                 prefixes: list[Net]) -> str | None:
    if scope_id in (None, NOT_SPECIFIED):
        return None
    scope = load_scope(session, caller, scope_id)
    db_lock(session, "address-scope", scope.id)  # no two pools of a scope overlap, even racing
    if scope.ip_version != version:
        raise IllegalSubnetPoolIpVersionAssociationToAddressScope(
            subnetpool_id=pool_id, address_scope_id=scope.id, ip_version=scope.ip_version)
    for other in session.scalars(
        select(SubnetPool).where(SubnetPool.address_scope_id == scope.id, SubnetPool.id != pool_id)
    ):
        for prefix in other.prefixes or []:
            theirs = ipaddress.ip_network(prefix)
            if any(theirs.overlaps(mine) for mine in prefixes):  # type: ignore[arg-type]
                raise AddressScopePrefixConflict()
    return scope.id


def create_pools(net: NetService, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, SUBNETPOOLS, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_subnetpool", p.values, attr_rules("create_subnetpool", SUBNETPOOLS, p, True))
    with net.writing() as s:
        rows = [_create_pool(net, caller, s, p) for p in parsed]
        return finish(caller, SUBNETPOOLS, [pool_view(r, []) for r in rows])


def _create_pool(net: NetService, caller: Caller, s: Session, p: Parsed) -> SubnetPool:
    prefixes = _prefixes(p["prefixes"])
    version = prefixes[0].version
    min_len, max_len, default = _bounds(version, p.values)
    if p["is_default"]:
        _check_default(s, version)
    quotas.check(net, s, p["project_id"], {"subnetpool": 1})
    pool_id = new_uuid()
    scope = _check_scope(s, caller, p["address_scope_id"], pool_id, version, prefixes)
    quota = p["default_quota"]
    row = SubnetPool(
        id=pool_id, project_id=p["project_id"], name=p["name"], ip_version=version,
        default_prefixlen=default, min_prefixlen=min_len, max_prefixlen=max_len, shared=p["shared"],
        is_default=p["is_default"], default_quota=None if quota is NOT_SPECIFIED else quota,
        address_scope_id=scope, prefixes=[str(n) for n in prefixes],
        **std_columns(p["description"]),
    )
    s.add(row)
    s.flush()
    return row


def update_pool(net: NetService, caller: Caller, pool_id: str, body: dict[str, Any],
                if_match: int | None = None) -> dict[str, Any]:
    p = parse_update(caller, SUBNETPOOLS, body)
    with net.writing() as s:
        row = load_pool(s, caller, pool_id, lock=True)
        caller.enforce_or_hide("update_subnetpool", {**pool_view(row, []), **p.values}, "get_subnetpool",
                               SubnetPoolNotFound(subnetpool_id=pool_id),
                               attr_rules("update_subnetpool", SUBNETPOOLS, p, False))
        check_revision(row, if_match)
        prefixes = [ipaddress.ip_network(x) for x in row.prefixes or []]
        if "prefixes" in p.values:
            new = _prefixes(p["prefixes"])
            if new[0].version != row.ip_version:
                raise PrefixVersionMismatch()
            if not all(any(old.subnet_of(n) for n in new) for old in prefixes):  # type: ignore[arg-type]
                raise IllegalSubnetPoolPrefixUpdate(msg="Existing prefixes must be a subset of the new prefixes")
            prefixes = new
        min_len, max_len, default = _bounds(row.ip_version, p.values, row)
        if p.get("is_default") and not row.is_default:
            _check_default(s, row.ip_version, row.id)
        if "address_scope_id" in p.values:
            row.address_scope_id = _check_scope(s, caller, p["address_scope_id"], row.id, row.ip_version,
                                                prefixes)
        row.prefixes = [str(n) for n in prefixes]
        row.min_prefixlen, row.max_prefixlen, row.default_prefixlen = min_len, max_len, default
        for attr in ("name", "description", "is_default"):
            if attr in p.values:
                setattr(row, attr, p[attr])
        if "default_quota" in p.values:
            row.default_quota = p["default_quota"]
        bump(row)
        s.flush()
        return one(caller, SUBNETPOOLS, pool_view(row, load_tags(s, [row.id]).get(row.id, [])))


def delete_pool(net: NetService, caller: Caller, pool_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row = load_pool(s, caller, pool_id, lock=True)
        caller.enforce_or_hide("delete_subnetpool", pool_view(row, []), "get_subnetpool",
                               SubnetPoolNotFound(subnetpool_id=pool_id))
        check_revision(row, if_match)
        if s.scalar(select(Subnet.id).where(Subnet.subnetpool_id == row.id).limit(1)):
            raise SubnetPoolDeleteError(reason="Subnet pool has existing allocations")
        drop_tags(s, [row.id])
        s.delete(row)


# --- allocating a subnet ---------------------------------------------------------------------


def pool_for_subnet(session: Session, caller: Caller, values: dict[str, Any]) -> SubnetPool | None:
    """The pool a new subnet comes from (``subnetpool_id`` or the default), or None."""
    pool_id = values.get("subnetpool_id", NOT_SPECIFIED)
    pool_id = None if pool_id is NOT_SPECIFIED else pool_id
    use_default = bool(values.get("use_default_subnetpool"))
    if use_default and pool_id:
        raise bad_request("subnets", "subnetpool_id and use_default_subnetpool cannot both be specified")
    version = values["ip_version"]
    if pool_id:
        pool = load_pool(session, caller, pool_id, lock=True)
    elif use_default:
        found = session.scalars(
            select(SubnetPool).where(SubnetPool.is_default.is_(True), SubnetPool.ip_version == version)
        ).first()
        if found is None or not caller.can("get_subnetpool", pool_view(found, [])):
            raise bad_request("subnets", f"No default subnetpool found for IPv{version}")
        pool = load_pool(session, caller, found.id, lock=True)
    else:
        return None
    if version != pool.ip_version:
        raise bad_request("subnets", f"Cannot allocate IPv{version} subnet from IPv{pool.ip_version} subnet pool")
    if values["cidr"] is NOT_SPECIFIED and values.get("allocation_pools") not in (None, NOT_SPECIFIED):
        raise bad_request("subnets", "allocation_pools allowed only for specific subnet requests.")
    return pool


def _free_blocks(session: Session, pool: SubnetPool) -> list[Net]:
    free: list[Net] = [ipaddress.ip_network(p) for p in pool.prefixes or []]
    for cidr in session.scalars(select(Subnet.cidr).where(Subnet.subnetpool_id == pool.id)):
        used = ipaddress.ip_network(cidr)
        rest: list[Net] = []
        for block in free:
            if block.overlaps(used):  # type: ignore[arg-type]
                if used.supernet_of(block):  # type: ignore[arg-type]
                    continue
                rest.extend(block.address_exclude(used))  # type: ignore[arg-type]
            else:
                rest.append(block)
        free = rest
    return free


def allocate_prefix(session: Session, pool: SubnetPool, values: dict[str, Any]) -> str:
    """A CIDR for a new subnet from ``pool`` (the requested one, or the first free block)."""
    cidr = values["cidr"]
    if cidr is not NOT_SPECIFIED:
        prefixlen = ipaddress.ip_network(cidr, strict=False).prefixlen
    else:
        prefixlen = values.get("prefixlen", NOT_SPECIFIED)
        prefixlen = pool.default_prefixlen if prefixlen is NOT_SPECIFIED else int(prefixlen)
    if prefixlen > pool.max_prefixlen:
        raise MaxPrefixSubnetAllocationError(prefixlen=prefixlen, max_prefixlen=pool.max_prefixlen)
    if prefixlen < pool.min_prefixlen:
        raise MinPrefixSubnetAllocationError(prefixlen=prefixlen, min_prefixlen=pool.min_prefixlen)
    if pool.default_quota is not None:
        unit = VERSION_INFO[pool.ip_version][2]
        used = sum(
            2 ** (unit - ipaddress.ip_network(c).prefixlen)
            for c in session.scalars(
                select(Subnet.cidr).where(Subnet.subnetpool_id == pool.id, Subnet.project_id == values["project_id"])
            )
        )
        if used + 2 ** (unit - prefixlen) > pool.default_quota:
            raise SubnetPoolQuotaExceeded()
    free = _free_blocks(session, pool)
    if cidr is not NOT_SPECIFIED:
        want = ipaddress.ip_network(cidr, strict=False)
        if any(want.subnet_of(block) for block in free):  # type: ignore[arg-type]
            return str(want)
        raise SubnetAllocationError(reason="Cannot allocate requested subnet from the available set of prefixes")
    for block in sorted(free, key=lambda b: (-b.prefixlen, int(b.network_address))):
        if prefixlen >= block.prefixlen:
            return str(next(block.subnets(new_prefix=prefixlen)))
    raise SubnetAllocationError(reason=f"Insufficient prefix space to allocate subnet size /{prefixlen}")


def check_affinity(session: Session, network_id: str, version: int, pool_id: str | None) -> None:
    """Subnets of one IP version on a network come from the same pool (or none)."""
    others = set(
        session.scalars(
            select(Subnet.subnetpool_id).where(Subnet.network_id == network_id, Subnet.ip_version == version)
        )
    )
    if others and others != {pool_id}:
        raise NetworkSubnetPoolAffinityError()



# --- subnetpool-prefix-ops ---------------------------------------------------------------------


def change_prefixes(net: NetService, caller: Caller, pool_id: str, body: Any, add: bool) -> dict[str, Any]:
    """``PUT /subnetpools/{id}/add_prefixes`` / ``remove_prefixes``: ``{"prefixes": [...]}``."""
    from onestack.network.service import validators
    from onestack.network.service.errors import HTTPBadRequest

    if not isinstance(body, dict) or "prefixes" not in body:
        raise HTTPBadRequest("Unable to find 'prefixes' in request body")
    reason = validators.subnet_list(body["prefixes"])
    if reason:
        raise HTTPBadRequest(f"Invalid input for prefixes. Reason: {reason}.")
    with net.writing() as s:
        row = load_pool(s, caller, pool_id, lock=True)
        action = "add_prefixes" if add else "remove_prefixes"
        caller.enforce_or_hide(action, pool_view(row, []), "get_subnetpool", SubnetPoolNotFound(subnetpool_id=pool_id))
        current = [ipaddress.ip_network(p) for p in row.prefixes or []]
        given = [ipaddress.ip_network(p, strict=False) for p in body["prefixes"]]
        if any(g.version != row.ip_version for g in given):
            raise PrefixVersionMismatch()
        if add:
            merged = list(ipaddress.collapse_addresses(cast(Any, [*current, *given])))
            _check_scope(s, caller, row.address_scope_id, row.id, row.ip_version, merged)
        else:
            used = [ipaddress.ip_network(c) for c in s.scalars(select(Subnet.cidr).where(Subnet.subnetpool_id == row.id))]
            remaining: list[Net] = list(current)
            for prefix in given:
                if any(u.overlaps(prefix) for u in used):  # type: ignore[arg-type]
                    raise IllegalSubnetPoolPrefixUpdate(
                        msg=f"Cannot remove prefix {prefix}: subnets of the pool are allocated from it")
                rest: list[Net] = []
                for block in remaining:
                    if block.overlaps(prefix):  # type: ignore[arg-type]
                        if not prefix.supernet_of(block):  # type: ignore[arg-type]
                            rest.extend(block.address_exclude(prefix))  # type: ignore[arg-type]
                    else:
                        rest.append(block)
                remaining = rest
            merged = list(ipaddress.collapse_addresses(cast(Any, remaining)))
        row.prefixes = [str(n) for n in merged]
        bump(row)
        return {"prefixes": list(row.prefixes)}
