"""Groups and group membership (Keystone v3 ``/v3/groups``).

Group names are unique within a domain. Removing a user from a group revokes
the user's tokens (roles held through the group go away).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound
from onestack.common.ids import new_id
from onestack.identity import revoke
from onestack.identity.models import Group, User, UserGroupMembership
from onestack.identity.service._resources import (
    ADMIN,
    SYSTEM_READER,
    authorize,
    authorized_row,
    check_fixed_ids,
    check_id,
    check_min_properties,
    check_name,
    check_string,
    conflict,
    domain_row,
    extra_attributes,
    filter_rows,
    flush_or_conflict,
    invalid,
    merge_extra,
    name_taken,
    not_found,
    target,
    token_domain,
)
from onestack.identity.service._rows import filter_users, group_dict, purge_group, user_dicts

GROUP_READER = f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.group.domain_id)s)"
GROUP_MANAGER = f"{ADMIN} or (role:manager and domain_id:%(target.group.domain_id)s)"
MEMBERSHIP_MANAGER = (
    f"{ADMIN} or (role:manager and domain_id:%(target.group.domain_id)s "
    "and domain_id:%(target.user.domain_id)s)"
)

POLICIES: dict[str, str] = {
    "identity:get_group": GROUP_READER,
    "identity:list_groups": f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:list_groups_for_user": (
        f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.user.domain_id)s) "
        "or user_id:%(user_id)s"
    ),
    "identity:create_group": GROUP_MANAGER,
    "identity:update_group": GROUP_MANAGER,
    "identity:delete_group": GROUP_MANAGER,
    "identity:list_users_in_group": GROUP_READER,
    "identity:check_user_in_group": (
        f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.group.domain_id)s "
        "and domain_id:%(target.user.domain_id)s)"
    ),
    "identity:add_user_to_group": MEMBERSHIP_MANAGER,
    "identity:remove_user_from_group": MEMBERSHIP_MANAGER,
}

COLUMNS = ("id", "name", "domain_id", "description", "links")
NAME_MAX = 64


def _target(row: Group, user: User | None = None) -> dict[str, Any]:
    parts: dict[str, Any] = {"group": {"id": row.id, "domain_id": row.domain_id, "name": row.name}}
    if user is not None:
        parts["user"] = {"id": user.id, "domain_id": user.domain_id, "name": user.name}
    return target(**parts)


def _check(ref: Mapping[str, Any]) -> None:
    if "name" in ref:
        check_name(ref["name"], max_len=NAME_MAX)
    if "domain_id" in ref:
        check_id(ref["domain_id"], "domain_id", nullable=True)
    if "description" in ref:
        check_string(ref["description"], "description")


def _name_conflict(name: str, domain_id: str) -> Exception:
    return conflict("group", f"Duplicate entry found with name {name} at domain ID {domain_id}")


def _assert_name_free(session: Session, domain_id: str, name: str, exclude: str | None = None) -> None:
    if name_taken(session, Group, domain_id, name, exclude):
        raise _name_conflict(name, domain_id)


def create_group(identity: Any, ctx: AuthContext, ref: dict[str, Any]) -> dict[str, Any]:
    if "name" not in ref:
        raise invalid("'name' is a required property")
    _check(ref)
    domain_id = ref.get("domain_id") or token_domain(ctx)
    name = ref["name"].strip()
    authorize(identity, ctx, "identity:create_group", target(group={"domain_id": domain_id, "name": name}))
    with identity.db.write() as session:
        domain_row(session, domain_id)
        _assert_name_free(session, domain_id, name)
        row = Group(
            id=new_id(),
            name=name,
            domain_id=domain_id,
            description=ref.get("description") or "",
            extra=extra_attributes(ref, COLUMNS),
        )
        session.add(row)
        flush_or_conflict(session, _name_conflict(name, domain_id))
        result = group_dict(row)
    identity.touch()
    return result


def _group(identity: Any, ctx: AuthContext, session: Session, group_id: str, rule: str) -> Group:
    return authorized_row(identity, ctx, rule, session.get(Group, group_id), _target, "group", group_id)


def get_group(identity: Any, ctx: AuthContext, group_id: str) -> dict[str, Any]:
    with identity.db.read() as session:
        return group_dict(_group(identity, ctx, session, group_id, "identity:get_group"))


def list_groups(identity: Any, ctx: AuthContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    tgt = target(domain_id=ctx.domain_id) if ctx.domain_id else target(domain_id=query.get("domain_id"))
    authorize(identity, ctx, "identity:list_groups", tgt)
    with identity.db.read() as session:
        stmt = select(Group)
        if ctx.domain_id:
            stmt = stmt.where(Group.domain_id == ctx.domain_id)
        stmt = filter_rows(stmt, Group, query, ("name", "domain_id"))
        return [group_dict(g) for g in session.scalars(stmt.order_by(Group.name, Group.id))]


def update_group(identity: Any, ctx: AuthContext, group_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    check_min_properties(ref)
    _check(ref)
    with identity.db.write() as session:
        row = _group(identity, ctx, session, group_id, "identity:update_group")
        check_fixed_ids(ref, row)
        if "name" in ref:
            name = ref["name"].strip()
            if name != row.name:
                _assert_name_free(session, row.domain_id, name, exclude=row.id)
                row.name = name
        if "description" in ref:
            row.description = ref["description"] or ""
        merge_extra(row, ref, COLUMNS)
        flush_or_conflict(session, _name_conflict(str(ref.get("name")), row.domain_id))
        result = group_dict(row)
    identity.touch()
    return result


def delete_group(identity: Any, ctx: AuthContext, group_id: str) -> None:
    with identity.db.write() as session:
        row = _group(identity, ctx, session, group_id, "identity:delete_group")
        db.lock_row(session, row)  # no grant or member may be added while it goes
        members = list(
            session.scalars(select(UserGroupMembership.user_id).where(UserGroupMembership.group_id == row.id))
        )
        purge_group(session, row.id)
        for uid in members:
            revoke.revoke_user(session, uid)
    identity.touch()


# --- membership ------------------------------------------------------------------------


def _pair(
    identity: Any, ctx: AuthContext, session: Session, group_id: str, user_id: str, rule: str
) -> tuple[Group, User]:
    group = session.get(Group, group_id)
    user = session.get(User, user_id)
    if group is None or user is None:
        authorize(identity, ctx, rule, target(group={"id": group_id}, user={"id": user_id}))
        if user is None:
            raise not_found("user", user_id)
        raise not_found("group", group_id)
    authorize(identity, ctx, rule, _target(group, user))
    return group, user


def _not_member(user_id: str, group_id: str) -> NotFound:
    return NotFound(f"User '{user_id}' not found in group '{group_id}'", title="Not Found")


def add_user(identity: Any, ctx: AuthContext, group_id: str, user_id: str) -> None:
    with identity.db.write() as session:
        group, user = _pair(identity, ctx, session, group_id, user_id, "identity:add_user_to_group")
        if session.get(UserGroupMembership, (user.id, group.id)) is None:
            session.add(UserGroupMembership(user_id=user.id, group_id=group.id))
    identity.touch()


def check_user(identity: Any, ctx: AuthContext, group_id: str, user_id: str) -> None:
    with identity.db.read() as session:
        group, user = _pair(identity, ctx, session, group_id, user_id, "identity:check_user_in_group")
        if session.get(UserGroupMembership, (user.id, group.id)) is None:
            raise _not_member(user_id, group_id)


def remove_user(identity: Any, ctx: AuthContext, group_id: str, user_id: str) -> None:
    with identity.db.write() as session:
        group, user = _pair(identity, ctx, session, group_id, user_id, "identity:remove_user_from_group")
        found = session.get(UserGroupMembership, (user.id, group.id))
        if found is None:
            raise _not_member(user_id, group_id)
        session.delete(found)
        session.flush()
        revoke.revoke_user(session, user.id)
    identity.touch()


def list_users(identity: Any, ctx: AuthContext, group_id: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /v3/groups/{id}/users (filters as /v3/users, password_expires_at included)."""

    with identity.db.read() as session:
        group = _group(identity, ctx, session, group_id, "identity:list_users_in_group")
        stmt = (
            select(User)
            .join(UserGroupMembership, UserGroupMembership.user_id == User.id)
            .where(UserGroupMembership.group_id == group.id)
        )
        return user_dicts(session, filter_users(session, stmt, query))
