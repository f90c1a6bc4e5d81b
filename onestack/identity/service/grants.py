"""Grants: the ``/v3/{projects,domains,system}/.../{users,groups}/.../roles`` API,
and the token revocations a removed assignment causes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.identity import revoke
from onestack.identity.effective import DOMAIN_TYPES, PROJECT_TYPES, subtree_ids
from onestack.identity.models import (
    GROUP_DOMAIN,
    GROUP_PROJECT,
    GROUP_SYSTEM,
    NULL_DOMAIN,
    USER_DOMAIN,
    USER_PROJECT,
    USER_SYSTEM,
    Assignment,
    Group,
    Project,
    Role,
    User,
    UserGroupMembership,
)
from onestack.identity.service.roles import role_ref

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
SYSTEM_READER = "role:reader and system_scope:all"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or ({SYSTEM_READER})"
_ACTOR_IN_DOMAIN = "(domain_id:%(target.user.domain_id)s or domain_id:%(target.group.domain_id)s)"
_TARGET_IN_DOMAIN = "(domain_id:%(target.project.domain_id)s or domain_id:%(target.domain.id)s)"
GRANTS_DOMAIN_READER = f"role:reader and {_ACTOR_IN_DOMAIN} and {_TARGET_IN_DOMAIN}"

POLICIES: dict[str, str] = {
    "identity:check_grant": f"{ADMIN} or ({SYSTEM_READER}) or ({GRANTS_DOMAIN_READER})",
    "identity:list_grants": f"{ADMIN} or ({SYSTEM_READER}) or ({GRANTS_DOMAIN_READER})",
    "identity:create_grant": ADMIN,
    "identity:revoke_grant": ADMIN,
    "identity:list_system_grants_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:check_system_grant_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:create_system_grant_for_user": ADMIN,
    "identity:revoke_system_grant_for_user": ADMIN,
    "identity:list_system_grants_for_group": ADMIN_OR_SYSTEM_READER,
    "identity:check_system_grant_for_group": ADMIN_OR_SYSTEM_READER,
    "identity:create_system_grant_for_group": ADMIN,
    "identity:revoke_system_grant_for_group": ADMIN,
    "identity:list_role_assignments": (
        f"{ADMIN} or ({SYSTEM_READER}) or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:list_role_assignments_for_tree": (
        f"{ADMIN} or ({SYSTEM_READER}) or (role:reader and domain_id:%(target.project.domain_id)s)"
        " or (role:admin and project_id:%(target.project.id)s)"
    ),
}

_TYPES = {
    ("user", "project"): USER_PROJECT,
    ("group", "project"): GROUP_PROJECT,
    ("user", "domain"): USER_DOMAIN,
    ("group", "domain"): GROUP_DOMAIN,
    ("user", "system"): USER_SYSTEM,
    ("group", "system"): GROUP_SYSTEM,
}


@dataclass(frozen=True)
class Grant:
    """One grant as the URL names it."""

    actor: str  # "user" | "group"
    actor_id: str
    target: str  # "project" | "domain" | "system"
    target_id: str  # SYSTEM_TARGET for the system
    role_id: str | None = None
    inherited: bool = False

    @property
    def type(self) -> str:
        return _TYPES[(self.actor, self.target)]


def _load_grant_refs(s: Session, grant: Grant) -> dict[str, Any]:
    """Check every id the grant names exists (404 otherwise); the policy target."""
    target: dict[str, Any] = {}
    if grant.actor == "user":
        user = s.get(User, grant.actor_id)
        if user is None:
            raise NotFound(f"Could not find user: {grant.actor_id}.")
        target["user"] = {"id": user.id, "domain_id": user.domain_id}
    else:
        group = s.get(Group, grant.actor_id)
        if group is None:
            raise NotFound(f"Could not find group: {grant.actor_id}.")
        target["group"] = {"id": group.id, "domain_id": group.domain_id}
    if grant.target == "project":
        project = s.get(Project, grant.target_id)
        if project is None or project.is_domain:
            raise NotFound(f"Could not find project: {grant.target_id}.")
        target["project"] = {"id": project.id, "domain_id": project.domain_id}
    elif grant.target == "domain":
        domain = s.get(Project, grant.target_id)
        if domain is None or not domain.is_domain:
            raise NotFound(f"Could not find domain: {grant.target_id}.")
        target["domain"] = {"id": domain.id}
    if grant.role_id is not None:
        role = s.get(Role, grant.role_id)
        if role is None:
            raise NotFound(f"Could not find role: {grant.role_id}.")
        target["role"] = {
            "id": role.id,
            "name": role.name,
            "domain_id": None if role.domain_id == NULL_DOMAIN else role.domain_id,
        }
    return {"target": target}


def _rule(grant: Grant, action: str) -> str:
    if grant.target == "system":
        kind = {
            "check": "check_system_grant_for_",
            "list": "list_system_grants_for_",
            "create": "create_system_grant_for_",
            "revoke": "revoke_system_grant_for_",
        }[action]
        return f"identity:{kind}{grant.actor}"
    return {
        "check": "identity:check_grant",
        "list": "identity:list_grants",
        "create": "identity:create_grant",
        "revoke": "identity:revoke_grant",
    }[action]


def _row_key(grant: Grant) -> tuple[str, str, str, str, bool]:
    assert grant.role_id is not None
    return (grant.type, grant.actor_id, grant.target_id, grant.role_id, grant.inherited)


def create_grant(identity: Identity, ctx: AuthContext, grant: Grant) -> None:
    with identity.db.write() as s:
        target = _load_grant_refs(s, grant)
        identity.enforcer.authorize(_rule(grant, "create"), ctx, target)
        role_domain = target["target"]["role"]["domain_id"]
        if role_domain is not None:
            if grant.target == "system":
                raise BadRequest(
                    f"Role {grant.role_id} is a domain-specific role. Unable to use a "
                    "domain-specific role in a system assignment."
                )
            scope_domain = (
                target["target"]["project"]["domain_id"]
                if grant.target == "project"
                else grant.target_id
            )
            if scope_domain != role_domain:
                raise Forbidden(
                    f"{grant.target.capitalize()} {grant.target_id} must be in the same domain as "
                    f"the role {grant.role_id} being assigned."
                )
        if s.get(Assignment, _row_key(grant)) is None:
            typ, actor, tgt, role, inherited = _row_key(grant)
            s.add(
                Assignment(
                    type=typ, actor_id=actor, target_id=tgt, role_id=role, inherited=inherited
                )
            )
            s.flush()
    identity.touch()


def check_grant(identity: Identity, ctx: AuthContext, grant: Grant) -> None:
    with identity.db.read() as s:
        target = _load_grant_refs(s, grant)
        identity.enforcer.authorize(_rule(grant, "check"), ctx, target)
        if s.get(Assignment, _row_key(grant)) is None:
            raise NotFound(_no_assignment(grant))


def _no_assignment(grant: Grant) -> str:
    return (
        f"Could not find role assignment with role: {grant.role_id}, {grant.actor}: "
        f"{grant.actor_id}, {grant.target}: {grant.target_id}."
    )


def revoke_grant(identity: Identity, ctx: AuthContext, grant: Grant) -> None:
    with identity.db.write() as s:
        target = _load_grant_refs(s, grant)
        identity.enforcer.authorize(_rule(grant, "revoke"), ctx, target)
        row = s.get(Assignment, _row_key(grant))
        if row is None:
            raise NotFound(_no_assignment(grant))
        s.delete(row)
        s.flush()
        revoke_for_assignment(s, row)
    identity.touch()


def revoke_for_assignment(s: Session, row: Assignment) -> None:
    """Revoke the tokens an assignment (now removed) may have contributed roles to."""
    if row.type in (GROUP_PROJECT, GROUP_DOMAIN, GROUP_SYSTEM):
        users = list(
            s.scalars(
                select(UserGroupMembership.user_id).where(
                    UserGroupMembership.group_id == row.actor_id
                )
            )
        )
    else:
        users = [row.actor_id]
    if not users:
        return
    projects: list[str] | None = None
    domain: str | None = None
    if row.type in PROJECT_TYPES:
        projects = sorted(subtree_ids(s, [row.target_id])) if row.inherited else [row.target_id]
    elif row.type in DOMAIN_TYPES:
        if row.inherited:
            projects = list(
                s.scalars(
                    select(Project.id).where(
                        Project.domain_id == row.target_id, Project.is_domain.is_(False)
                    )
                )
            )
        else:
            domain = row.target_id
    for user_id in users:
        if domain is not None:
            revoke.revoke_grant(s, user_id, domain_id=domain)
        elif projects is not None and len(projects) <= 50:
            for project_id in projects:
                revoke.revoke_grant(s, user_id, project_id=project_id)
        else:  # system assignments, or too many projects to name one by one
            revoke.revoke_user(s, user_id)


def list_grants(identity: Identity, ctx: AuthContext, grant: Grant) -> list[dict[str, Any]]:
    """The roles given directly by this kind of grant (``grant.role_id`` is None)."""
    with identity.db.read() as s:
        target = _load_grant_refs(s, grant)
        identity.enforcer.authorize(_rule(grant, "list"), ctx, target)
        rows = s.scalars(
            select(Role)
            .join(Assignment, Assignment.role_id == Role.id)
            .where(
                Assignment.type == grant.type,
                Assignment.actor_id == grant.actor_id,
                Assignment.target_id == grant.target_id,
                Assignment.inherited.is_(grant.inherited),
            )
            .order_by(Role.name)
        ).all()
        return [role_ref(r) for r in rows]

