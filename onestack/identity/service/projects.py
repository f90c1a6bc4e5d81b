"""Projects (Keystone v3 ``/v3/projects``): hierarchy, tags, options, policy.

A top-level project's ``parent_id`` is its domain's id (as Keystone stores
it). Project names are unique within a domain; projects can be nested up to
``MAX_DEPTH`` levels; a project with children cannot be deleted; disabling a
project requires its subtree to be disabled first and revokes the tokens
scoped to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound
from onestack.common.ids import new_id
from onestack.identity import revoke
from onestack.identity.effective import user_project_ids
from onestack.identity.models import (
    Project,
    ProjectTag,
)
from onestack.identity.service._resources import (
    ADMIN,
    SYSTEM_READER,
    authorize,
    authorized_row,
    bool_filter,
    check_bool,
    check_fixed_ids,
    check_id,
    check_min_properties,
    check_name,
    check_options,
    check_string,
    check_tag,
    check_tags,
    conflict,
    domain_row,
    extra_attributes,
    filter_rows,
    flush_or_conflict,
    forbidden,
    invalid,
    merge_extra,
    merge_options,
    name_taken,
    not_found,
    target,
    token_domain,
)
from onestack.identity.service._rows import domain_as_project, project_dicts, purge_project, tags_of
from onestack.identity.service.domains import create_domain, delete_domain, update_domain

# Keystone's max_project_tree_depth (5) plus the domain level.
MAX_DEPTH = 5

PROJECT_READER = (
    f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.project.domain_id)s) "
    "or project_id:%(target.project.id)s"
)
PROJECT_MANAGER = f"{ADMIN} or (role:manager and domain_id:%(target.project.domain_id)s)"

POLICIES: dict[str, str] = {
    "identity:get_project": PROJECT_READER,
    "identity:list_projects": (
        f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:list_user_projects": (
        f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.user.domain_id)s) "
        "or user_id:%(target.user.id)s"
    ),
    "identity:create_project": PROJECT_MANAGER,
    "identity:update_project": PROJECT_MANAGER,
    "identity:delete_project": PROJECT_MANAGER,
    "identity:list_project_tags": PROJECT_READER,
    "identity:get_project_tag": PROJECT_READER,
    "identity:update_project_tags": f"{PROJECT_MANAGER} or (role:admin and project_id:%(target.project.id)s)",
    "identity:create_project_tag": f"{PROJECT_MANAGER} or (role:admin and project_id:%(target.project.id)s)",
    "identity:delete_project_tags": f"{PROJECT_MANAGER} or (role:admin and project_id:%(target.project.id)s)",
    "identity:delete_project_tag": f"{PROJECT_MANAGER} or (role:admin and project_id:%(target.project.id)s)",
}

PROJECT_OPTIONS = {"immutable": "boolean"}
COLUMNS = ("id", "name", "description", "enabled", "domain_id", "parent_id", "is_domain", "tags", "options")


# --- wire shape -------------------------------------------------------------------


def _target(row: Project) -> dict[str, Any]:
    return target(project={"id": row.id, "domain_id": row.domain_id, "name": row.name})


def _project(identity: Any, ctx: AuthContext, session: Session, project_id: str, rule: str) -> Project:
    """The project (not a domain) ``rule`` allows the caller to act on."""
    row = session.get(Project, project_id)
    return authorized_row(identity, ctx, rule, None if row is None or row.is_domain else row,
                          _target, "project", project_id)


# --- hierarchy ----------------------------------------------------------------------


def parents(session: Session, row: Project) -> list[Project]:
    """Ancestor projects, nearest first (the domain not included)."""
    out: list[Project] = []
    seen = {row.id}
    parent_id = row.parent_id
    while parent_id and parent_id != row.domain_id and parent_id not in seen:
        seen.add(parent_id)
        parent = session.get(Project, parent_id)
        if parent is None or parent.is_domain:
            break
        out.append(parent)
        parent_id = parent.parent_id
    return out


def children(session: Session, project_ids: list[str]) -> list[Project]:
    if not project_ids:
        return []
    return list(
        session.scalars(
            select(Project).where(Project.parent_id.in_(project_ids), Project.is_domain.is_(False))
        )
    )


def subtree(session: Session, row: Project) -> list[Project]:
    """Every project below ``row``, breadth first."""
    out: list[Project] = []
    frontier = [row.id]
    seen = {row.id}
    while frontier:
        level = [c for c in children(session, frontier) if c.id not in seen]
        seen.update(c.id for c in level)
        out.extend(level)
        frontier = [c.id for c in level]
    return out


def _parents_as_ids(row: Project, chain: list[Project]) -> dict[str, Any] | None:
    """``{parent: {grandparent: {... {domain: None}}}}`` as Keystone nests it."""
    ids = [p.id for p in chain] + [row.domain_id]
    nested: dict[str, Any] | None = None
    for pid in reversed(ids):
        nested = {pid: nested}
    return nested


def _subtree_as_ids(root_id: str, below: list[Project]) -> dict[str, Any] | None:
    by_parent: dict[str, list[str]] = {}
    for p in below:
        by_parent.setdefault(p.parent_id or "", []).append(p.id)

    def walk(pid: str) -> dict[str, Any] | None:
        kids = by_parent.get(pid)
        if not kids:
            return None
        return {k: walk(k) for k in kids}

    return walk(root_id)


# --- validation -----------------------------------------------------------------


def _check_common(ref: Mapping[str, Any]) -> None:
    if "name" in ref:
        check_name(ref["name"])
    if "description" in ref:
        check_string(ref["description"], "description")
    if "enabled" in ref:
        check_bool(ref["enabled"], "enabled")
    if "is_domain" in ref:
        check_bool(ref["is_domain"], "is_domain")
    if "domain_id" in ref:
        check_id(ref["domain_id"], "domain_id", nullable=True)
    if "parent_id" in ref:
        check_id(ref["parent_id"], "parent_id", nullable=True)
    if "tags" in ref:
        check_tags(ref["tags"])
    if "options" in ref:
        check_options(ref["options"], PROJECT_OPTIONS)


def _name_conflict(name: str) -> Exception:
    return conflict(
        "project", f"it is not permitted to have two projects with the same name in the same domain : {name}"
    )


def _assert_name_free(session: Session, domain_id: str, name: str, exclude: str | None = None) -> None:
    if name_taken(session, Project, domain_id, name, exclude):
        raise _name_conflict(name)


def _set_tags(session: Session, project_id: str, tags: list[str]) -> None:
    # "delete them all, insert the new ones" would miss a tag another unit is
    # adding (a row that does not exist yet cannot be locked): one tag writer
    # per project at a time.
    db.lock(session, "project-tags", project_id)
    session.execute(delete(ProjectTag).where(ProjectTag.project_id == project_id))
    for tag in dict.fromkeys(tags):
        session.add(ProjectTag(project_id=project_id, name=tag))


def _assert_mutable(row: Project, ref: Mapping[str, Any], kind: str = "project") -> None:
    """Keystone's ``immutable`` resource option blocks changes other than unsetting it."""
    if not (row.options or {}).get("immutable"):
        return
    opts = ref.get("options") or {}
    unsets = "immutable" in opts and not opts["immutable"]
    if not unsets:
        raise forbidden(
            f"Unable to update immutable {kind} resource: `{row.id}. Set resource option "
            '"immutable" to false first.'
        )


# --- operations -------------------------------------------------------------------


def create_project(identity: Any, ctx: AuthContext, ref: dict[str, Any]) -> dict[str, Any]:
    """POST /v3/projects."""
    if "name" not in ref:
        raise invalid("'name' is a required property")
    _check_common(ref)
    if ref.get("is_domain"):
        dom = {k: v for k, v in ref.items() if k not in ("is_domain", "domain_id", "parent_id")}
        return create_domain(identity, ctx, dom, as_project=True)
    ref = dict(ref)
    ref["name"] = ref["name"].strip()
    domain_id = ref.get("domain_id") or token_domain(ctx)
    authorize(identity, ctx, "identity:create_project",
              target(project={"domain_id": domain_id, "name": ref["name"]}))
    with identity.db.write() as session:
        try:
            domain_row(session, domain_id)
        except NotFound as exc:  # Keystone answers 400 for an unknown domain here
            raise invalid(exc.message) from None
        parent_id = ref.get("parent_id") or domain_id
        if parent_id == domain_id:
            depth = 1
        else:
            parent = session.get(Project, parent_id)
            if parent is None:
                raise invalid(f"Could not find project: {parent_id}.")
            if parent.is_domain:
                raise invalid(
                    f"Cannot create project, the parent ({parent_id}) is acting as a domain, "
                    f"but this project's domain id ({domain_id}) does not match the parent's id."
                )
            if parent.domain_id != domain_id:
                raise invalid(
                    f"Cannot create project, since it specifies its domain_id {domain_id}, but "
                    f"specifies a parent in a different domain ({parent.domain_id})."
                )
            chain = [parent, *parents(session, parent)]
            for p in chain:
                if not p.enabled:
                    raise invalid(
                        f"cannot create a project in a branch containing a disabled project: {p.id}"
                    )
            depth = len(chain) + 1
            if depth > MAX_DEPTH:
                raise forbidden(f"Max hierarchy depth reached for {parent_id} branch.")
        _assert_name_free(session, domain_id, ref["name"])
        row = Project(
            id=new_id(),
            name=ref["name"],
            description=ref.get("description") or "",
            enabled=ref.get("enabled", True),
            domain_id=domain_id,
            parent_id=parent_id,
            is_domain=False,
            options=merge_options({}, ref.get("options") or {}),
            extra=extra_attributes(ref, COLUMNS),
        )
        session.add(row)
        flush_or_conflict(session, _name_conflict(ref["name"]))
        for tag in dict.fromkeys(ref.get("tags") or []):  # a new project: nothing to replace
            session.add(ProjectTag(project_id=row.id, name=tag))
        session.flush()
        result = project_dicts(session, [row])[0]
    # No identity.touch(): no token, and nothing derived for one, names a project
    # that did not exist (dropping those caches made every write re-validate tokens).
    return result


def get_project(
    identity: Any,
    ctx: AuthContext,
    project_id: str,
    *,
    parents_as_list: bool = False,
    parents_as_ids: bool = False,
    subtree_as_list: bool = False,
    subtree_as_ids: bool = False,
) -> dict[str, Any]:
    """GET /v3/projects/{id} (with Keystone's hierarchy query flags)."""
    if parents_as_list and parents_as_ids:
        raise invalid("Cannot use parents_as_list and parents_as_ids query params at the same time.")
    if subtree_as_list and subtree_as_ids:
        raise invalid("Cannot use subtree_as_list and subtree_as_ids query params at the same time.")
    with identity.db.read() as session:
        row = session.get(Project, project_id)
        if row is None:
            authorize(identity, ctx, "identity:get_project", target(project={"id": project_id}))
            raise not_found("project", project_id)
        if row.is_domain:
            # Keystone serves domains through /v3/projects too (is_domain true).

            authorize(identity, ctx, "identity:get_project",
                      target(project={"id": row.id, "domain_id": row.id}))
            return domain_as_project(session, row)
        authorize(identity, ctx, "identity:get_project", _target(row))
        body = project_dicts(session, [row])[0]
        if parents_as_list or parents_as_ids:
            chain = parents(session, row)
            if parents_as_ids:
                body["parents"] = _parents_as_ids(row, chain)
            else:
                visible = _visible_ids(session, ctx)
                body["parents"] = [{"project": p} for p in project_dicts(session, [p for p in chain if p.id in visible])]
        if subtree_as_list or subtree_as_ids:
            below = subtree(session, row)
            if subtree_as_ids:
                body["subtree"] = _subtree_as_ids(row.id, below)
            else:
                visible = _visible_ids(session, ctx)
                body["subtree"] = [{"project": p} for p in project_dicts(session, [p for p in below if p.id in visible])]
        return body


def _visible_ids(session: Session, ctx: AuthContext) -> set[str]:
    """Projects the caller holds a role on (Keystone filters *_as_list by these)."""

    return set(user_project_ids(session, ctx.user_id))


def _tag_filter(value: str | None) -> list[str]:
    if value is None:
        return []
    return [t for t in value.split(",") if t]


def list_projects(identity: Any, ctx: AuthContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /v3/projects with Keystone's filters (``is_domain=true`` lists domains)."""

    tgt = target(domain_id=ctx.domain_id) if ctx.domain_id else target()
    authorize(identity, ctx, "identity:list_projects", tgt)
    is_domain = bool_filter(query.get("is_domain"), "is_domain")
    with identity.db.read() as session:
        stmt = select(Project)
        if is_domain:
            stmt = stmt.where(Project.is_domain.is_(True))
        else:
            stmt = stmt.where(Project.is_domain.is_(False))
            stmt = filter_rows(stmt, Project, query, ("domain_id", "parent_id"))
        stmt = filter_rows(stmt, Project, query, ("name",), enabled=True)
        if ctx.domain_id and not is_domain:
            stmt = stmt.where(Project.domain_id == ctx.domain_id)
        rows = list(session.scalars(stmt.order_by(Project.name, Project.id)))
        if is_domain:
            if "domain_id" in query or "parent_id" in query:
                return []
            items = [domain_as_project(session, r) for r in rows]
        else:
            items = project_dicts(session, rows)
    want_all = _tag_filter(query.get("tags"))
    want_any = _tag_filter(query.get("tags-any"))
    not_all = _tag_filter(query.get("not-tags"))
    not_any = _tag_filter(query.get("not-tags-any"))

    def keep(item: dict[str, Any]) -> bool:
        tags = set(item.get("tags") or [])
        if want_all and not set(want_all) <= tags:
            return False
        if want_any and not tags & set(want_any):
            return False
        if not_all and set(not_all) <= tags:
            return False
        return not (not_any and tags & set(not_any))

    return [i for i in items if keep(i)]


def _is_domain(identity: Any, project_id: str) -> bool:
    with identity.db.read() as session:
        row = session.get(Project, project_id)
        return row is not None and bool(row.is_domain)


def update_project(identity: Any, ctx: AuthContext, project_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    """PATCH /v3/projects/{id}."""
    check_min_properties(ref)
    _check_common(ref)
    if _is_domain(identity, project_id):
        if ref.get("is_domain") is False:
            raise invalid("Update of `is_domain` is not allowed.")
        dom = {k: v for k, v in ref.items() if k not in ("is_domain", "domain_id", "parent_id")}
        return update_domain(identity, ctx, project_id, dom, as_project=True)
    with identity.db.write() as session:
        row = _project(identity, ctx, session, project_id, "identity:update_project")
        check_fixed_ids(ref, row)
        if "parent_id" in ref and (ref["parent_id"] or row.domain_id) != (row.parent_id or row.domain_id):
            raise forbidden("Update of `parent_id` is not allowed.")
        if ref.get("is_domain") is True:
            raise invalid("Update of `is_domain` is not allowed.")
        _assert_mutable(row, ref)
        was_enabled = bool(row.enabled)
        before = (row.name, was_enabled)
        if "enabled" in ref and ref["enabled"] != was_enabled:
            if ref["enabled"]:
                for p in parents(session, row):
                    if not p.enabled:
                        raise forbidden(f"Cannot enable project {row.id} since it has disabled parents")
            elif any(p.enabled for p in subtree(session, row)):
                raise forbidden(
                    f"Cannot disable project {row.id} since its subtree contains enabled projects."
                )
            row.enabled = ref["enabled"]
        if "name" in ref:
            name = ref["name"].strip()
            if name != row.name:
                _assert_name_free(session, row.domain_id, name, exclude=row.id)
                row.name = name
        if "description" in ref:
            row.description = ref["description"] or ""
        if "options" in ref:
            row.options = merge_options(row.options, ref["options"])
        if "tags" in ref:
            _set_tags(session, row.id, ref["tags"])
        merge_extra(row, ref, COLUMNS)
        flush_or_conflict(session, _name_conflict(str(ref.get("name"))))
        if was_enabled and not row.enabled:
            revoke.revoke_project(session, row.id)
        # What tokens carry of a project: its name and whether it is enabled.
        token_visible = row.name != before[0] or bool(row.enabled) != before[1]
        result = project_dicts(session, [row])[0]
    if token_visible:
        identity.touch()
    return result


def delete_project(identity: Any, ctx: AuthContext, project_id: str) -> None:
    """DELETE /v3/projects/{id}: leaves only."""
    if _is_domain(identity, project_id):
        delete_domain(identity, ctx, project_id, as_project=True)
        return
    with identity.db.write() as session:
        row = _project(identity, ctx, session, project_id, "identity:delete_project")
        db.lock_row(session, row)  # before looking for children: none may be added meanwhile
        if (row.options or {}).get("immutable"):
            raise forbidden(
                f"Unable to delete immutable project resource: `{row.id}. Set resource option "
                '"immutable" to false first.'
            )
        if children(session, [row.id]):
            raise forbidden(
                f"Cannot delete the project {row.id} since it is not a leaf in the hierarchy. "
                "Use the cascade option if you want to delete a whole subtree."
            )
        purge_project(session, row.id)
    identity.touch()


# --- tags -----------------------------------------------------------------------------


def list_tags(identity: Any, ctx: AuthContext, project_id: str) -> list[str]:
    with identity.db.read() as session:
        row = _tag_project(identity, ctx, session, project_id, "identity:list_project_tags")
        return tags_of(session, [row.id])[row.id]


def _tag_project(identity: Any, ctx: AuthContext, session: Session, project_id: str, rule: str) -> Project:
    row = session.get(Project, project_id)
    _authorize_tags(identity, ctx, row, project_id, rule)
    if row is None:
        raise not_found("project", project_id)
    return row


def _authorize_tags(identity: Any, ctx: AuthContext, row: Project | None, project_id: str, rule: str) -> None:
    if row is None:
        authorize(identity, ctx, rule, target(project={"id": project_id}))
    elif row.is_domain:
        authorize(identity, ctx, rule, target(project={"id": row.id, "domain_id": row.id}))
    else:
        authorize(identity, ctx, rule, _target(row))


def has_tag(identity: Any, ctx: AuthContext, project_id: str, tag: str) -> None:
    """GET /v3/projects/{id}/tags/{tag}: 204 when present, else 404."""
    with identity.db.read() as session:
        row = _tag_project(identity, ctx, session, project_id, "identity:get_project_tag")
        if session.get(ProjectTag, (row.id, tag)) is None:
            raise not_found("project tag", tag)


def replace_tags(identity: Any, ctx: AuthContext, project_id: str, tags: Any) -> list[str]:
    tags = check_tags(tags)
    with identity.db.write() as session:
        row = _tag_project(identity, ctx, session, project_id, "identity:update_project_tags")
        _set_tags(session, row.id, tags)
        session.flush()
        result = tags_of(session, [row.id])[row.id]
    identity.touch()
    return result


def add_tag(identity: Any, ctx: AuthContext, project_id: str, tag: str) -> str:
    """PUT /v3/projects/{id}/tags/{tag}, in Keystone's order: policy, the tag, the project,
    then the project's whole tag list (unique, at most 80). Keystone stores the tag with
    surrounding white space stripped; the stored tag is returned."""
    tag = tag.strip()
    with identity.db.write() as session:
        row = session.get(Project, project_id)
        _authorize_tags(identity, ctx, row, project_id, "identity:create_project_tag")
        check_tag(tag, "tags")
        if row is None:
            raise not_found("project", project_id)
        db.lock(session, "project-tags", row.id)  # the list checked below must not race another add
        check_tags([*tags_of(session, [row.id])[row.id], tag])
        session.add(ProjectTag(project_id=row.id, name=tag))
    identity.touch()
    return tag


def delete_tag(identity: Any, ctx: AuthContext, project_id: str, tag: str) -> None:
    with identity.db.write() as session:
        row = _tag_project(identity, ctx, session, project_id, "identity:delete_project_tag")
        found = session.get(ProjectTag, (row.id, tag))
        if found is None:
            raise not_found("project tag", tag)
        session.delete(found)
    identity.touch()


def delete_all_tags(identity: Any, ctx: AuthContext, project_id: str) -> None:
    with identity.db.write() as session:
        row = _tag_project(identity, ctx, session, project_id, "identity:delete_project_tags")
        session.execute(delete(ProjectTag).where(ProjectTag.project_id == row.id))
    identity.touch()
