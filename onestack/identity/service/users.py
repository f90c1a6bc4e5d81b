"""Users (Keystone v3 ``/v3/users``).

Names are unique within a domain. Passwords go through
``identity.passwords.set_password`` (hashing, security-compliance rules) and
never come back out. Disabling or deleting a user, or an administrator
changing their password, revokes their tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.ids import new_id, utcnow
from onestack.identity import revoke
from onestack.identity.effective import user_project_ids
from onestack.identity.models import (
    Group,
    Project,
    User,
    UserGroupMembership,
)
from onestack.identity.service._resources import (
    ADMIN,
    SYSTEM_READER,
    authorize,
    authorized_row,
    check_bool,
    check_fixed_ids,
    check_id,
    check_min_properties,
    check_name,
    check_options,
    check_string,
    conflict,
    domain_row,
    extra_attributes,
    filter_rows,
    flush_or_conflict,
    invalid,
    merge_extra,
    merge_options,
    name_taken,
    not_found,
    target,
    token_domain,
    user_row,
)
from onestack.identity.service._rows import (
    filter_users,
    group_dict,
    project_dicts,
    purge_user,
    user_dicts,
)

USER_READER = (
    f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.user.domain_id)s) "
    "or user_id:%(target.user.id)s"
)
USER_MANAGER = f"{ADMIN} or (role:manager and domain_id:%(target.user.domain_id)s)"

POLICIES: dict[str, str] = {
    "identity:get_user": USER_READER,
    "identity:list_users": f"{ADMIN} or {SYSTEM_READER} or (role:reader and domain_id:%(target.domain_id)s)",
    "identity:create_user": USER_MANAGER,
    "identity:update_user": USER_MANAGER,
    "identity:delete_user": USER_MANAGER,
}

USER_OPTIONS = {
    "ignore_change_password_upon_first_use": "boolean",
    "ignore_password_expiry": "boolean",
    "ignore_lockout_failure_attempts": "boolean",
    "lock_password": "boolean",
    "ignore_user_inactivity": "boolean",
    "multi_factor_auth_enabled": "boolean",
    "multi_factor_auth_rules": "rules",
}
COLUMNS = (
    "id", "name", "domain_id", "enabled", "default_project_id", "description", "email",
    "password", "options", "password_expires_at", "links", "federated",
)


# --- wire shape -------------------------------------------------------------------


def _target(row: User) -> dict[str, Any]:
    return target(user={"id": row.id, "domain_id": row.domain_id, "name": row.name})


def _user(identity: Any, ctx: AuthContext, session: Session, user_id: str, rule: str) -> User:
    return authorized_row(identity, ctx, rule, session.get(User, user_id), _target, "user", user_id)


# --- validation ---------------------------------------------------------------------


def _check(ref: Mapping[str, Any]) -> None:
    if "name" in ref:
        check_name(ref["name"], max_len=255)
    if "domain_id" in ref:
        check_id(ref["domain_id"], "domain_id", nullable=True)
    if "default_project_id" in ref:
        check_id(ref["default_project_id"], "default_project_id", nullable=True)
    if "description" in ref:
        check_string(ref["description"], "description")
    if "email" in ref:
        check_string(ref["email"], "email", max_len=255)
    if "enabled" in ref:
        check_bool(ref["enabled"], "enabled")
    if "password" in ref:
        check_string(ref["password"], "password")
    if "options" in ref:
        check_options(ref["options"], USER_OPTIONS)


def _name_conflict(name: str, domain_id: str) -> Exception:
    return conflict("user", f"Duplicate entry found with name {name} at domain ID {domain_id}")


def _assert_name_free(session: Session, domain_id: str, name: str, exclude: str | None = None) -> None:
    if name_taken(session, User, domain_id, name, exclude):
        raise _name_conflict(name, domain_id)


def _check_default_project(session: Session, project_id: str | None) -> None:
    if project_id is None:
        return
    row = session.get(Project, project_id)
    if row is not None and row.is_domain:
        raise invalid("Cannot assign a project acting as a domain as a default project")


def _prehash(identity: Any, password: Any) -> str | None:
    """The slow password hash, made before the write transaction takes the writer lock."""
    from onestack.identity.passwords import check_regex, hash_password, validate_password_value

    if password is None:
        return None
    plain = validate_password_value(password)
    check_regex(identity.settings, plain)
    return hash_password(identity.settings, plain)


# --- operations -------------------------------------------------------------------


def create_user(identity: Any, ctx: AuthContext, ref: dict[str, Any]) -> dict[str, Any]:
    """POST /v3/users."""
    from onestack.identity.passwords import set_password

    if "name" not in ref:
        raise invalid("'name' is a required property")
    _check(ref)
    domain_id = ref.get("domain_id") or token_domain(ctx)
    name = ref["name"].strip()
    authorize(identity, ctx, "identity:create_user", target(user={"domain_id": domain_id, "name": name}))
    prehashed = _prehash(identity, ref.get("password"))
    with identity.db.write() as session:
        domain_row(session, domain_id)
        _check_default_project(session, ref.get("default_project_id"))
        _assert_name_free(session, domain_id, name)
        row = User(
            id=new_id(),
            name=name,
            domain_id=domain_id,
            enabled=ref.get("enabled", True),
            default_project_id=ref.get("default_project_id"),
            description=ref.get("description"),
            email=ref.get("email"),
            created_at=utcnow(),
            options=merge_options({}, ref.get("options") or {}),
            extra=extra_attributes(ref, COLUMNS),
        )
        session.add(row)
        flush_or_conflict(session, _name_conflict(name, domain_id))
        if ref.get("password") is not None:
            set_password(identity, session, row, ref["password"], prehashed=prehashed)
        result = user_dicts(session, [row])[0]
    identity.touch()
    return result


def get_user(identity: Any, ctx: AuthContext, user_id: str) -> dict[str, Any]:
    with identity.db.read() as session:
        row = _user(identity, ctx, session, user_id, "identity:get_user")
        return user_dicts(session, [row])[0]


def list_users(identity: Any, ctx: AuthContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /v3/users (filters name, domain_id, enabled, password_expires_at)."""
    tgt = target(domain_id=ctx.domain_id) if ctx.domain_id else target(domain_id=query.get("domain_id"))
    authorize(identity, ctx, "identity:list_users", tgt)
    with identity.db.read() as session:
        stmt = select(User)
        if ctx.domain_id:
            stmt = stmt.where(User.domain_id == ctx.domain_id)
        return user_dicts(session, filter_users(session, stmt, query))


def update_user(identity: Any, ctx: AuthContext, user_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    """PATCH /v3/users/{id} (an administrative password reset included)."""
    from onestack.identity.passwords import set_password

    check_min_properties(ref)
    _check(ref)
    prehashed = None
    if ref.get("password") is not None:
        # authorize before spending a slow hash on the caller's behalf
        with identity.db.read() as session:
            found = session.get(User, user_id)
            authorize(identity, ctx, "identity:update_user",
                      _target(found) if found is not None else target(user={"id": user_id}))
            if found is None:
                raise not_found("user", user_id)
        prehashed = _prehash(identity, ref["password"])
    with identity.db.write() as session:
        row = _user(identity, ctx, session, user_id, "identity:update_user")
        check_fixed_ids(ref, row)
        if "id" in ref and ref["id"] is None:  # Keystone's identity manager: any other id
            raise invalid("Cannot change user ID")
        was_enabled = bool(row.enabled)
        if "name" in ref:
            name = ref["name"].strip()
            if name != row.name:
                _assert_name_free(session, row.domain_id, name, exclude=row.id)
                row.name = name
        if "enabled" in ref:
            row.enabled = ref["enabled"]
        if "default_project_id" in ref:
            _check_default_project(session, ref["default_project_id"])
            row.default_project_id = ref["default_project_id"]
        if "description" in ref:
            row.description = ref["description"]
        if "email" in ref:
            row.email = ref["email"]
        if "options" in ref:
            row.options = merge_options(row.options, ref["options"])
        merge_extra(row, ref, COLUMNS)
        flush_or_conflict(session, _name_conflict(str(ref.get("name")), row.domain_id))
        revoked = False
        if ref.get("password") is not None:
            set_password(identity, session, row, ref["password"], prehashed=prehashed)
            revoke.revoke_user(session, row.id)
            revoked = True
        if was_enabled and not row.enabled and not revoked:
            revoke.revoke_user(session, row.id)
        result = user_dicts(session, [row])[0]
    identity.touch()
    return result


def delete_user(identity: Any, ctx: AuthContext, user_id: str) -> None:
    with identity.db.write() as session:
        row = _user(identity, ctx, session, user_id, "identity:delete_user")
        db.lock_row(session, row)  # no grant or membership may be added while it goes
        purge_user(session, row.id)
    identity.touch()


# --- /v3/users/{id}/projects and /groups --------------------------------------------


def list_user_projects(
    identity: Any, ctx: AuthContext, user_id: str, query: Mapping[str, str]
) -> list[dict[str, Any]]:
    """GET /v3/users/{id}/projects: projects where the user holds an effective role."""

    with identity.db.read() as session:
        row = _user(identity, ctx, session, user_id, "identity:list_user_projects")
        ids = user_project_ids(session, row.id)
        if not ids:
            return []
        stmt = select(Project).where(Project.id.in_(ids), Project.is_domain.is_(False))
        stmt = filter_rows(stmt, Project, query, ("domain_id", "name"), enabled=True)
        return project_dicts(session, list(session.scalars(stmt.order_by(Project.name, Project.id))))


def list_user_groups(
    identity: Any, ctx: AuthContext, user_id: str, query: Mapping[str, str]
) -> list[dict[str, Any]]:
    """GET /v3/users/{id}/groups."""

    with identity.db.read() as session:
        row = session.get(User, user_id)
        tgt = _target(row) if row is not None else target(user={"id": user_id})
        tgt["user_id"] = user_id
        authorize(identity, ctx, "identity:list_groups_for_user", tgt)
        if row is None:
            raise not_found("user", user_id)
        stmt = (
            select(Group)
            .join(UserGroupMembership, UserGroupMembership.group_id == Group.id)
            .where(UserGroupMembership.user_id == row.id)
        )
        stmt = filter_rows(stmt, Group, query, ("name", "domain_id"))
        return [group_dict(g) for g in session.scalars(stmt.order_by(Group.name, Group.id))]


def user_exists(session: Session, user_id: str) -> User:
    return user_row(session, user_id)
