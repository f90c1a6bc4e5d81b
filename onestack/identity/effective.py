"""Effective roles: what a user holds where, once groups, inheritance and
implied roles are counted.

An assignment row gives a role to an actor (user or group) on a target (a
project, a domain or the system). ``inherited`` rows (OS-INHERIT) do not apply
to the target they are placed on but to the projects below it: a domain's
inherited assignment applies to every project in the domain, a project's to
every project in its subtree. Roles imply other roles (``implied_role``),
transitively. Domain-specific roles never appear in tokens themselves, only the
global roles they imply (as in Keystone).

Tokens are built from these functions (``tokens.resolve``), and the
assignment API lists with them (``service.role_assignments``); they are
queries over the models, written to need few of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

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
    ImpliedRole,
    Project,
    Role,
    UserGroupMembership,
)

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

