"""Application credentials and access rules (``/v3/users/{user_id}/application_credentials``).

An application credential belongs to the user who created it and to the
project of the token that created it; it carries a subset of the user's roles
there. Authenticating with it (``application_credential`` method) yields a
token scoped to that project with those roles. A *restricted* credential's
tokens (the default) may not create application credentials or trusts.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.common.ids import new_id, utcnow
from onestack.identity.models import AccessRule, ApplicationCredential
from onestack.identity.passwords import hash_password
from onestack.identity.service._resources import parse_expiry
from onestack.identity.service.roles import brief_refs, check_role_refs, resolve_refs

if TYPE_CHECKING:
    from onestack.identity.core import Identity

OWNER = "user_id:%(target.user_id)s"
SYSTEM_READER = "(role:reader and system_scope:all)"
SYSTEM_ADMIN = "(role:admin and system_scope:all)"

POLICIES = {
    "identity:get_application_credential": f"{SYSTEM_READER} or rule:admin_required or {OWNER}",
    "identity:list_application_credentials": f"{SYSTEM_READER} or rule:admin_required or {OWNER}",
    "identity:create_application_credential": OWNER,
    "identity:delete_application_credential": f"{SYSTEM_ADMIN} or rule:admin_required or {OWNER}",
    "identity:get_access_rule": f"{SYSTEM_READER} or rule:admin_required or {OWNER}",
    "identity:list_access_rules": f"{SYSTEM_READER} or rule:admin_required or {OWNER}",
    "identity:delete_access_rule": f"{SYSTEM_ADMIN} or rule:admin_required or {OWNER}",
}

_KNOWN = {"name", "description", "secret", "expires_at", "roles", "unrestricted", "access_rules"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


def is_restricted_app_cred(ctx: AuthContext) -> bool:
    ac = (ctx.extra or {}).get("application_credential")
    return bool(ctx.app_cred_id) and bool(ac is None or ac.get("restricted", True))


def _authorize(identity: Identity, rule: str, ctx: AuthContext, user_id: str) -> None:
    identity.enforcer.authorize(rule, ctx, {"target": {"user_id": user_id}, "user_id": user_id})


def _generate_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(64)).decode("ascii").rstrip("=")


def to_wire(s: Session, ac: ApplicationCredential) -> dict[str, Any]:
    return {
        "id": ac.id,
        "name": ac.name,
        "description": ac.description,
        "user_id": ac.user_id,
        "project_id": ac.project_id,
        "system": ac.system,
        # Keystone returns the stored time in Python's isoformat (no zone suffix).
        "expires_at": ac.expires_at.isoformat() if ac.expires_at else None,
        "unrestricted": bool(ac.unrestricted),
        "roles": brief_refs(s, list(ac.role_ids or [])),
        "access_rules": [dict(r) for r in ac.access_rules or []],
    }


def _parse_expiry(value: Any) -> datetime | None:
    when = parse_expiry(value)
    if when is not None and when <= utcnow():
        raise BadRequest("Invalid application credential: expires_at is in the past.")
    return when


def _access_rules(s: Session, user_id: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadRequest(f"Invalid input for field 'access_rules': {value!r} is not of type 'array'")
    out: list[dict[str, str]] = []
    for ref in value:
        if not isinstance(ref, dict):
            raise BadRequest("Invalid input for field 'access_rules': each rule must be an object.")
        if set(ref) == {"id"}:
            rule = s.get(AccessRule, str(ref["id"]))
            if rule is None or rule.user_id != user_id:
                raise NotFound(f"Could not find access rule: {ref['id']}.")
        else:
            service, path, method = ref.get("service"), ref.get("path"), ref.get("method")
            if set(ref) - {"id", "service", "path", "method"}:
                raise BadRequest("Invalid input for field 'access_rules': unknown attribute.")
            if not isinstance(service, str) or not isinstance(path, str) or method not in _METHODS:
                raise BadRequest("Invalid input for field 'access_rules': service, path and method "
                                 "(an HTTP method) are required.")
            rule = s.scalars(select(AccessRule).where(
                AccessRule.user_id == user_id, AccessRule.service == service,
                AccessRule.path == path, AccessRule.method == method,
            )).first()
            if rule is None:
                rule = AccessRule(id=new_id(), user_id=user_id,
                                  service=service, path=path, method=method)
                s.add(rule)
                s.flush()
        out.append({"id": rule.id, "service": rule.service, "path": rule.path, "method": rule.method})
    return out


def create(identity: Identity, ctx: AuthContext, user_id: str, ref: Any) -> dict[str, Any]:
    if not isinstance(ref, dict):
        raise BadRequest("Invalid input for field 'application_credential': the value must be an object.")
    _authorize(identity, "identity:create_application_credential", ctx, user_id)
    if is_restricted_app_cred(ctx):
        raise Forbidden("You are not authorized to perform the requested action: Using method "
                        "'application_credential' is not allowed for managing additional "
                        "application credentials.")
    if ctx.trust_id:
        raise Forbidden("You are not authorized to perform the requested action: Using trust-scoped "
                        "token to create application credentials is not allowed.")
    unknown = set(ref) - _KNOWN
    if unknown:
        raise BadRequest(f"Invalid input for field 'application_credential': additional properties "
                         f"are not allowed ({', '.join(sorted(unknown))} were unexpected).")
    name = ref.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("Invalid input for field 'name': a non-empty string of at most 255 characters "
                         "is required.")
    description = ref.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest("Invalid input for field 'description': the value must be a string.")
    unrestricted = ref.get("unrestricted", False)
    if not isinstance(unrestricted, bool):
        raise BadRequest("Invalid input for field 'unrestricted': the value must be a boolean.")
    secret = ref.get("secret")
    if secret is None:
        secret = _generate_secret()
    elif not isinstance(secret, str) or not secret or len(secret) > 4096:
        raise BadRequest("Invalid input for field 'secret': a non-empty string is required.")
    expires_at = _parse_expiry(ref.get("expires_at"))
    if "roles" in ref:  # Keystone's schema: an array when given (null is not one)
        check_role_refs(ref["roles"])
    if "access_rules" in ref and not isinstance(ref["access_rules"], list):
        raise BadRequest(f"Invalid input for field 'access_rules': {ref['access_rules']!r} is not of type 'array'")
    if not ctx.project_id:
        raise BadRequest("Application credentials can only be created with a project-scoped token.")
    secret_hash = hash_password(identity.settings, secret)
    with identity.db.write() as s:
        held = identity.tokens.effective_roles(s, user_id, project_id=ctx.project_id)
        if ref.get("roles"):
            role_ids = resolve_refs(s, ref["roles"], by_domain=True)
        else:
            role_ids = [r for r in ctx.role_ids if r in held]
        for rid in role_ids:
            if rid not in held:
                raise NotFound(f"Could not find role assignment with role: {rid}, user or group: "
                               f"{user_id}, project, domain, or system: {ctx.project_id}.")
        if not role_ids:
            raise BadRequest("Invalid input for field 'roles': at least one role is required.")
        dup = s.scalars(select(ApplicationCredential).where(
            ApplicationCredential.user_id == user_id, ApplicationCredential.name == name
        )).first()
        if dup is not None:
            raise Conflict("Conflict occurred attempting to store application_credential - "
                           "Duplicate entry.")
        rules = _access_rules(s, user_id, ref.get("access_rules", []))
        ac = ApplicationCredential(
            id=new_id(), name=name, secret_hash=secret_hash, description=description,
            user_id=user_id, project_id=ctx.project_id, system=None, expires_at=expires_at,
            unrestricted=unrestricted, role_ids=role_ids, access_rules=rules, created_at=utcnow(),
        )
        s.add(ac)
        s.flush()
        out = to_wire(s, ac)
    identity.touch()
    out["secret"] = secret
    return out


def _get_row(s: Session, user_id: str, app_cred_id: str) -> ApplicationCredential:
    ac = s.get(ApplicationCredential, app_cred_id)
    if ac is None or ac.user_id != user_id:
        raise NotFound(f"Could not find Application Credential: {app_cred_id}.")
    return ac


def get(identity: Identity, ctx: AuthContext, user_id: str, app_cred_id: str) -> dict[str, Any]:
    _authorize(identity, "identity:get_application_credential", ctx, user_id)
    with identity.db.read() as s:
        return to_wire(s, _get_row(s, user_id, app_cred_id))


def list_for_user(identity: Identity, ctx: AuthContext, user_id: str, name: str | None) -> list[dict[str, Any]]:
    _authorize(identity, "identity:list_application_credentials", ctx, user_id)
    with identity.db.read() as s:
        stmt = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
        if name is not None:
            stmt = stmt.where(ApplicationCredential.name == name)
        return [to_wire(s, ac) for ac in s.scalars(stmt.order_by(ApplicationCredential.name))]


def delete(identity: Identity, ctx: AuthContext, user_id: str, app_cred_id: str) -> None:
    _authorize(identity, "identity:delete_application_credential", ctx, user_id)
    if is_restricted_app_cred(ctx):
        raise Forbidden("You are not authorized to perform the requested action: Using method "
                        "'application_credential' is not allowed for managing additional "
                        "application credentials.")
    with identity.db.write() as s:
        s.delete(_get_row(s, user_id, app_cred_id))
    # Tokens of the credential fail validation from now on (it no longer exists).
    identity.touch()


# --- access rules --------------------------------------------------------------------


def _rule_wire(r: AccessRule) -> dict[str, str]:
    return {"id": r.id, "service": r.service, "path": r.path, "method": r.method}


def list_access_rules(identity: Identity, ctx: AuthContext, user_id: str,
                      filters: dict[str, str]) -> list[dict[str, str]]:
    _authorize(identity, "identity:list_access_rules", ctx, user_id)
    with identity.db.read() as s:
        stmt = select(AccessRule).where(AccessRule.user_id == user_id)
        for key in ("service", "path", "method"):
            if key in filters:
                stmt = stmt.where(getattr(AccessRule, key) == filters[key])
        return [_rule_wire(r) for r in s.scalars(stmt.order_by(AccessRule.id))]


def get_access_rule(identity: Identity, ctx: AuthContext, user_id: str, rule_id: str) -> dict[str, str]:
    _authorize(identity, "identity:get_access_rule", ctx, user_id)
    with identity.db.read() as s:
        rule = s.get(AccessRule, rule_id)
        if rule is None or rule.user_id != user_id:
            raise NotFound(f"Could not find access rule: {rule_id}.")
        return _rule_wire(rule)


def delete_access_rule(identity: Identity, ctx: AuthContext, user_id: str, rule_id: str) -> None:
    _authorize(identity, "identity:delete_access_rule", ctx, user_id)
    with identity.db.write() as s:
        rule = s.get(AccessRule, rule_id)
        if rule is None or rule.user_id != user_id:
            raise NotFound(f"Could not find access rule: {rule_id}.")
        for ac in s.scalars(select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)):
            if any(r.get("id") == rule_id for r in ac.access_rules or []):
                raise Forbidden("Cannot delete access rule in use by an application credential.",
                                title="Forbidden")
        s.delete(rule)
