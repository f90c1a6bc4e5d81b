"""OS-TRUST: a trustor delegates roles on a project to a trustee.

The trustee authenticates and asks for ``{"scope": {"OS-TRUST:trust": {"id"}}}``;
the token is scoped to the trust's project with the trust's roles (as long as
the trustor still holds them), and its user is the trustor when the trust
impersonates. ``remaining_uses`` counts token issues; ``expires_at`` bounds the
trust and its tokens; deleting a trust revokes its tokens. Redelegation: a
trust-scoped token may create a new trust from its trust when that one allows
redelegation, within ``redelegation_count`` further steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.common.ids import isotime, new_id, utcnow
from onestack.identity import revoke
from onestack.identity.models import Project, Trust, User
from onestack.identity.service._resources import parse_expiry
from onestack.identity.service.app_creds import is_restricted_app_cred
from onestack.identity.service.roles import brief_refs, check_role_refs, resolve_refs

if TYPE_CHECKING:
    from onestack.identity.core import Identity

MAX_REDELEGATION_COUNT = 3  # Keystone's [trust] max_redelegation_count
SYSTEM_READER = "(role:reader and system_scope:all)"
SYSTEM_ADMIN = "(role:admin and system_scope:all)"
TRUSTOR = "user_id:%(target.trust.trustor_user_id)s"
TRUSTEE = "user_id:%(target.trust.trustee_user_id)s"

POLICIES = {
    "identity:create_trust": TRUSTOR,
    "identity:list_trusts": f"{SYSTEM_READER} or rule:admin_required",
    "identity:list_trusts_for_trustor": f"{SYSTEM_READER} or rule:admin_required or {TRUSTOR}",
    "identity:list_trusts_for_trustee": f"{SYSTEM_READER} or rule:admin_required or {TRUSTEE}",
    "identity:get_trust": f"{SYSTEM_READER} or rule:admin_required or {TRUSTOR} or {TRUSTEE}",
    "identity:list_roles_for_trust": f"{SYSTEM_READER} or rule:admin_required or {TRUSTOR} or {TRUSTEE}",
    "identity:get_role_for_trust": f"{SYSTEM_READER} or rule:admin_required or {TRUSTOR} or {TRUSTEE}",
    "identity:delete_trust": f"{SYSTEM_ADMIN} or rule:admin_required or {TRUSTOR}",
}

_KNOWN = {
    "trustor_user_id", "trustee_user_id", "project_id", "impersonation", "roles", "expires_at",
    "remaining_uses", "allow_redelegation", "redelegation_count",
}


def _target(t: Trust) -> dict[str, Any]:
    return {"target": {"trust": {"trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id}}}


def to_wire(s: Session, t: Trust) -> dict[str, Any]:
    extra = t.extra or {}
    return {
        "id": t.id,
        "trustor_user_id": t.trustor_user_id,
        "trustee_user_id": t.trustee_user_id,
        "project_id": t.project_id,
        "impersonation": bool(t.impersonation),
        "expires_at": isotime(t.expires_at, subsecond=True),
        "remaining_uses": t.remaining_uses,
        "allow_redelegation": bool(extra.get("allow_redelegation", False)),
        "redelegation_count": t.redelegation_count,
        "redelegated_trust_id": t.redelegated_trust_id,
        "deleted_at": None,
        "roles": brief_refs(s, list(t.role_ids or [])),
    }


def _live(t: Trust | None) -> bool:
    return t is not None and t.deleted_at is None and (t.expires_at is None or t.expires_at > utcnow())


def create(identity: Identity, ctx: AuthContext, ref: Any) -> dict[str, Any]:
    if not isinstance(ref, dict):
        raise BadRequest("Invalid input for field 'trust': the value must be an object.")
    unknown = set(ref) - _KNOWN
    if unknown:
        raise BadRequest(f"Invalid input for field 'trust': additional properties are not allowed "
                         f"({', '.join(sorted(unknown))} were unexpected).")
    for key in ("trustor_user_id", "trustee_user_id"):
        if not isinstance(ref.get(key), str) or not ref[key]:
            raise BadRequest(f"Invalid input for field '{key}': a user id is required.")
    if not isinstance(ref.get("impersonation"), bool):
        raise BadRequest("Invalid input for field 'impersonation': a boolean is required.")
    project_id = ref.get("project_id")
    if project_id is not None and not isinstance(project_id, str):
        raise BadRequest("Invalid input for field 'project_id': the value must be a string or null.")
    remaining = ref.get("remaining_uses")
    if remaining is not None and (isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 1):
        raise BadRequest("Invalid input for field 'remaining_uses': a positive integer or null is required.")
    allow_redelegation = ref.get("allow_redelegation", False)
    if not isinstance(allow_redelegation, bool):
        raise BadRequest("Invalid input for field 'allow_redelegation': a boolean is required.")
    count = ref.get("redelegation_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise BadRequest("Invalid input for field 'redelegation_count': a non-negative integer is required.")
    expires_at = parse_expiry(ref.get("expires_at"))
    roles = check_role_refs(ref.get("roles", []))
    identity.enforcer.authorize(
        "identity:create_trust", ctx,
        {"target": {"trust": {"trustor_user_id": ref["trustor_user_id"],
                             "trustee_user_id": ref["trustee_user_id"]}}},
    )
    if is_restricted_app_cred(ctx):
        raise Forbidden("You are not authorized to perform the requested action: Using method "
                        "'application_credential' is not allowed for managing trusts.")
    if (ctx.extra or {}).get("oauth"):
        raise Forbidden("You are not authorized to perform the requested action: Cannot create a "
                        "trust with a token issued via delegation.")
    with identity.db.write() as s:
        if s.get(User, ref["trustee_user_id"]) is None:
            raise NotFound(f"Could not find user: {ref['trustee_user_id']}.")
        if project_id is not None:
            proj = s.get(Project, project_id)
            if proj is None or proj.is_domain:
                raise NotFound(f"Could not find project: {project_id}.")
        role_ids = resolve_refs(s, roles, by_domain=False)
        if role_ids and not project_id:
            raise BadRequest("Invalid input for field 'project_id': trusts with roles need a project.")
        if project_id and not ctx.trust_id:
            held = set(identity.tokens.effective_roles(s, ref["trustor_user_id"], project_id=project_id))
            for rid in role_ids:
                if rid not in held:
                    raise Forbidden(f"The trustor does not hold role {rid} on project {project_id}.")
        parent: Trust | None = None
        if ctx.trust_id:
            parent = s.get(Trust, ctx.trust_id)
            if not _live(parent) or parent is None:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "the token's trust is no longer valid.")
            if not (parent.extra or {}).get("allow_redelegation"):
                raise Forbidden("You are not authorized to perform the requested action: "
                                "redelegation is not allowed by the token's trust.")
            if not parent.redelegation_count:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "the trust's redelegation depth is exhausted.")
            if ref.get("impersonation") and not parent.impersonation:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "impersonation cannot be added by redelegation.")
            if project_id != parent.project_id:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "a redelegated trust keeps its project.")
            if any(r not in (parent.role_ids or []) for r in role_ids):
                raise Forbidden("You are not authorized to perform the requested action: "
                                "a redelegated trust can only carry the roles of its trust.")
            if parent.expires_at is not None and (expires_at is None or expires_at > parent.expires_at):
                raise Forbidden("You are not authorized to perform the requested action: "
                                "a redelegated trust cannot outlive its trust.")
            max_count = parent.redelegation_count - 1
            if count is not None and count > max_count:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "redelegation_count exceeds the remaining depth.")
            count = max_count if count is None else count
        elif allow_redelegation:
            if count is not None and count > MAX_REDELEGATION_COUNT:
                raise Forbidden(f"Requested redelegation depth of {count} is greater than allowed "
                                f"{MAX_REDELEGATION_COUNT}.")
            count = MAX_REDELEGATION_COUNT if count is None else count
        else:
            count = None
        trust = Trust(
            id=new_id(),
            trustor_user_id=ref["trustor_user_id"],
            trustee_user_id=ref["trustee_user_id"],
            project_id=project_id,
            impersonation=ref["impersonation"],
            expires_at=expires_at,
            remaining_uses=remaining,
            redelegated_trust_id=parent.id if parent is not None else None,
            redelegation_count=count if allow_redelegation else None,
            role_ids=role_ids,
            extra={"allow_redelegation": allow_redelegation},
        )
        s.add(trust)
        s.flush()
        return to_wire(s, trust)


def _get_live(s: Session, trust_id: str) -> Trust:
    trust = s.get(Trust, trust_id)
    if trust is None or not _live(trust):
        raise NotFound(f"Could not find trust: {trust_id}.")
    return trust


def get(identity: Identity, ctx: AuthContext, trust_id: str) -> dict[str, Any]:
    with identity.db.read() as s:
        trust = _get_live(s, trust_id)
        identity.enforcer.authorize("identity:get_trust", ctx, _target(trust))
        return to_wire(s, trust)


def list_trusts(identity: Identity, ctx: AuthContext, filters: dict[str, str]) -> list[dict[str, Any]]:
    trustor = filters.get("trustor_user_id")
    trustee = filters.get("trustee_user_id")
    if trustor is not None:
        identity.enforcer.authorize("identity:list_trusts_for_trustor", ctx,
                                    {"target": {"trust": {"trustor_user_id": trustor}}})
    if trustee is not None:
        identity.enforcer.authorize("identity:list_trusts_for_trustee", ctx,
                                    {"target": {"trust": {"trustee_user_id": trustee}}})
    if trustor is None and trustee is None:
        identity.enforcer.authorize("identity:list_trusts", ctx, {})
    with identity.db.read() as s:
        stmt = select(Trust).where(Trust.deleted_at.is_(None))
        if trustor is not None:
            stmt = stmt.where(Trust.trustor_user_id == trustor)
        if trustee is not None:
            stmt = stmt.where(Trust.trustee_user_id == trustee)
        return [to_wire(s, t) for t in s.scalars(stmt.order_by(Trust.id)) if _live(t)]


def delete(identity: Identity, ctx: AuthContext, trust_id: str) -> None:
    with identity.db.write() as s:
        trust = s.get(Trust, trust_id)
        if trust is None or trust.deleted_at is not None:
            raise NotFound(f"Could not find trust: {trust_id}.")
        identity.enforcer.authorize("identity:delete_trust", ctx, _target(trust))
        now = utcnow()
        trust.deleted_at = now
        revoke.revoke(s, trust_id=trust.id)
        # Trusts redelegated from this one go with it.
        for child in s.scalars(select(Trust).where(Trust.redelegated_trust_id == trust.id,
                                                   Trust.deleted_at.is_(None))):
            child.deleted_at = now
            revoke.revoke(s, trust_id=child.id)
    identity.touch()


def list_roles(identity: Identity, ctx: AuthContext, trust_id: str) -> list[dict[str, Any]]:
    with identity.db.read() as s:
        trust = _get_live(s, trust_id)
        identity.enforcer.authorize("identity:list_roles_for_trust", ctx, _target(trust))
        return brief_refs(s, list(trust.role_ids or []))


def get_role(identity: Identity, ctx: AuthContext, trust_id: str, role_id: str) -> dict[str, Any]:
    with identity.db.read() as s:
        trust = _get_live(s, trust_id)
        identity.enforcer.authorize("identity:get_role_for_trust", ctx, _target(trust))
        if role_id not in (trust.role_ids or []):
            raise NotFound(f"Could not find role: {role_id}.")
        return brief_refs(s, [role_id])[0]
