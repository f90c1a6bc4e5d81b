"""Helpers shared by the identity resource modules (domains, projects, users,
groups, credentials): Keystone's error messages, input checks that mirror
Keystone's JSON schemas, policy targets, and row look-ups."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, Forbidden, NotFound, ValidationError
from onestack.common.ids import parse_isotime
from onestack.identity.models import (
    ROOT_DOMAIN,
    Assignment,
    Group,
    Project,
    User,
)

DEFAULT_DOMAIN = "default"

M = TypeVar("M")

# Keystone's base rules (keystone/common/policies/base.py).
POLICIES: dict[str, str] = {
    "admin_required": "role:admin or is_admin:1",
    "owner": "user_id:%(user_id)s",
    "admin_or_owner": "rule:admin_required or rule:owner",
}

ADMIN = "(rule:admin_required)"
SYSTEM_READER = "(role:reader and system_scope:all)"

_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_NON_SPACE = re.compile(r"\S")


# --- errors ---------------------------------------------------------------------


def not_found(entity: str, ident: str) -> NotFound:
    return NotFound(f"Could not find {entity}: {ident}.", title="Not Found")


def conflict(entity: str, details: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store {entity} - {details}.", title="Conflict")


def forbidden(message: str) -> Forbidden:
    return Forbidden(message, title="Forbidden")


def invalid(message: str) -> ValidationError:
    return ValidationError(message, title="Bad Request")


def expecting(attribute: str, target: str) -> ValidationError:
    return invalid(
        f"Expecting to find {attribute} in {target}. The server could not comply with the "
        "request since it is either malformed or otherwise incorrect. The client is assumed "
        "to be in error."
    )


# --- input checks (Keystone's schemas, by hand) ----------------------------------


def member(body: Any, key: str) -> dict[str, Any]:
    """``body[key]``, which must be a JSON object."""
    if not isinstance(body, dict) or key not in body:
        raise expecting(key, "request body")
    value = body[key]
    if not isinstance(value, dict):
        raise invalid(f"Invalid input for field '{key}': {_short(value)} is not of type 'object'")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def field_error(field: str, message: str) -> ValidationError:
    return invalid(f"Invalid input for field '{field}': {message}")


def check_name(value: Any, field: str = "name", max_len: int = 64) -> str:
    if not isinstance(value, str):
        raise field_error(field, f"{_short(value)} is not of type 'string'")
    if len(value) < 1:
        raise field_error(field, f"{_short(value)} is too short")
    if len(value) > max_len:
        raise field_error(field, f"{_short(value)} is too long")
    if not _NON_SPACE.search(value):
        raise field_error(field, f"{_short(value)} does not match '[\\S]+'")
    return value


def check_string(value: Any, field: str, *, nullable: bool = True, max_len: int | None = None) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise field_error(field, f"{_short(value)} is not of type 'string'")
    if max_len is not None and len(value) > max_len:
        raise field_error(field, f"{_short(value)} is too long")
    return value


def check_id(value: Any, field: str, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise field_error(field, f"{_short(value)} is not of type 'string'")
    if not 1 <= len(value) <= 64:
        raise field_error(field, f"{_short(value)} is too {'short' if not value else 'long'}")
    if not _ID_RE.match(value):
        raise field_error(field, f"{_short(value)} does not match '^[a-zA-Z0-9_-]+$'")
    return value


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise field_error(field, f"{_short(value)} is not of type 'boolean'")
    return value


def check_min_properties(ref: dict[str, Any]) -> None:
    if not ref:
        raise invalid("{} does not have enough properties")


TAG_MAX = 80


def check_tag(value: Any, field: str = "tags") -> str:
    if not isinstance(value, str):
        raise field_error(field, f"{_short(value)} is not of type 'string'")
    if not 1 <= len(value) <= 255:
        raise field_error(field, f"{_short(value)} is too {'short' if not value else 'long'}")
    if "," in value or "/" in value:
        raise field_error(field, f"{_short(value)} does not match '^[^,/]*$'")
    return value


def check_tags(value: Any, field: str = "tags") -> list[str]:
    if not isinstance(value, list):
        raise field_error(field, f"{_short(value)} is not of type 'array'")
    if len(value) > TAG_MAX:
        raise field_error(field, f"{_short(value)} is too long")
    tags = [check_tag(v, field) for v in value]
    if len(set(tags)) != len(tags):
        raise field_error(field, f"{_short(value)} has non-unique elements")
    return tags


def check_options(value: Any, schema: dict[str, str], field: str = "options") -> dict[str, Any]:
    """Resource options: a known set of keys; ``null`` unsets one.

    ``schema`` maps option name -> "boolean" | "rules" (list of lists of strings).
    """
    if not isinstance(value, dict):
        raise field_error(field, f"{_short(value)} is not of type 'object'")
    for key, item in value.items():
        kind = schema.get(key)
        if kind is None:
            raise field_error(field, f"Additional properties are not allowed ({key!r} was unexpected)")
        if item is None:
            continue
        if kind == "boolean" and not isinstance(item, bool):
            raise field_error(f"{field}/{key}", f"{_short(item)} is not of type 'boolean', 'null'")
        if kind == "rules":
            ok = isinstance(item, list) and all(
                isinstance(rule, list) and rule and all(isinstance(m, str) and m for m in rule)
                for rule in item
            )
            if not ok:
                raise field_error(f"{field}/{key}", f"{_short(item)} is not a list of lists of methods")
    return dict(value)


def merge_options(current: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current or {})
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def require_matching_id(ref: dict[str, Any], path_id: str) -> None:
    """Keystone's rule for every update (``ResourceBase._require_matching_id``): the body
    may repeat the resource's ``id``, or send it as null, but never name another one."""
    if ref.get("id") is not None and ref["id"] != path_id:
        raise invalid("Cannot change ID")


def check_fixed_ids(ref: dict[str, Any], row: Any, *, domain: bool = True) -> None:
    """An update may repeat the entity's ``id`` (and ``domain_id``) but not change them."""
    require_matching_id(ref, row.id)
    if domain and "domain_id" in ref and ref["domain_id"] not in (None, row.domain_id):
        raise invalid("Cannot change Domain ID")


def extra_attributes(ref: dict[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """Free attributes Keystone keeps in ``extra`` (anything not a column)."""
    skip = set(known)
    return {k: v for k, v in ref.items() if k not in skip}


def parse_expiry(value: Any) -> datetime | None:
    """A body's ``expires_at``: null, or an ISO 8601 time."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("Invalid input for field 'expires_at': the value must be a string or null.")
    try:
        return parse_isotime(value)
    except ValueError:
        raise invalid(f"Invalid input for field 'expires_at': {value!r} is not a valid time.") from None


# --- list filters ---------------------------------------------------------------


def bool_filter(value: str | None, field: str) -> bool | None:
    """Keystone's query booleans: "0"/"false" (any case) are false, anything else true."""
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "f", "no", "off")


def filter_rows(stmt: Any, model: Any, query: Mapping[str, str], names: Iterable[str] = (),
                *, enabled: bool = False) -> Any:
    """``stmt`` narrowed by a list call's query: each of ``names`` given must equal its
    column; with ``enabled``, Keystone's ``enabled`` query boolean too."""
    for name in names:
        if name in query:
            stmt = stmt.where(getattr(model, name) == query[name])
    if enabled:
        flag = bool_filter(query.get("enabled"), "enabled")
        if flag is not None:
            stmt = stmt.where(model.enabled.is_(flag))
    return stmt


_OPS = {"lt", "lte", "gt", "gte", "eq", "neq"}


def time_filter(value: str, field: str) -> list[tuple[str, Any]]:
    """``lt:2016-12-08T22:02:00Z`` (operators lt/lte/gt/gte/eq/neq; default eq);
    several may be given comma-separated (``gt:...,lt:...``)."""
    out: list[tuple[str, Any]] = []
    for part in value.split(","):
        part = part.strip()
        op, sep, stamp = part.partition(":")
        if not sep or op not in _OPS:
            op, stamp = "eq", part
        try:
            out.append((op, parse_isotime(stamp)))
        except ValueError:
            raise invalid(f"Invalid time format for {field}: {part!r}") from None
    return out


def compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return False
    return bool(
        {
            "lt": left < right,
            "lte": left <= right,
            "gt": left > right,
            "gte": left >= right,
            "eq": left == right,
            "neq": left != right,
        }[op]
    )


# --- policy ---------------------------------------------------------------------


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def target(**parts: Any) -> dict[str, Any]:
    """A policy target: ``{"target": {...}, "target.project.id": ..., ...}``.

    Holds both the nested form and the flat keys Keystone's enforcer builds,
    plus the plain values at the top level too (``user_id`` for ``rule:owner``).
    """
    nested: dict[str, Any] = dict(parts)
    # plain values are also reachable untargeted (``%(user_id)s``: Keystone's path params)
    out: dict[str, Any] = {k: v for k, v in parts.items() if not isinstance(v, dict)}
    out["target"] = nested
    flatten("target", nested, out)
    return out


def authorize(identity: Any, ctx: AuthContext, rule: str, tgt: dict[str, Any] | None = None) -> None:
    identity.enforcer.authorize(rule, ctx, tgt if tgt is not None else target())


def authorize_action(identity: Any, ctx: AuthContext, action: str, tgt: dict[str, Any] | None = None) -> None:
    """Enforce ``identity:<action>`` against ``tgt`` (an empty target when none)."""
    identity.enforcer.authorize(f"identity:{action}", ctx, tgt or {})


def allowed(identity: Any, ctx: AuthContext, rule: str, tgt: dict[str, Any]) -> bool:
    return bool(identity.enforcer.check(rule, ctx, tgt))


def token_domain(ctx: AuthContext) -> str:
    """Where a create without ``domain_id`` lands (Keystone's _normalize_domain_id)."""
    return ctx.domain_id or DEFAULT_DOMAIN


# --- rows -----------------------------------------------------------------------


def get_row(session: Session, model: type[M], ident: Any, entity: str) -> M:
    """``session.get(model, ident)``, or Keystone's 404 "Could not find <entity>: <id>."."""
    row = session.get(model, ident)
    if row is None:
        raise not_found(entity, str(ident))
    return row


def merge_extra(row: Any, ref: dict[str, Any], known: Iterable[str]) -> None:
    """Fold ``ref``'s free attributes (not in ``known``) into ``row.extra``."""
    extra = extra_attributes(ref, known)
    if extra:
        row.extra = {**(row.extra or {}), **extra}


def authorized_row(
    identity: Any,
    ctx: AuthContext,
    rule: str,
    row: M | None,
    row_target: Callable[[M], dict[str, Any]],
    entity: str,
    ident: str,
    missing_target: dict[str, Any] | None = None,
) -> M:
    """Keystone's order for a call on one entity: the policy check comes first, against the
    row's own target or, when there is no such row, against ``missing_target`` (by default
    ``{entity: {"id": ident}}``), so that a caller without the right gets 403 rather than
    learning what exists; then 404 "Could not find <entity>: <ident>." for a missing row."""
    if row is None:
        tgt = missing_target if missing_target is not None else target(**{entity: {"id": ident}})
        authorize(identity, ctx, rule, tgt)
        raise not_found(entity, ident)
    authorize(identity, ctx, rule, row_target(row))
    return row


def domain_row(session: Session, domain_id: str) -> Project:
    row = session.get(Project, domain_id)
    if row is None or not row.is_domain:
        raise not_found("domain", domain_id)
    return row


def project_row(session: Session, project_id: str) -> Project:
    row = session.get(Project, project_id)
    if row is None or row.is_domain:
        raise not_found("project", project_id)
    return row


def user_row(session: Session, user_id: str) -> User:
    return get_row(session, User, user_id, "user")


def group_row(session: Session, group_id: str) -> Group:
    return get_row(session, Group, group_id, "group")


def flush_or_conflict(session: Session, error: Exception) -> None:
    """Flush; a unique constraint the flush trips (a race the checks before it could not
    see) becomes ``error``."""
    try:
        session.flush()
    except IntegrityError:
        raise error from None


def name_taken(session: Session, model: Any, domain_id: str, name: str, exclude: str | None = None) -> bool:
    """Whether a ``model`` row other than ``exclude`` has ``name`` in ``domain_id``."""
    found = session.execute(
        select(model.id).where(model.domain_id == domain_id, model.name == name)
    ).scalar_one_or_none()
    return found is not None and found != exclude


def delete_assignments(session: Session, *, actor_id: str | None = None, target_id: str | None = None) -> None:
    stmt = delete(Assignment)
    if actor_id is not None:
        stmt = stmt.where(Assignment.actor_id == actor_id)
    if target_id is not None:
        stmt = stmt.where(Assignment.target_id == target_id)
    session.execute(stmt)


def domain_name(session: Session, domain_id: str) -> str | None:
    return session.execute(
        select(Project.name).where(Project.id == domain_id, Project.domain_id == ROOT_DOMAIN)
    ).scalar_one_or_none()
