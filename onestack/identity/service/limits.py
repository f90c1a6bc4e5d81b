"""Unified limits: registered (default) limits and project/domain limits.

The enforcement model is ``flat``, Keystone's default: a limit is checked
against nothing but the existence of its registered limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, Forbidden, NotFound, ValidationError
from onestack.common.ids import new_id
from onestack.identity.models import Limit, Project, Region, RegisteredLimit, Service
from onestack.identity.service._resources import authorize_action, expecting

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"
LIMIT_READER = (
    f"({ADMIN_OR_SYSTEM_READER}) or "
    "(domain_id:%(target.limit.domain.id)s or domain_id:%(target.limit.project.domain_id)s) or "
    "project_id:%(target.limit.project_id)s"
)

POLICIES: dict[str, str] = {
    "identity:get_registered_limit": "",
    "identity:list_registered_limits": "",
    "identity:create_registered_limits": ADMIN,
    "identity:update_registered_limit": ADMIN,
    "identity:delete_registered_limit": ADMIN,
    "identity:get_limit_model": "",
    "identity:get_limit": LIMIT_READER,
    "identity:list_limits": "",
    "identity:create_limits": ADMIN,
    "identity:update_limit": ADMIN,
    "identity:delete_limit": ADMIN,
}

MODEL = {
    "name": "flat",
    "description": (
        "Limit enforcement and validation does not take project hierarchy into consideration."
    ),
}
MAX_LIMIT = 2147483647

REGISTERED_FIELDS = ("service_id", "region_id", "resource_name", "default_limit", "description")
LIMIT_CREATE_FIELDS = ("service_id", "region_id", "resource_name", "resource_limit", "description",
                       "project_id", "domain_id")
LIMIT_UPDATE_FIELDS = ("resource_limit", "description")


# --- shapes ---------------------------------------------------------------------------


def registered_dict(r: RegisteredLimit) -> dict[str, Any]:
    return {
        "id": r.id,
        "service_id": r.service_id,
        "region_id": r.region_id,
        "resource_name": r.resource_name,
        "default_limit": r.default_limit,
        "description": r.description,
    }


def limit_dict(lim: Limit) -> dict[str, Any]:
    return {
        "id": lim.id,
        "project_id": lim.project_id,
        "domain_id": lim.domain_id,
        "service_id": lim.service_id,
        "region_id": lim.region_id,
        "resource_name": lim.resource_name,
        "resource_limit": lim.resource_limit,
        "description": lim.description,
    }


# --- validation -----------------------------------------------------------------------


def _bad(field: str, why: str) -> ValidationError:
    return ValidationError(f"Invalid input for field '{field}': {why}")


def _check_entity(item: Any, allowed: tuple[str, ...], required: tuple[str, ...], amount: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValidationError(f"Invalid input: {item!r} is not of type 'object'.")
    for key in item:
        if key not in allowed:
            raise ValidationError(f"Additional properties are not allowed ('{key}' was unexpected).")
    for key in required:
        if key not in item:
            raise ValidationError(f"'{key}' is a required property.")
    for key in ("service_id", "resource_name"):
        if key in item and (not isinstance(item[key], str) or not item[key] or len(item[key]) > 255):
            raise _bad(key, "it must be a string of 1 to 255 characters.")
    for key in ("region_id", "description", "project_id", "domain_id"):
        if key in item and item[key] is not None and not isinstance(item[key], str):
            raise _bad(key, "it must be a string or null.")
    if "region_id" in item and isinstance(item["region_id"], str) and len(item["region_id"]) > 255:
        raise _bad("region_id", "it is too long (255 characters at most).")
    if amount in item:
        value = item[amount]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(amount, f"{value!r} is not of type 'integer'.")
        if value < -1 or value > MAX_LIMIT:
            raise _bad(amount, f"{value} must be between -1 and {MAX_LIMIT}.")
    return item


def _check_list(body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or key not in body:
        raise ValidationError(f"'{key}' is a required property.")
    items = body[key]
    if not isinstance(items, list):
        raise _bad(key, "it must be a list.")
    if not items:
        raise _bad(key, "[] is too short.")
    return items


def _references(session: Session, item: dict[str, Any], target: str) -> None:
    """Keystone answers 400 'Expecting to find X in Y' for an unknown reference."""
    if item.get("service_id") is not None and session.get(Service, item["service_id"]) is None:
        raise expecting("service_id", target)
    if item.get("region_id") is not None and session.get(Region, item["region_id"]) is None:
        raise expecting("region_id", target)
    if item.get("project_id") is not None:
        p = session.get(Project, item["project_id"])
        if p is None or p.is_domain:
            raise expecting("project_id", target)
    if item.get("domain_id") is not None:
        d = session.get(Project, item["domain_id"])
        if d is None or not d.is_domain:
            raise expecting("domain_id", target)




# --- registered limits ----------------------------------------------------------------


def _registered(session: Session, limit_id: str) -> RegisteredLimit:
    r = session.get(RegisteredLimit, limit_id)
    if r is None:
        raise NotFound(f"Could not find registered limit for {limit_id}.")
    return r


def _find_registered(session: Session, service_id: str, region_id: str | None,
                     resource_name: str) -> RegisteredLimit | None:
    query = select(RegisteredLimit).where(
        RegisteredLimit.service_id == service_id,
        RegisteredLimit.resource_name == resource_name,
        RegisteredLimit.region_id.is_(None) if region_id is None else RegisteredLimit.region_id == region_id,
    )
    return session.scalars(query).first()


def _registered_conflict(item: dict[str, Any]) -> Conflict:
    return Conflict(
        "Conflict occurred attempting to store registered_limit - Duplicate entry found with "
        f"service_id {item['service_id']}, region_id {item.get('region_id')} and resource_name "
        f"{item['resource_name']}."
    )


def create_registered_limits(identity: Identity, ctx: AuthContext, body: Any) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "create_registered_limits")
    items = [
        _check_entity(i, REGISTERED_FIELDS, ("service_id", "resource_name", "default_limit"), "default_limit")
        for i in _check_list(body, "registered_limits")
    ]
    with identity.db.write() as s:
        db.lock(s, "unified-limits")  # uniqueness is checked by a query (region may be null)
        created: list[RegisteredLimit] = []
        seen: set[tuple[str, str | None, str]] = set()
        for item in items:
            _references(s, item, "registered_limit")
            key = (item["service_id"], item.get("region_id"), item["resource_name"])
            if key in seen or _find_registered(s, *key) is not None:
                raise _registered_conflict(item)
            seen.add(key)
            row = RegisteredLimit(id=new_id(), service_id=item["service_id"], region_id=item.get("region_id"),
                                  resource_name=item["resource_name"], default_limit=item["default_limit"],
                                  description=item.get("description"))
            s.add(row)
            created.append(row)
        s.flush()
        return [registered_dict(r) for r in created]


def list_registered_limits(identity: Identity, ctx: AuthContext, filters: dict[str, str]) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_registered_limits")
    with identity.db.read() as s:
        query = select(RegisteredLimit).order_by(RegisteredLimit.id)
        for key in ("service_id", "region_id", "resource_name"):
            if key in filters:
                query = query.where(getattr(RegisteredLimit, key) == filters[key])
        return [registered_dict(r) for r in s.scalars(query)]


def get_registered_limit(identity: Identity, ctx: AuthContext, limit_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_registered_limit")
    with identity.db.read() as s:
        return registered_dict(_registered(s, limit_id))


def _has_limits(session: Session, r: RegisteredLimit) -> bool:
    query = select(Limit.id).where(
        Limit.service_id == r.service_id,
        Limit.resource_name == r.resource_name,
        Limit.region_id.is_(None) if r.region_id is None else Limit.region_id == r.region_id,
    )
    return session.scalars(query).first() is not None


def _in_use(limit_id: str) -> Forbidden:
    return Forbidden(
        f"Unable to update or delete registered limit {limit_id} because there are project limits "
        "associated with it."
    )


def update_registered_limit(identity: Identity, ctx: AuthContext, limit_id: str, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "update_registered_limit")
    if not isinstance(body, dict) or "registered_limit" not in body:
        raise ValidationError("'registered_limit' is a required property.")
    item = _check_entity(body["registered_limit"], REGISTERED_FIELDS, (), "default_limit")
    for key in ("service_id", "resource_name"):
        if key in item and item[key] is None:
            raise _bad(key, "None is not of type 'string'.")
    with identity.db.write() as s:
        db.lock(s, "unified-limits")  # uniqueness is checked by a query (region may be null)
        r = _registered(s, limit_id)
        _references(s, item, "registered_limit")
        new = {
            "service_id": item.get("service_id", r.service_id),
            "region_id": item.get("region_id", r.region_id),
            "resource_name": item.get("resource_name", r.resource_name),
        }
        identity_changed = (new["service_id"], new["region_id"], new["resource_name"]) != (
            r.service_id, r.region_id, r.resource_name)
        if identity_changed:
            if _has_limits(s, r):
                raise _in_use(limit_id)
            other = _find_registered(s, new["service_id"], new["region_id"], new["resource_name"])
            if other is not None and other.id != r.id:
                raise _registered_conflict(new)
        r.service_id = new["service_id"]
        r.region_id = new["region_id"]
        r.resource_name = new["resource_name"]
        if "default_limit" in item:
            r.default_limit = item["default_limit"]
        if "description" in item:
            r.description = item["description"]
        s.flush()
        return registered_dict(r)


def delete_registered_limit(identity: Identity, ctx: AuthContext, limit_id: str) -> None:
    authorize_action(identity, ctx, "delete_registered_limit")
    with identity.db.write() as s:
        db.lock(s, "unified-limits")  # uniqueness is checked by a query (region may be null)
        r = _registered(s, limit_id)
        if _has_limits(s, r):
            raise _in_use(limit_id)
        s.delete(r)


# --- project and domain limits ----------------------------------------------------------


def _limit(session: Session, limit_id: str) -> Limit:
    lim = session.get(Limit, limit_id)
    if lim is None:
        raise NotFound(f"Could not find limit for {limit_id}.")
    return lim


def _limit_target(session: Session, lim: Limit) -> dict[str, Any]:
    limit: dict[str, Any] = {"project_id": lim.project_id, "domain": {"id": lim.domain_id}}
    if lim.project_id is not None:
        project = session.get(Project, lim.project_id)
        limit["project"] = {"id": lim.project_id, "domain_id": project.domain_id if project is not None else None}
    return {"target": {"limit": limit}}


def create_limits(identity: Identity, ctx: AuthContext, body: Any) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "create_limits")
    items = [
        _check_entity(i, LIMIT_CREATE_FIELDS, ("service_id", "resource_name", "resource_limit"), "resource_limit")
        for i in _check_list(body, "limits")
    ]
    for item in items:
        if (item.get("project_id") is None) == (item.get("domain_id") is None):
            raise ValidationError(
                "Invalid input for limit: exactly one of 'project_id' and 'domain_id' must be given."
            )
    with identity.db.write() as s:
        db.lock(s, "unified-limits")  # uniqueness is checked by a query (region may be null)
        created: list[Limit] = []
        seen: set[tuple[Any, ...]] = set()
        for item in items:
            _references(s, item, "limit")
            if _find_registered(s, item["service_id"], item.get("region_id"), item["resource_name"]) is None:
                raise Forbidden("Unable to create a limit that has no corresponding registered limit.")
            key = (item.get("project_id"), item.get("domain_id"), item["service_id"], item.get("region_id"),
                   item["resource_name"])
            if key in seen or _find_limit(s, *key) is not None:
                raise Conflict(
                    "Conflict occurred attempting to store limit - Duplicate entry found with "
                    f"project_id {item.get('project_id')}, domain_id {item.get('domain_id')}, service_id "
                    f"{item['service_id']}, region_id {item.get('region_id')} and resource_name "
                    f"{item['resource_name']}."
                )
            seen.add(key)
            row = Limit(id=new_id(), project_id=item.get("project_id"), domain_id=item.get("domain_id"),
                        service_id=item["service_id"], region_id=item.get("region_id"),
                        resource_name=item["resource_name"], resource_limit=item["resource_limit"],
                        description=item.get("description"))
            s.add(row)
            created.append(row)
        s.flush()
        return [limit_dict(lim) for lim in created]


def _find_limit(session: Session, project_id: str | None, domain_id: str | None, service_id: str,
                region_id: str | None, resource_name: str) -> Limit | None:
    def eq(column: Any, value: str | None) -> Any:
        return column.is_(None) if value is None else column == value

    query = select(Limit).where(
        eq(Limit.project_id, project_id),
        eq(Limit.domain_id, domain_id),
        Limit.service_id == service_id,
        eq(Limit.region_id, region_id),
        Limit.resource_name == resource_name,
    )
    return session.scalars(query).first()


def list_limits(identity: Identity, ctx: AuthContext, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Every limit for admins and system readers; otherwise those of the caller's scope."""
    authorize_action(identity, ctx, "list_limits")
    with identity.db.read() as s:
        query = select(Limit).order_by(Limit.id)
        for key in ("service_id", "region_id", "resource_name", "project_id", "domain_id"):
            if key in filters:
                query = query.where(getattr(Limit, key) == filters[key])
        rows = list(s.scalars(query))
        if not identity.enforcer.check("identity:get_limit", ctx, {"target": {"limit": {}}}):
            rows = [r for r in rows if identity.enforcer.check("identity:get_limit", ctx, _limit_target(s, r))]
        return [limit_dict(r) for r in rows]


def get_limit(identity: Identity, ctx: AuthContext, limit_id: str) -> dict[str, Any]:
    with identity.db.read() as s:
        lim = _limit(s, limit_id)
        authorize_action(identity, ctx, "get_limit", _limit_target(s, lim))
        return limit_dict(lim)


def update_limit(identity: Identity, ctx: AuthContext, limit_id: str, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "update_limit")
    if not isinstance(body, dict) or "limit" not in body:
        raise ValidationError("'limit' is a required property.")
    item = _check_entity(body["limit"], LIMIT_UPDATE_FIELDS, (), "resource_limit")
    with identity.db.write() as s:
        lim = _limit(s, limit_id)
        if "resource_limit" in item:
            lim.resource_limit = item["resource_limit"]
        if "description" in item:
            lim.description = item["description"]
        s.flush()
        return limit_dict(lim)


def delete_limit(identity: Identity, ctx: AuthContext, limit_id: str) -> None:
    authorize_action(identity, ctx, "delete_limit")
    with identity.db.write() as s:
        s.delete(_limit(s, limit_id))


def get_model(identity: Identity, ctx: AuthContext) -> dict[str, str]:
    authorize_action(identity, ctx, "get_limit_model")
    return dict(MODEL)
