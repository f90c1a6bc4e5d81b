"""Regions (``/v3/regions``): client-chosen or generated ids, a parent
hierarchy without cycles; deleting a region deletes its child regions and is
refused while any of them holds endpoints (as Keystone)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden
from onestack.common.ids import new_id
from onestack.identity.models import Endpoint, PolicyAssociation, Region
from onestack.identity.service._resources import filter_rows, get_row, require_matching_id
from onestack.identity.service.roles import check_string, require_object

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"

POLICIES: dict[str, str] = {
    "identity:get_region": "",
    "identity:list_regions": "",
    "identity:create_region": ADMIN,
    "identity:update_region": ADMIN,
    "identity:delete_region": ADMIN,
}

_KNOWN = ("id", "description", "parent_region_id", "links")


def region_ref(region: Region) -> dict[str, Any]:
    ref: dict[str, Any] = dict(region.extra or {})
    ref.update(
        {
            "id": region.id,
            "description": region.description or "",
            "parent_region_id": region.parent_region_id,
        }
    )
    return ref


def _extra(ref: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ref.items() if k not in _KNOWN}


def load_region(s: Session, region_id: str) -> Region:
    return get_row(s, Region, region_id, "region")


def _check_parent(s: Session, region_id: str, parent_id: str | None) -> None:
    """The parent exists (404) and does not make a cycle (400)."""
    if parent_id is None:
        return
    if parent_id == region_id:
        raise BadRequest(
            f"The specified parent region {parent_id} would create a circular region hierarchy."
        )
    load_region(s, parent_id)
    seen = {region_id}
    current: str | None = parent_id
    while current is not None:
        if current in seen:
            raise BadRequest(
                f"The specified parent region {parent_id} would create a circular region hierarchy."
            )
        seen.add(current)
        row = s.get(Region, current)
        current = row.parent_region_id if row is not None else None


def create_region(
    identity: Identity, ctx: AuthContext, body: Any, region_id: str | None = None
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:create_region", ctx, {})
    ref = require_object(body, "region")
    given = check_string(ref, "id", max_length=255, min_length=1)
    if region_id is not None and given is not None and given != region_id:
        raise BadRequest(f'Conflicting region IDs specified: "{region_id}" != "{given}"')
    rid = region_id or given or new_id()
    description = check_string(ref, "description", nullable=True, max_length=255) or ""
    parent = check_string(ref, "parent_region_id", nullable=True, max_length=255)
    with identity.db.write() as s:
        if s.get(Region, rid) is not None:
            raise Conflict(f"Conflict occurred attempting to store region - Duplicate ID, {rid}.")
        _check_parent(s, rid, parent)
        region = Region(id=rid, description=description, parent_region_id=parent, extra=_extra(ref))
        s.add(region)
        s.flush()
        out = region_ref(region)
    identity.touch()
    return out


def get_region(identity: Identity, ctx: AuthContext, region_id: str) -> dict[str, Any]:
    identity.enforcer.authorize("identity:get_region", ctx, {})
    with identity.db.read() as s:
        return region_ref(load_region(s, region_id))


def list_regions(
    identity: Identity, ctx: AuthContext, filters: dict[str, str]
) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:list_regions", ctx, {})
    query = select(Region).order_by(Region.id)
    query = filter_rows(query, Region, filters, ("parent_region_id",))
    with identity.db.read() as s:
        return [region_ref(r) for r in s.scalars(query)]


def update_region(
    identity: Identity, ctx: AuthContext, region_id: str, body: Any
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:update_region", ctx, {})
    ref = require_object(body, "region")
    check_string(ref, "id", nullable=True)
    require_matching_id(ref, region_id)
    description = check_string(ref, "description", nullable=True, max_length=255)
    parent = check_string(ref, "parent_region_id", nullable=True, max_length=255)
    with identity.db.write() as s:
        region = load_region(s, region_id)
        if "parent_region_id" in ref:
            _check_parent(s, region_id, parent)
            region.parent_region_id = parent
        if "description" in ref:
            region.description = description or ""
        extra = dict(region.extra or {})
        extra.update(_extra(ref))
        region.extra = extra
        s.flush()
        out = region_ref(region)
    identity.touch()
    return out


def _descendants(s: Session, region_id: str) -> list[str]:
    children: dict[str, list[str]] = {}
    for rid, parent in s.execute(select(Region.id, Region.parent_region_id)):
        if parent:
            children.setdefault(parent, []).append(rid)
    out: list[str] = []
    stack = list(children.get(region_id, ()))
    while stack:
        rid = stack.pop()
        if rid in out or rid == region_id:
            continue
        out.append(rid)
        stack.extend(children.get(rid, ()))
    return out


def region_and_children(s: Session, region_id: str) -> list[str]:
    return [region_id, *_descendants(s, region_id)]


def delete_region(identity: Identity, ctx: AuthContext, region_id: str) -> None:
    identity.enforcer.authorize("identity:delete_region", ctx, {})
    with identity.db.write() as s:
        load_region(s, region_id)
        ids = region_and_children(s, region_id)
        if s.execute(select(Endpoint.id).where(Endpoint.region_id.in_(ids)).limit(1)).first():
            raise Forbidden(
                f"Unable to delete region {region_id} because it or its child regions have "
                "associated endpoints."
            )
        for rid in reversed(ids):
            s.query(PolicyAssociation).filter(PolicyAssociation.region_id == rid).delete()
            s.query(Region).filter(Region.id == rid).delete()
    identity.touch()
