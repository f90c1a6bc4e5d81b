"""``GET /v3/role_assignments``: direct or effective assignments, filtered,
with names on request, in Keystone's wire form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, NotFound
from onestack.identity.effective import (
    DOMAIN_TYPES,
    PROJECT_TYPES,
    SYSTEM_TYPES,
    domain_role_ids,
    group_ids_of,
    implication_map,
    project_lineage,
    subtree_ids,
)
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

if TYPE_CHECKING:
    from onestack.identity.core import Identity

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
