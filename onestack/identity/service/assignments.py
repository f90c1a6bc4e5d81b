"""Role assignments: who holds which role where, and what that adds up to.

An assignment row gives a role to an actor (user or group) on a target (a
project, a domain or the system). ``inherited`` rows (OS-INHERIT) do not apply
to the target they are placed on but to the projects below it: a domain's
inherited assignment applies to every project in the domain, a project's to
every project in its subtree. Roles imply other roles (``implied_role``),
transitively. Domain-specific roles never appear in tokens themselves, only the
global roles they imply (as in Keystone).

The ``effective_*`` functions here are what tokens are built from; they are
written to need few queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.identity.models import (
    GROUP_DOMAIN,
    GROUP_PROJECT,
    GROUP_SYSTEM,
    NULL_DOMAIN,
    SYSTEM_TARGET,
    USER_DOMAIN,
    USER_PROJECT,
    USER_SYSTEM,
    Assignment,
    Group,
    ImpliedRole,
    Project,
    Role,
    User,
    UserGroupMembership,
)
from onestack.identity.service import revoke

if TYPE_CHECKING:
    from onestack.identity.core import Identity

PROJECT_TYPES = (USER_PROJECT, GROUP_PROJECT)
DOMAIN_TYPES = (USER_DOMAIN, GROUP_DOMAIN)
SYSTEM_TYPES = (USER_SYSTEM, GROUP_SYSTEM)


# --- building blocks -----------------------------------------------------------


def group_ids_of(session: Session, user_id: str) -> list[str]:
    rows = session.execute(
        select(UserGroupMembership.group_id).where(UserGroupMembership.user_id == user_id)
    )
    return [r[0] for r in rows]


def implication_map(session: Session) -> dict[str, set[str]]:
    """prior role id -> directly implied role ids (the whole, small, table)."""
    rules: dict[str, set[str]] = {}
    for prior, implied in session.execute(
        select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)
    ):
        rules.setdefault(prior, set()).add(implied)
    return rules


def expand_implied(role_ids: Iterable[str], rules: dict[str, set[str]]) -> list[str]:
    """``role_ids`` plus every role they imply, transitively; order-stable, cycle-safe."""
    seen: dict[str, None] = {}
    stack = list(role_ids)[::-1]
    while stack:
        rid = stack.pop()
        if rid in seen:
            continue
        seen[rid] = None
        stack.extend(sorted(rules.get(rid, ()), reverse=True))
    return list(seen)


def domain_role_ids(session: Session, role_ids: Iterable[str]) -> set[str]:
    """Those of ``role_ids`` that are domain-specific roles."""
    ids = list(set(role_ids))
    if not ids:
        return set()
    rows = session.execute(select(Role.id).where(Role.id.in_(ids), Role.domain_id != NULL_DOMAIN))
    return {r[0] for r in rows}


def project_lineage(session: Session, project_id: str) -> tuple[list[str], str | None]:
    """(ancestor project ids nearest first, the project's domain id).

    Returns ``([], None)`` for an unknown project. Ancestors never include the
    domain itself, even where a top-level project's ``parent_id`` names it.
    """
    row = session.execute(
        select(Project.domain_id, Project.parent_id, Project.is_domain).where(
            Project.id == project_id
        )
    ).first()
    if row is None:
        return [], None
    domain_id, parent_id, is_domain = row
    if is_domain:
        return [], None
    ancestors: list[str] = []
    seen = {project_id}
    while parent_id and parent_id != domain_id and parent_id not in seen:
        seen.add(parent_id)
        parent = session.execute(
            select(Project.parent_id, Project.is_domain).where(Project.id == parent_id)
        ).first()
        if parent is None or parent[1]:
            break
        ancestors.append(parent_id)
        parent_id = parent[0]
    return ancestors, domain_id


def _role_facts(session: Session) -> tuple[dict[str, set[str]], set[str]]:
    """(implication rules, ids of domain-specific roles) in one small query."""
    rules: dict[str, set[str]] = {}
    domain_roles: set[str] = set()
    for a, b in session.execute(_ROLE_FACTS, {"null": NULL_DOMAIN}):
        if b is None:
            domain_roles.add(a)
        else:
            rules.setdefault(a, set()).add(b)
    return rules, domain_roles


def _finish(session: Session, direct: Iterable[str]) -> list[str]:
    """Expand implied roles, then drop domain-specific roles."""
    direct = list(dict.fromkeys(direct))
    if not direct:
        return []
    rules, domain_roles = _role_facts(session)
    return [r for r in expand_implied(direct, rules) if r not in domain_roles]


# Plain SQL (valid on SQLite and PostgreSQL): token issue calls these often,
# and building ORM statements costs more than running them.
_ROLE_FACTS = text(
    "SELECT prior_role_id, implied_role_id FROM implied_role "
    "UNION ALL SELECT id, NULL FROM role WHERE domain_id != :null"
)
_ACTORS = (
    "actors(id) AS (SELECT CAST(:user_id AS VARCHAR(64)) UNION "
    "SELECT group_id FROM user_group_membership WHERE user_id = :user_id)"
)
_PROJECT_ROLES = text(
    "WITH RECURSIVE "
    "anc(id, parent_id, depth) AS ("
    " SELECT id, parent_id, 0 FROM project WHERE id = :target AND is_domain = :f"
    " UNION ALL"
    " SELECT p.id, p.parent_id, anc.depth + 1 FROM project p JOIN anc ON p.id = anc.parent_id"
    " WHERE p.is_domain = :f AND anc.depth < 64), "
    "dom(id) AS (SELECT domain_id FROM project WHERE id = :target AND is_domain = :f), "
    + _ACTORS
    + " SELECT a.role_id FROM assignment a WHERE a.actor_id IN (SELECT id FROM actors) AND ("
    " (a.type IN ('UserProject', 'GroupProject') AND a.inherited = :f AND a.target_id = :target"
    "  AND EXISTS (SELECT 1 FROM dom))"
    " OR (a.type IN ('UserProject', 'GroupProject') AND a.inherited = :t"
    "  AND a.target_id IN (SELECT id FROM anc WHERE depth > 0))"
    " OR (a.type IN ('UserDomain', 'GroupDomain') AND a.inherited = :t"
    "  AND a.target_id IN (SELECT id FROM dom)))"
)
_DOMAIN_ROLES = text(
    "WITH "
    + _ACTORS
    + " SELECT a.role_id FROM assignment a WHERE a.actor_id IN (SELECT id FROM actors)"
    " AND a.type IN ('UserDomain', 'GroupDomain') AND a.inherited = :f AND a.target_id = :target"
)
_SYSTEM_ROLES = text(
    "WITH "
    + _ACTORS
    + " SELECT a.role_id FROM assignment a WHERE a.actor_id IN (SELECT id FROM actors)"
    " AND a.type IN ('UserSystem', 'GroupSystem') AND a.target_id = :target"
)


# --- the contract the token provider uses ---------------------------------------


def effective_role_ids(
    session: Session,
    user_id: str,
    *,
    project_id: str | None = None,
    domain_id: str | None = None,
    system: bool = False,
) -> list[str]:
    """The role ids the user holds on exactly one target (project, domain or system).

    Direct user assignments, assignments to the user's groups, OS-INHERIT
    assignments from the project's domain and ancestor projects, and the roles
    all of those imply. Domain-specific roles are left out (only what they
    imply counts). An unknown target gives ``[]``. Two queries.
    """
    targets = [t for t in (project_id, domain_id, SYSTEM_TARGET if system else None) if t]
    if len(targets) != 1:
        raise ValueError("exactly one of project_id, domain_id, system is required")
    if project_id is not None:
        stmt = _PROJECT_ROLES
    elif domain_id is not None:
        stmt = _DOMAIN_ROLES
    else:
        stmt = _SYSTEM_ROLES
    params = {"user_id": user_id, "target": targets[0], "t": True, "f": False}
    rows = session.execute(stmt, params)
    return _finish(session, sorted({r[0] for r in rows}))


def _useful_roles(session: Session, role_ids: set[str]) -> set[str]:
    """Of ``role_ids``, those that put at least one global role in a token."""
    if not role_ids:
        return set()
    rules, domain_roles = _role_facts(session)
    return {
        rid for rid in role_ids if any(r not in domain_roles for r in expand_implied([rid], rules))
    }


def user_project_ids(session: Session, user_id: str) -> list[str]:
    """Every project where the user holds at least one effective role."""
    actors = [user_id, *group_ids_of(session, user_id)]
    rows = session.execute(
        select(
            Assignment.type, Assignment.target_id, Assignment.role_id, Assignment.inherited
        ).where(Assignment.actor_id.in_(actors), Assignment.type.in_(PROJECT_TYPES + DOMAIN_TYPES))
    ).all()
    useful = _useful_roles(session, {r[2] for r in rows})
    rows = [r for r in rows if r[2] in useful]
    direct = {t for typ, t, _, inh in rows if typ in PROJECT_TYPES and not inh}
    inherited_projects = {t for typ, t, _, inh in rows if typ in PROJECT_TYPES and inh}
    inherited_domains = {t for typ, t, _, inh in rows if typ in DOMAIN_TYPES and inh}
    result = set(direct)
    if inherited_domains:
        result.update(
            r[0]
            for r in session.execute(
                select(Project.id).where(
                    Project.domain_id.in_(inherited_domains), Project.is_domain.is_(False)
                )
            )
        )
    if inherited_projects:
        result.update(subtree_ids(session, inherited_projects))
    return sorted(result)


def user_domain_ids(session: Session, user_id: str) -> list[str]:
    """Every domain where the user holds an effective (non-inherited) role."""
    actors = [user_id, *group_ids_of(session, user_id)]
    rows = session.execute(
        select(Assignment.target_id, Assignment.role_id).where(
            Assignment.actor_id.in_(actors),
            Assignment.type.in_(DOMAIN_TYPES),
            Assignment.inherited.is_(False),
        )
    ).all()
    useful = _useful_roles(session, {r[1] for r in rows})
    return sorted({t for t, rid in rows if rid in useful})


def subtree_ids(session: Session, roots: Iterable[str]) -> set[str]:
    """Project ids strictly below any of ``roots`` (the roots themselves excluded)."""
    frontier = set(roots)
    found: set[str] = set()
    while frontier:
        children = {
            r[0]
            for r in session.execute(
                select(Project.id).where(
                    Project.parent_id.in_(frontier), Project.is_domain.is_(False)
                )
            )
        } - found
        found |= children
        frontier = children
    return found


def role_names(session: Session, role_ids: Iterable[str]) -> list[dict[str, str | None]]:
    """``[{"id", "name", "domain_id"}]`` for ``role_ids``, in their order (unknown ids skipped)."""
    ids = list(dict.fromkeys(role_ids))
    if not ids:
        return []
    rows = {
        r[0]: r
        for r in session.execute(select(Role.id, Role.name, Role.domain_id).where(Role.id.in_(ids)))
    }
    return [
        {
            "id": rows[i][0],
            "name": rows[i][1],
            "domain_id": None if rows[i][2] == NULL_DOMAIN else rows[i][2],
        }
        for i in ids
        if i in rows
    ]


# --- grants (the /v3/projects|domains|system/.../roles API) --------------------------

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
    from onestack.identity.service.roles import role_ref

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


# --- GET /v3/role_assignments -----------------------------------------------------


@dataclass
class _Entry:
    """One (possibly derived) assignment, as Keystone's assignment manager sees it."""

    role_id: str
    user_id: str | None = None
    group_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    inherited: bool = False  # an OS-INHERIT assignment listed as placed
    via_group: str | None = None
    via_domain: str | None = None  # inherited from this domain's assignment
    via_project: str | None = None  # inherited from this ancestor's assignment
    prior_role: str | None = None  # implied by this role


@dataclass
class AssignmentQuery:
    user_id: str | None = None
    group_id: str | None = None
    role_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    inherited: bool | None = None  # scope.OS-INHERIT:inherited_to given: == "projects"
    effective: bool = False
    include_names: bool = False
    include_subtree: bool = False

    def validate(self) -> None:
        if self.domain_id and self.project_id:
            raise BadRequest("Specify a domain or project, not both")
        if self.domain_id and self.system:
            raise BadRequest("Specify system or domain, not both")
        if self.project_id and self.system:
            raise BadRequest("Specify system or project, not both")
        if self.user_id and self.group_id:
            raise BadRequest("Specify a user or group, not both")
        if self.effective and self.group_id:
            raise BadRequest(
                "Combining effective and group filter will always result in an empty list."
            )
        if self.effective and self.inherited and self.domain_id:
            raise BadRequest(
                "Combining effective, domain and inherited filters will always result in an "
                "empty list."
            )
        if self.include_subtree and not self.project_id:
            raise BadRequest(
                "scope.project.id must be specified if include_subtree is also specified"
            )


def _row_entry(row: Assignment) -> _Entry:
    entry = _Entry(role_id=row.role_id, inherited=bool(row.inherited))
    if row.type in (USER_PROJECT, USER_DOMAIN, USER_SYSTEM):
        entry.user_id = row.actor_id
    else:
        entry.group_id = row.actor_id
    if row.type in PROJECT_TYPES:
        entry.project_id = row.target_id
    elif row.type in DOMAIN_TYPES:
        entry.domain_id = row.target_id
    else:
        entry.system = True
    return entry


def _replace(entry: _Entry, **changes: Any) -> _Entry:
    data = dict(entry.__dict__)
    data.update(changes)
    return _Entry(**data)


def _direct(s: Session, q: AssignmentQuery, projects: set[str] | None) -> list[_Entry]:
    query = select(Assignment)
    if q.role_id:
        query = query.where(Assignment.role_id == q.role_id)
    if q.user_id:
        query = query.where(
            Assignment.actor_id == q.user_id,
            Assignment.type.in_((USER_PROJECT, USER_DOMAIN, USER_SYSTEM)),
        )
    if q.group_id:
        query = query.where(
            Assignment.actor_id == q.group_id,
            Assignment.type.in_((GROUP_PROJECT, GROUP_DOMAIN, GROUP_SYSTEM)),
        )
    if projects is not None:
        query = query.where(Assignment.type.in_(PROJECT_TYPES), Assignment.target_id.in_(projects))
    if q.domain_id:
        query = query.where(Assignment.type.in_(DOMAIN_TYPES), Assignment.target_id == q.domain_id)
    if q.system:
        query = query.where(Assignment.type.in_(SYSTEM_TYPES))
    if q.inherited is not None:
        query = query.where(Assignment.inherited.is_(q.inherited))
    rows = s.scalars(
        query.order_by(
            Assignment.type, Assignment.actor_id, Assignment.target_id, Assignment.role_id
        )
    ).all()
    return [_row_entry(r) for r in rows]


def _effective(s: Session, q: AssignmentQuery, projects: set[str] | None) -> list[_Entry]:
    query = select(Assignment)
    if q.user_id:
        actors = [q.user_id, *group_ids_of(s, q.user_id)]
        query = query.where(Assignment.actor_id.in_(actors))
    if projects is not None:
        # Only rows that can reach these projects: on them, or inherited from
        # their ancestors or their domains.
        reach: set[str] = set(projects)
        for project_id in projects:
            ancestors, domain = project_lineage(s, project_id)
            reach.update(ancestors)
            if domain is not None:
                reach.add(domain)
        query = query.where(Assignment.target_id.in_(reach))
    elif q.domain_id:
        query = query.where(Assignment.target_id == q.domain_id)
    elif q.system:
        query = query.where(Assignment.type.in_(SYSTEM_TYPES))
    rows = s.scalars(
        query.order_by(
            Assignment.type, Assignment.actor_id, Assignment.target_id, Assignment.role_id
        )
    ).all()
    # Groups -> users.
    group_ids = {r.actor_id for r in rows if r.type in (GROUP_PROJECT, GROUP_DOMAIN, GROUP_SYSTEM)}
    members: dict[str, list[str]] = {}
    if group_ids:
        for user_id, group_id in s.execute(
            select(UserGroupMembership.user_id, UserGroupMembership.group_id)
            .where(UserGroupMembership.group_id.in_(group_ids))
            .order_by(UserGroupMembership.user_id)
        ):
            members.setdefault(group_id, []).append(user_id)
    # Inherited -> the projects they apply to.
    tree: dict[str, list[str]] = {}  # parent -> children
    domain_projects: dict[str, list[str]] = {}
    if any(r.inherited for r in rows):
        for pid, parent, dom in s.execute(
            select(Project.id, Project.parent_id, Project.domain_id)
            .where(Project.is_domain.is_(False))
            .order_by(Project.id)
        ):
            domain_projects.setdefault(dom, []).append(pid)
            if parent:
                tree.setdefault(parent, []).append(pid)

    def below(root: str) -> list[str]:
        out: list[str] = []
        stack = list(tree.get(root, ()))
        seen: set[str] = set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            out.append(pid)
            stack.extend(tree.get(pid, ()))
        return sorted(out)

    expanded: list[_Entry] = []
    for row in rows:
        base = _row_entry(row)
        base.inherited = False
        if base.group_id:
            users = members.get(base.group_id, [])
            actor_entries = [
                _replace(base, user_id=u, group_id=None, via_group=base.group_id) for u in users
            ]
        else:
            actor_entries = [base]
        for entry in actor_entries:
            if not row.inherited:
                expanded.append(entry)
            elif entry.domain_id:
                expanded.extend(
                    _replace(entry, project_id=p, domain_id=None, via_domain=entry.domain_id)
                    for p in domain_projects.get(entry.domain_id, [])
                )
            elif entry.project_id:
                expanded.extend(
                    _replace(entry, project_id=p, via_project=entry.project_id)
                    for p in below(entry.project_id)
                )
    # Implied roles.
    rules = implication_map(s)
    with_implied: list[_Entry] = []
    for entry in expanded:
        with_implied.append(entry)
        seen = {entry.role_id}
        stack = [(entry.role_id, r) for r in sorted(rules.get(entry.role_id, ()))]
        while stack:
            prior, implied = stack.pop(0)
            if implied in seen:
                continue
            seen.add(implied)
            with_implied.append(_replace(entry, role_id=implied, prior_role=prior))
            stack.extend((implied, r) for r in sorted(rules.get(implied, ())))
    domain_roles = domain_role_ids(s, {e.role_id for e in with_implied})

    def keep(e: _Entry) -> bool:
        if e.role_id in domain_roles:
            return False
        if q.role_id and e.role_id != q.role_id:
            return False
        if q.user_id and e.user_id != q.user_id:
            return False
        if projects is not None and e.project_id not in projects:
            return False
        if q.domain_id and e.domain_id != q.domain_id:
            return False
        if q.system and not e.system:
            return False
        if q.inherited is not None and bool(e.via_domain or e.via_project) != q.inherited:
            return False
        return True

    return [e for e in with_implied if keep(e)]


def query_assignments(
    identity: Identity, ctx: AuthContext, q: AssignmentQuery, base: str
) -> list[dict[str, Any]]:
    """``GET /v3/role_assignments``: policy, filters, expansion, wire form."""
    q.validate()
    with identity.db.read() as s:
        if q.include_subtree:
            assert q.project_id is not None
            project = s.get(Project, q.project_id)
            if project is None or project.is_domain:
                raise NotFound(f"Could not find project: {q.project_id}.")
            target = {
                "target": {
                    "project": {"id": project.id, "domain_id": project.domain_id},
                    "domain_id": project.domain_id,
                }
            }
            identity.enforcer.authorize("identity:list_role_assignments_for_tree", ctx, target)
        else:
            target = {"target": {"domain_id": ctx.domain_id}} if ctx.domain_id else {}
            identity.enforcer.authorize("identity:list_role_assignments", ctx, target)
        projects: set[str] | None = None
        if q.project_id:
            projects = {q.project_id}
            if q.include_subtree:
                projects |= subtree_ids(s, [q.project_id])
        entries = _effective(s, q, projects) if q.effective else _direct(s, q, projects)
        if ctx.domain_id and not ctx.system_scope:
            entries = _only_domain(s, entries, ctx.domain_id)
        names = _names(s, entries) if q.include_names else None
        return [_format(e, base, names) for e in entries]


def _only_domain(s: Session, entries: list[_Entry], domain_id: str) -> list[_Entry]:
    """What a domain-scoped caller sees: assignments on its domain and its projects."""
    project_ids = {e.project_id for e in entries if e.project_id}
    in_domain = (
        set(
            s.scalars(
                select(Project.id).where(
                    Project.id.in_(project_ids), Project.domain_id == domain_id
                )
            )
        )
        if project_ids
        else set()
    )
    return [e for e in entries if e.domain_id == domain_id or (e.project_id in in_domain)]


def _names(s: Session, entries: list[_Entry]) -> dict[str, dict[str, Any]]:
    """id -> name facts for every entity the entries mention (few queries)."""
    out: dict[str, dict[str, Any]] = {}
    user_ids = {e.user_id for e in entries if e.user_id}
    group_ids = {e.group_id for e in entries if e.group_id}
    project_ids = {e.project_id for e in entries if e.project_id} | {
        e.domain_id for e in entries if e.domain_id
    }
    role_ids = {e.role_id for e in entries}
    domains: set[str] = set()
    if user_ids:
        for uid, name, dom in s.execute(
            select(User.id, User.name, User.domain_id).where(User.id.in_(user_ids))
        ):
            out[f"user:{uid}"] = {"name": name, "domain_id": dom}
            domains.add(dom)
    if group_ids:
        for gid, name, dom in s.execute(
            select(Group.id, Group.name, Group.domain_id).where(Group.id.in_(group_ids))
        ):
            out[f"group:{gid}"] = {"name": name, "domain_id": dom}
            domains.add(dom)
    if project_ids:
        for pid, name, dom in s.execute(
            select(Project.id, Project.name, Project.domain_id).where(Project.id.in_(project_ids))
        ):
            out[f"project:{pid}"] = {"name": name, "domain_id": dom}
            domains.add(dom)
    if role_ids:
        for rid, name, dom in s.execute(
            select(Role.id, Role.name, Role.domain_id).where(Role.id.in_(role_ids))
        ):
            out[f"role:{rid}"] = {"name": name, "domain_id": None if dom == NULL_DOMAIN else dom}
            if dom != NULL_DOMAIN:
                domains.add(dom)
    missing = domains - {k.split(":", 1)[1] for k in out if k.startswith("project:")}
    if missing:
        for pid, name in s.execute(select(Project.id, Project.name).where(Project.id.in_(missing))):
            out[f"project:{pid}"] = {"name": name, "domain_id": None}
    return out


def _named(names: dict[str, dict[str, Any]], kind: str, ident: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": ident}
    fact = names.get(f"{kind}:{ident}")
    if fact is None:
        return ref
    ref["name"] = fact["name"]
    if kind != "domain":
        dom = fact["domain_id"]
        dom_fact = names.get(f"project:{dom}") if dom else None
        if kind == "role":
            if dom:
                ref["domain"] = {"id": dom, "name": dom_fact["name"] if dom_fact else None}
        else:
            ref["domain"] = {"id": dom, "name": dom_fact["name"] if dom_fact else None}
    return ref


def _format(e: _Entry, base: str, names: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Keystone's wire form of one role assignment (links name the grant behind it)."""
    v3 = f"{base}/v3"
    out: dict[str, Any] = {"links": {}}
    inherited = e.inherited or bool(e.via_domain or e.via_project)
    link = ""
    if e.project_id:
        if names is not None and f"project:{e.project_id}" in names:
            fact = names[f"project:{e.project_id}"]
            dom = names.get(f"project:{fact['domain_id']}")
            out["scope"] = {
                "project": {
                    "id": e.project_id,
                    "name": fact["name"],
                    "domain": {"id": fact["domain_id"], "name": dom["name"] if dom else None},
                }
            }
        else:
            out["scope"] = {"project": {"id": e.project_id}}
        if e.via_domain:
            link = f"/domains/{e.via_domain}"
        elif e.via_project:
            link = f"/projects/{e.via_project}"
        else:
            link = f"/projects/{e.project_id}"
    elif e.domain_id:
        out["scope"] = {
            "domain": _named(names, "domain", e.domain_id)
            if names is not None
            else {"id": e.domain_id}
        }
        if names is not None and f"project:{e.domain_id}" in names:
            out["scope"]["domain"] = {
                "id": e.domain_id,
                "name": names[f"project:{e.domain_id}"]["name"],
            }
        link = f"/domains/{e.domain_id}"
    else:
        out["scope"] = {"system": {"all": True}}
        link = "/system"
    if e.user_id:
        out["user"] = _named(names, "user", e.user_id) if names is not None else {"id": e.user_id}
        if e.via_group:
            out["links"]["membership"] = f"{v3}/groups/{e.via_group}/users/{e.user_id}"
            link += f"/groups/{e.via_group}"
        else:
            link += f"/users/{e.user_id}"
    else:
        assert e.group_id is not None
        out["group"] = (
            _named(names, "group", e.group_id) if names is not None else {"id": e.group_id}
        )
        link += f"/groups/{e.group_id}"
    out["role"] = _named(names, "role", e.role_id) if names is not None else {"id": e.role_id}
    link += f"/roles/{e.prior_role or e.role_id}"
    if inherited:
        out["scope"]["OS-INHERIT:inherited_to"] = "projects"
        link = f"/OS-INHERIT{link}/inherited_to_projects"
    out["links"]["assignment"] = f"{v3}{link}"
    if e.prior_role:
        out["links"]["prior_role"] = f"{v3}/prior_role/{e.role_id}/implies/{e.prior_role}"
    return out
