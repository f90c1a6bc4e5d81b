"""Roles (global and domain-specific) and implied-role rules.

Keystone's rules kept here: role names are unique per domain (global roles
share one namespace); a role with the ``immutable`` option cannot be changed
or deleted until the option is cleared;
a global role may not imply a domain-specific one, and no role may imply a
prohibited role (``admin`` by default); deleting a role removes its assignments and
implication rules and revokes the tokens that carried it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.common.ids import new_id
from onestack.identity import revoke
from onestack.identity.models import NULL_DOMAIN, Assignment, ImpliedRole, Role
from onestack.identity.service._resources import (
    domain_row,
    filter_rows,
    flush_or_conflict,
    get_row,
    merge_extra,
    name_taken,
    not_found,
    require_matching_id,
)

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
SYSTEM_READER = "role:reader and system_scope:all"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or ({SYSTEM_READER})"

POLICIES: dict[str, str] = {
    "admin_required": "role:admin or is_admin:1",
    "identity:get_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_roles": ADMIN_OR_SYSTEM_READER,
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:get_domain_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_domain_roles": ADMIN_OR_SYSTEM_READER,
    "identity:create_domain_role": ADMIN,
    "identity:update_domain_role": ADMIN,
    "identity:delete_domain_role": ADMIN,
    "identity:get_implied_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_implied_roles": ADMIN_OR_SYSTEM_READER,
    "identity:list_role_inference_rules": ADMIN_OR_SYSTEM_READER,
    "identity:check_implied_role": ADMIN_OR_SYSTEM_READER,
    "identity:create_implied_role": ADMIN,
    "identity:delete_implied_role": ADMIN,
}

# Roles no other role may imply (Keystone's [assignment] prohibited_implied_role).
PROHIBITED_IMPLIED = ("admin",)
ROLE_OPTIONS = {"immutable": bool}
NAME_MAX = 255


# --- input checks shared by the identity areas I own -----------------------------


def require_object(body: Any, key: str) -> dict[str, Any]:
    """``body[key]`` as a dict, or a 400 in Keystone's words."""
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"Invalid input for field '{key}': '{key}' is a required property")
    value = body[key]
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field '{key}': {value!r} is not of type 'object'")
    return value


def check_string(
    ref: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    nullable: bool = False,
    max_length: int = 255,
    min_length: int = 0,
    non_blank: bool = False,
) -> str | None:
    if field not in ref:
        if required:
            raise BadRequest(f"Invalid input for field '{field}': '{field}' is a required property")
        return None
    value = ref[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kinds = "'string', 'null'" if nullable else "'string'"
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is not of type {kinds}")
    if len(value) > max_length:
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is too long")
    if len(value) < min_length or (non_blank and not value.strip()):
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is too short")
    return value


def check_bool(ref: dict[str, Any], field: str) -> bool | None:
    if field not in ref:
        return None
    value = ref[field]
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is not of type 'boolean'")
    return value


# --- wire form ------------------------------------------------------------------


def role_ref(role: Role) -> dict[str, Any]:
    ref: dict[str, Any] = dict(role.extra or {})
    ref.update(
        {
            "id": role.id,
            "name": role.name,
            "domain_id": None if role.domain_id == NULL_DOMAIN else role.domain_id,
            "description": role.description,
            "options": dict(role.options or {}),
        }
    )
    return ref


def brief_refs(s: Session, role_ids: list[str]) -> list[dict[str, Any]]:
    """``{"id", "name", "domain_id"}`` of the roles that still exist, in ``role_ids`` order
    (the roles of a trust or an application credential)."""
    rows = {r.id: r for r in s.scalars(select(Role).where(Role.id.in_(role_ids)))} if role_ids else {}
    return [
        {"id": rid, "name": rows[rid].name,
         "domain_id": None if rows[rid].domain_id == NULL_DOMAIN else rows[rid].domain_id}
        for rid in role_ids if rid in rows
    ]


def check_role_refs(value: Any) -> list[dict[str, Any]]:
    """A body's ``roles``: a list of objects naming an ``id`` or a ``name`` each."""
    if not isinstance(value, list):
        raise BadRequest(f"Invalid input for field 'roles': {value!r} is not of type 'array'")
    for ref in value:
        if not isinstance(ref, dict) or not ({"id", "name"} & set(ref)):
            raise BadRequest("Invalid input for field 'roles': each role needs an id or a name.")
        for key in ("id", "name"):
            if key in ref and not isinstance(ref[key], str):
                raise BadRequest(f"Invalid input for field '{key}': {ref[key]!r} is not of type 'string'")
    return value


def resolve_refs(s: Session, value: Any, *, by_domain: bool) -> list[str]:
    """The ids of a body's ``roles`` list (``{"id"}`` or ``{"name"}`` each; 404 when one is
    unknown), without repeats. A name is looked up among the global roles, or with
    ``by_domain`` in the ref's ``domain_id``."""
    check_role_refs(value)
    ids: list[str] = []
    for ref in value:
        if "id" in ref:
            role = s.get(Role, str(ref["id"]))
        else:
            dom = (ref.get("domain_id") or NULL_DOMAIN) if by_domain else NULL_DOMAIN
            role = s.scalars(select(Role).where(Role.name == str(ref["name"]), Role.domain_id == dom)).first()
        if role is None:
            raise not_found("role", str(ref.get("id", ref.get("name"))))
        if role.id not in ids:
            ids.append(role.id)
    return ids


def _target(role: Role | None) -> dict[str, Any]:
    if role is None:
        return {"target": {"role": {}}}
    return {"target": {"role": role_ref(role)}}


# --- lookups --------------------------------------------------------------------


def _authorized_role(identity: Identity, ctx: AuthContext, s: Session, role_id: str, action: str) -> Role:
    """The role, once ``identity:<action>_role`` (``<action>_domain_role`` for a
    domain-specific role) allows the caller; the check runs for a missing role too."""
    role = s.get(Role, role_id)
    kind = "domain_role" if role is not None and role.domain_id != NULL_DOMAIN else "role"
    identity.enforcer.authorize(f"identity:{action}_{kind}", ctx, _target(role))
    if role is None:
        raise not_found("role", role_id)
    return role


def load_role(session: Session, role_id: str) -> Role:
    return get_row(session, Role, role_id, "role")


def _options(ref: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    options = dict(current or {})
    if "options" not in ref:
        return options
    raw = ref["options"]
    if not isinstance(raw, dict):
        raise BadRequest(f"Invalid input for field 'options': {raw!r} is not of type 'object'")
    for key, value in raw.items():
        kind = ROLE_OPTIONS.get(key)
        if kind is None:
            raise BadRequest(f"Invalid input for field 'options': unknown option {key!r}")
        if value is None:
            options.pop(key, None)
            continue
        if not isinstance(value, kind):
            raise BadRequest(
                f"Invalid input for field 'options/{key}': {value!r} is not of type 'boolean'"
            )
        options[key] = value
    return options


def _is_immutable(role: Role) -> bool:
    return bool((role.options or {}).get("immutable"))


def _duplicate(name: str, domain_id: str) -> Conflict:
    where = "" if domain_id == NULL_DOMAIN else f" at domain ID {domain_id}"
    return Conflict(f"Duplicate entry found with name {name}{where}.")


# --- roles ------------------------------------------------------------------------


def create_role(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    ref = require_object(body, "role")
    name = check_string(
        ref, "name", required=True, max_length=NAME_MAX, min_length=1, non_blank=True
    )
    domain_id = check_string(ref, "domain_id", nullable=True, max_length=64)
    description = check_string(ref, "description", nullable=True, max_length=65535)
    rule = "identity:create_domain_role" if domain_id else "identity:create_role"
    identity.enforcer.authorize(rule, ctx, {"target": {"role": {"domain_id": domain_id}}})
    options = _options(ref)
    extra = {
        k: v
        for k, v in ref.items()
        if k not in ("id", "name", "domain_id", "description", "options", "links")
    }
    assert name is not None
    with identity.db.write() as s:
        if domain_id:
            domain_row(s, domain_id)
        stored_domain = domain_id or NULL_DOMAIN
        if s.execute(
            select(Role.id).where(Role.name == name, Role.domain_id == stored_domain)
        ).first():
            raise _duplicate(name, stored_domain)
        role = Role(
            id=new_id(),
            name=name,
            domain_id=stored_domain,
            description=description,
            options=options,
            extra=extra,
        )
        s.add(role)
        flush_or_conflict(s, _duplicate(name, stored_domain))
        out = role_ref(role)
    identity.touch()
    return out


def get_role(identity: Identity, ctx: AuthContext, role_id: str) -> dict[str, Any]:
    with identity.db.read() as s:
        role = _authorized_role(identity, ctx, s, role_id, "get")
        return role_ref(role)


def list_roles(
    identity: Identity, ctx: AuthContext, filters: dict[str, str]
) -> list[dict[str, Any]]:
    domain_id = filters.get("domain_id")
    rule = "identity:list_domain_roles" if domain_id else "identity:list_roles"
    identity.enforcer.authorize(
        rule, ctx, {"target": {"role": {"domain_id": domain_id}}, "domain_id": domain_id}
    )
    query = select(Role).where(Role.domain_id == (domain_id or NULL_DOMAIN))
    query = filter_rows(query, Role, filters, ("name",))
    with identity.db.read() as s:
        return [role_ref(r) for r in s.scalars(query.order_by(Role.name, Role.id))]


def update_role(identity: Identity, ctx: AuthContext, role_id: str, body: Any) -> dict[str, Any]:
    ref = require_object(body, "role")
    name = check_string(ref, "name", max_length=NAME_MAX, min_length=1, non_blank=True)
    description = check_string(ref, "description", nullable=True, max_length=65535)
    check_string(ref, "domain_id", nullable=True, max_length=64)
    require_matching_id(ref, role_id)
    with identity.db.write() as s:
        role = _authorized_role(identity, ctx, s, role_id, "update")
        if "domain_id" in ref:
            wanted = ref["domain_id"] or NULL_DOMAIN
            if wanted != role.domain_id:
                raise BadRequest("Update of `domain_id` is not allowed.")
        options = _options(ref, role.options)
        if _is_immutable(role) and options.get("immutable", False):
            raise Forbidden(f"Unable to update immutable role {role_id}.")
        if name is not None and name != role.name:
            if name_taken(s, Role, role.domain_id, name):
                raise _duplicate(name, role.domain_id)
            role.name = name
        if "description" in ref:
            role.description = description
        role.options = options
        merge_extra(role, ref, ("id", "name", "domain_id", "description", "options", "links"))
        s.flush()
        out = role_ref(role)
    identity.touch()
    return out


def delete_role(identity: Identity, ctx: AuthContext, role_id: str) -> None:
    with identity.db.write() as s:
        role = _authorized_role(identity, ctx, s, role_id, "delete")
        if _is_immutable(role):
            raise Forbidden(f"Unable to delete immutable role {role_id}.")
        db.lock_row(s, role)  # no grant or implication may be added while it goes
        delete_role_rows(s, role_id)
        s.delete(role)
        revoke.revoke(s, role_id=role_id)
    identity.touch()


def delete_role_rows(session: Session, role_id: str) -> None:
    """Drop a role's assignments and implication rules (the role row stays)."""
    session.execute(delete(Assignment).where(Assignment.role_id == role_id))
    session.execute(
        delete(ImpliedRole).where(
            or_(ImpliedRole.prior_role_id == role_id, ImpliedRole.implied_role_id == role_id)
        )
    )


# --- implied roles ------------------------------------------------------------------


def _brief(role: Role, base: str) -> dict[str, Any]:
    return {"id": role.id, "links": {"self": f"{base}/v3/roles/{role.id}"}, "name": role.name}


def _pair(s: Session, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    return load_role(s, prior_id), load_role(s, implied_id)


def create_implied_role(
    identity: Identity, ctx: AuthContext, prior_id: str, implied_id: str, base: str
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:create_implied_role", ctx, {})
    with identity.db.write() as s:
        prior, implied = _pair(s, prior_id, implied_id)
        if implied.domain_id != NULL_DOMAIN and prior.domain_id == NULL_DOMAIN:
            # A global role may not imply a domain-specific one (the reverse is fine).
            raise Forbidden(f"{implied_id} cannot be an implied roles.")
        if implied.name in PROHIBITED_IMPLIED:
            raise Forbidden(f"{implied_id} cannot be an implied roles.")
        if s.get(ImpliedRole, (prior_id, implied_id)) is not None:
            raise Conflict(
                f"Conflict occurred attempting to store implied_role - "
                f"{prior_id} already implies {implied_id}."
            )
        s.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
        s.flush()
        out = _inference_body(prior, implied, base)
    identity.touch()
    return out


def _inference_body(prior: Role, implied: Role, base: str) -> dict[str, Any]:
    return {
        "role_inference": {"prior_role": _brief(prior, base), "implies": _brief(implied, base)},
        "links": {"self": f"{base}/v3/roles/{prior.id}/implies/{implied.id}"},
    }


def get_implied_role(
    identity: Identity,
    ctx: AuthContext,
    prior_id: str,
    implied_id: str,
    base: str,
    *,
    check_only: bool = False,
) -> dict[str, Any]:
    rule = "identity:check_implied_role" if check_only else "identity:get_implied_role"
    identity.enforcer.authorize(rule, ctx, {})
    with identity.db.read() as s:
        prior, implied = _pair(s, prior_id, implied_id)
        if s.get(ImpliedRole, (prior_id, implied_id)) is None:
            raise NotFound(f"{prior_id} does not imply {implied_id}.")
        return _inference_body(prior, implied, base)


def delete_implied_role(
    identity: Identity, ctx: AuthContext, prior_id: str, implied_id: str
) -> None:
    identity.enforcer.authorize("identity:delete_implied_role", ctx, {})
    with identity.db.write() as s:
        _pair(s, prior_id, implied_id)
        rule = s.get(ImpliedRole, (prior_id, implied_id))
        if rule is None:
            raise NotFound(f"{prior_id} does not imply {implied_id}.")
        s.delete(rule)
        # Tokens carrying the prior role also carried what it implied.
        revoke.revoke(s, role_id=prior_id)
    identity.touch()


def list_implied_roles(
    identity: Identity, ctx: AuthContext, prior_id: str, base: str
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:list_implied_roles", ctx, {})
    with identity.db.read() as s:
        prior = load_role(s, prior_id)
        implied = s.scalars(
            select(Role)
            .join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
            .where(ImpliedRole.prior_role_id == prior_id)
            .order_by(Role.name)
        ).all()
        return {
            "role_inference": {
                "prior_role": _brief(prior, base),
                "implies": [_brief(r, base) for r in implied],
            },
            "links": {"self": f"{base}/v3/roles/{prior_id}/implies"},
        }


def list_role_inferences(identity: Identity, ctx: AuthContext, base: str) -> dict[str, Any]:
    identity.enforcer.authorize("identity:list_role_inference_rules", ctx, {})
    with identity.db.read() as s:
        rules = s.execute(select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)).all()
        ids = {r[0] for r in rules} | {r[1] for r in rules}
        roles = {r.id: r for r in s.scalars(select(Role).where(Role.id.in_(ids)))} if ids else {}
        grouped: dict[str, list[Role]] = {}
        for prior_id, implied_id in rules:
            grouped.setdefault(prior_id, []).append(roles[implied_id])
        inferences = [
            {
                "prior_role": _brief(roles[prior_id], base),
                "implies": [_brief(r, base) for r in sorted(implied, key=lambda r: r.name)],
            }
            for prior_id, implied in sorted(grouped.items(), key=lambda kv: roles[kv[0]].name)
        ]
        return {"role_inferences": inferences, "links": {"self": f"{base}/v3/role_inferences"}}
