"""Domains (Keystone v3 ``/v3/domains``).

A domain is a row of the ``project`` table with ``is_domain`` true and
``domain_id`` = ``ROOT_DOMAIN``, so domain names are unique among domains. A
domain must be disabled before it can be deleted; deleting it deletes its
projects, users, groups, domain-specific roles, configuration and
assignments. Disabling one revokes the tokens tied to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.ids import new_id
from onestack.identity import revoke
from onestack.identity.models import (
    ROOT_DOMAIN,
    Assignment,
    DomainConfig,
    Group,
    Project,
    ProjectTag,
    Role,
    User,
)
from onestack.identity.service._resources import (
    ADMIN,
    SYSTEM_READER,
    authorize,
    check_bool,
    check_fixed_ids,
    check_id,
    check_min_properties,
    check_name,
    check_options,
    check_string,
    check_tags,
    conflict,
    delete_assignments,
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
)
from onestack.identity.service._rows import (
    domain_as_project,
    domain_dict,
    purge_group,
    purge_project,
    purge_user,
    tags_of,
)

POLICIES: dict[str, str] = {
    "identity:get_domain": (
        f"{ADMIN} or {SYSTEM_READER} or domain_id:%(target.domain.id)s "
        "or project_domain_id:%(target.domain.id)s"
    ),
    "identity:list_domains": f"{ADMIN} or {SYSTEM_READER}",
    "identity:create_domain": "rule:admin_required",
    "identity:update_domain": "rule:admin_required",
    "identity:delete_domain": "rule:admin_required",
}

DOMAIN_OPTIONS = {"immutable": "boolean"}
COLUMNS = ("id", "name", "description", "enabled", "tags", "options", "explicit_domain_id")


def _dicts(session: Session, rows: list[Project]) -> list[dict[str, Any]]:
    tags = tags_of(session, [r.id for r in rows])
    return [domain_dict(r, tags[r.id]) for r in rows]


def _row(session: Session, domain_id: str) -> Project | None:
    row = session.get(Project, domain_id)
    return row if row is not None and row.is_domain else None


def _target(domain_id: str, name: str | None = None, rule: str = "") -> dict[str, Any]:
    if rule.endswith("_project"):  # a domain reached through /v3/projects
        return target(project={"id": domain_id, "domain_id": domain_id, "name": name})
    return target(domain={"id": domain_id, "name": name})


def _check(ref: Mapping[str, Any]) -> None:
    if "name" in ref:
        check_name(ref["name"])
    if "description" in ref:
        check_string(ref["description"], "description")
    if "enabled" in ref:
        check_bool(ref["enabled"], "enabled")
    if "tags" in ref:
        check_tags(ref["tags"])
    if "options" in ref:
        check_options(ref["options"], DOMAIN_OPTIONS)
    if "explicit_domain_id" in ref:
        check_id(ref["explicit_domain_id"], "explicit_domain_id", nullable=True)


def _name_conflict(name: str) -> Exception:
    return conflict(
        "domain", f"it is not permitted to have two projects acting as domains with the same name: {name}"
    )


def _assert_name_free(session: Session, name: str, exclude: str | None = None) -> None:
    if name_taken(session, Project, ROOT_DOMAIN, name, exclude):
        raise _name_conflict(name)


def create_domain(
    identity: Any, ctx: AuthContext, ref: dict[str, Any], *, as_project: bool = False
) -> dict[str, Any]:
    """POST /v3/domains (and POST /v3/projects with ``is_domain`` true)."""
    if "name" not in ref:
        raise invalid("'name' is a required property")
    _check(ref)
    rule = "identity:create_project" if as_project else "identity:create_domain"
    authorize(identity, ctx, rule, _target("", ref["name"], rule))
    domain_id = ref.get("explicit_domain_id") or new_id()
    name = ref["name"].strip()
    with identity.db.write() as session:
        if session.get(Project, domain_id) is not None:
            raise conflict("domain", f"Duplicate entry found with ID {domain_id}")
        _assert_name_free(session, name)
        row = Project(
            id=domain_id,
            name=name,
            description=ref.get("description") or "",
            enabled=ref.get("enabled", True),
            domain_id=ROOT_DOMAIN,
            parent_id=None,
            is_domain=True,
            options=merge_options({}, ref.get("options") or {}),
            extra=extra_attributes(ref, COLUMNS),
        )
        session.add(row)
        flush_or_conflict(session, _name_conflict(name))
        for tag in dict.fromkeys(ref.get("tags") or []):
            session.add(ProjectTag(project_id=row.id, name=tag))
        session.flush()
        result = domain_as_project(session, row) if as_project else _dicts(session, [row])[0]
    identity.touch()
    return result


def get_domain(identity: Any, ctx: AuthContext, domain_id: str) -> dict[str, Any]:
    with identity.db.read() as session:
        row = _row(session, domain_id)
        authorize(identity, ctx, "identity:get_domain", _target(domain_id, row.name if row else None))
        if row is None:
            raise not_found("domain", domain_id)
        return _dicts(session, [row])[0]


def list_domains(identity: Any, ctx: AuthContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    authorize(identity, ctx, "identity:list_domains", target())
    with identity.db.read() as session:
        stmt = select(Project).where(Project.is_domain.is_(True))
        stmt = filter_rows(stmt, Project, query, ("name",), enabled=True)
        rows = list(session.scalars(stmt.order_by(Project.name, Project.id)))
        return _dicts(session, rows)


def update_domain(
    identity: Any, ctx: AuthContext, domain_id: str, ref: dict[str, Any], *, as_project: bool = False
) -> dict[str, Any]:
    """PATCH /v3/domains/{id} (and PATCH /v3/projects/{id} of a domain)."""
    check_min_properties(ref)
    _check(ref)
    rule = "identity:update_project" if as_project else "identity:update_domain"
    with identity.db.write() as session:
        row = _row(session, domain_id)
        authorize(identity, ctx, rule, _target(domain_id, row.name if row else None, rule))
        if row is None:
            raise not_found("domain", domain_id)
        check_fixed_ids(ref, row, domain=False)
        if (row.options or {}).get("immutable"):
            opts = ref.get("options") or {}
            if not ("immutable" in opts and not opts["immutable"]):
                raise forbidden(
                    f"Unable to update immutable domain resource: `{row.id}. Set resource option "
                    '"immutable" to false first.'
                )
        was_enabled = bool(row.enabled)
        if "name" in ref:
            name = ref["name"].strip()
            if name != row.name:
                _assert_name_free(session, name, exclude=row.id)
                row.name = name
        if "description" in ref:
            row.description = ref["description"] or ""
        if "enabled" in ref:
            row.enabled = ref["enabled"]
        if "options" in ref:
            row.options = merge_options(row.options, ref["options"])
        if "tags" in ref:
            db.lock(session, "project-tags", row.id)  # as projects._set_tags
            session.execute(delete(ProjectTag).where(ProjectTag.project_id == row.id))
            for tag in dict.fromkeys(ref["tags"]):
                session.add(ProjectTag(project_id=row.id, name=tag))
        merge_extra(row, ref, COLUMNS)
        flush_or_conflict(session, _name_conflict(str(ref.get("name"))))
        if was_enabled and not row.enabled:
            revoke.revoke_domain(session, row.id)
        result = domain_as_project(session, row) if as_project else _dicts(session, [row])[0]
    identity.touch()
    return result


def delete_domain(identity: Any, ctx: AuthContext, domain_id: str, *, as_project: bool = False) -> None:
    """DELETE /v3/domains/{id}: only a disabled domain; takes everything in it along."""
    rule = "identity:delete_project" if as_project else "identity:delete_domain"
    with identity.db.write() as session:
        row = _row(session, domain_id)
        authorize(identity, ctx, rule, _target(domain_id, row.name if row else None, rule))
        if row is None:
            raise not_found("domain", domain_id)
        db.lock_row(session, row)  # before looking at what is in it: nothing may be added meanwhile
        if row.enabled:
            raise forbidden("Cannot delete a domain that is enabled, please disable it first.")
        if (row.options or {}).get("immutable"):
            raise forbidden(
                f"Unable to delete immutable domain resource: `{row.id}. Set resource option "
                '"immutable" to false first.'
            )
        project_ids = list(
            session.scalars(select(Project.id).where(Project.domain_id == row.id, Project.is_domain.is_(False)))
        )
        for pid in project_ids:
            purge_project(session, pid)
        for uid in list(session.scalars(select(User.id).where(User.domain_id == row.id))):
            purge_user(session, uid)
        for gid in list(session.scalars(select(Group.id).where(Group.domain_id == row.id))):
            purge_group(session, gid)
        role_ids = list(session.scalars(select(Role.id).where(Role.domain_id == row.id)))
        if role_ids:
            session.execute(delete(Assignment).where(Assignment.role_id.in_(role_ids)))
            session.execute(delete(Role).where(Role.id.in_(role_ids)))
        session.execute(delete(DomainConfig).where(DomainConfig.domain_id == row.id))
        delete_assignments(session, target_id=row.id)
        session.execute(delete(ProjectTag).where(ProjectTag.project_id == row.id))
        session.execute(delete(Project).where(Project.id == row.id))
        revoke.revoke_domain(session, row.id)
    identity.touch()
