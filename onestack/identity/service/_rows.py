"""Domains, projects, users and groups as rows: their Keystone wire shapes, the
user list filters, and what deleting one takes along.

Shared by the resource modules (``domains``, ``projects``, ``users``,
``groups``) so that none of them needs another's: a domain's deletion purges
projects, users and groups; a project or a user lists the others' shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from onestack.identity import revoke
from onestack.identity.models import (
    AccessRule,
    ApplicationCredential,
    Credential,
    Group,
    Limit,
    Password,
    Project,
    ProjectEndpoint,
    ProjectEndpointGroup,
    ProjectTag,
    Trust,
    User,
    UserGroupMembership,
)
from onestack.identity.service._resources import (
    compare,
    delete_assignments,
    filter_rows,
    time_filter,
)


def tags_of(session: Session, project_ids: list[str]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {pid: [] for pid in project_ids}
    if not project_ids:
        return tags
    rows = session.execute(
        select(ProjectTag.project_id, ProjectTag.name)
        .where(ProjectTag.project_id.in_(project_ids))
        .order_by(ProjectTag.name)
    )
    for pid, name in rows:
        tags[pid].append(name)
    return tags


def project_dict(row: Project, tags: list[str]) -> dict[str, Any]:
    """The Keystone wire shape of a project (no links)."""
    body: dict[str, Any] = dict(row.extra or {})
    body.update(
        {
            "id": row.id,
            "name": row.name,
            "domain_id": row.domain_id,
            "description": row.description if row.description is not None else "",
            "enabled": bool(row.enabled),
            "parent_id": row.parent_id or row.domain_id,
            "is_domain": False,
            "tags": list(tags),
            "options": dict(row.options or {}),
        }
    )
    return body


def project_dicts(session: Session, rows: list[Project]) -> list[dict[str, Any]]:
    """The wire shapes of ``rows`` (projects, not domains), their tags read in one query."""
    tags = tags_of(session, [r.id for r in rows])
    return [project_dict(r, tags[r.id]) for r in rows]


def purge_project(session: Session, project_id: str) -> None:
    """Everything that hangs off a project, then the project (no checks)."""
    delete_assignments(session, target_id=project_id)
    session.execute(delete(Credential).where(Credential.project_id == project_id))
    session.execute(delete(Trust).where(Trust.project_id == project_id))
    session.execute(delete(Limit).where(Limit.project_id == project_id))
    session.execute(delete(ProjectEndpoint).where(ProjectEndpoint.project_id == project_id))
    session.execute(delete(ProjectEndpointGroup).where(ProjectEndpointGroup.project_id == project_id))
    session.execute(delete(ProjectTag).where(ProjectTag.project_id == project_id))
    session.execute(delete(Project).where(Project.id == project_id))
    revoke.revoke_project(session, project_id)


def domain_dict(row: Project, tags: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = dict(row.extra or {})
    body.update(
        {
            "id": row.id,
            "name": row.name,
            "description": row.description if row.description is not None else "",
            "enabled": bool(row.enabled),
            "tags": list(tags),
            "options": dict(row.options or {}),
        }
    )
    return body


def domain_as_project(session: Session, row: Project) -> dict[str, Any]:
    """A domain seen through ``/v3/projects`` (``is_domain`` true)."""
    body = domain_dict(row, _tags(session, row.id))
    body.update({"domain_id": None, "parent_id": None, "is_domain": True})
    return body


def _tags(session: Session, domain_id: str) -> list[str]:
    return tags_of(session, [domain_id])[domain_id]


def expiries(session: Session, user_ids: list[str]) -> dict[str, datetime | None]:
    """Each user's current password expiry (None: no password or no expiry)."""
    if not user_ids:
        return {}
    latest = (
        select(func.max(Password.id))
        .where(Password.user_id.in_(user_ids))
        .group_by(Password.user_id)
        .scalar_subquery()
    )
    rows = session.execute(select(Password.user_id, Password.expires_at).where(Password.id.in_(latest)))
    found: dict[str, datetime | None] = {uid: None for uid in user_ids}
    for uid, expires in rows:
        found[uid] = expires
    return found


def user_dict(row: User, expires_at: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = dict(row.extra or {})
    body.update(
        {
            "id": row.id,
            "name": row.name,
            "domain_id": row.domain_id,
            "enabled": bool(row.enabled),
            # Keystone writes this one without a zone suffix: 2016-11-06T15:32:17.000000
            "password_expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if expires_at else None,
            "options": dict(row.options or {}),
        }
    )
    if row.default_project_id is not None:
        body["default_project_id"] = row.default_project_id
    if row.description is not None:
        body["description"] = row.description
    if row.email is not None:
        body["email"] = row.email
    return body


def user_dicts(session: Session, rows: list[User]) -> list[dict[str, Any]]:
    exp = expiries(session, [r.id for r in rows])
    return [user_dict(r, exp.get(r.id)) for r in rows]


def filter_users(session: Session, stmt: Any, query: Mapping[str, str]) -> list[User]:
    """Apply the user list filters Keystone accepts to a ``select(User)``."""
    stmt = filter_rows(stmt, User, query, ("name", "domain_id"), enabled=True)
    rows = list(session.scalars(stmt.order_by(User.name, User.id)))
    if "password_expires_at" in query:
        conditions = time_filter(query["password_expires_at"], "password_expires_at")
        exp = expiries(session, [r.id for r in rows])
        rows = [
            r for r in rows
            if all(compare(op, _seconds(exp.get(r.id)), _seconds(when)) for op, when in conditions)
        ]
    return rows


def _seconds(value: datetime | None) -> datetime | None:
    return value.replace(microsecond=0) if value is not None else None


def purge_user(session: Session, user_id: str) -> None:
    """Delete a user and everything that is theirs (no checks)."""
    delete_assignments(session, actor_id=user_id)
    session.execute(delete(UserGroupMembership).where(UserGroupMembership.user_id == user_id))
    session.execute(delete(Password).where(Password.user_id == user_id))
    session.execute(delete(Credential).where(Credential.user_id == user_id))
    session.execute(delete(ApplicationCredential).where(ApplicationCredential.user_id == user_id))
    session.execute(delete(AccessRule).where(AccessRule.user_id == user_id))
    session.execute(
        delete(Trust).where(or_(Trust.trustor_user_id == user_id, Trust.trustee_user_id == user_id))
    )
    session.execute(delete(User).where(User.id == user_id))
    revoke.revoke_user(session, user_id)


def group_dict(row: Group) -> dict[str, Any]:
    body: dict[str, Any] = dict(row.extra or {})
    body.update(
        {
            "id": row.id,
            "name": row.name,
            "domain_id": row.domain_id,
            "description": row.description if row.description is not None else "",
        }
    )
    return body


def purge_group(session: Session, group_id: str) -> None:
    """Delete a group, its memberships and its assignments (no checks)."""
    delete_assignments(session, actor_id=group_id)
    session.execute(delete(UserGroupMembership).where(UserGroupMembership.group_id == group_id))
    session.execute(delete(Group).where(Group.id == group_id))
