"""What every resource module shares: standard attributes, revisions and
``If-Match``, tags, ids, the body of a create or update, and the finishing of
a response (policy-hidden attributes, ``fields``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from onestack.common.ids import isotime, new_uuid, utcnow
from onestack.network.models import NetworkTag, Port
from onestack.network.service import attributes
from onestack.network.service.attributes import Parsed, Resource
from onestack.network.service.errors import RevisionNumberConstraintFailed
from onestack.network.service.policy import Caller
from onestack.network.service.query import project

__all__ = ["new_uuid"]


def now() -> datetime:
    """Times are kept to the second, as Neutron shows them."""
    return utcnow().replace(microsecond=0)


@lru_cache(maxsize=4096)
def _iso(dt: datetime) -> str | None:
    return isotime(dt)


def iso(dt: datetime | str | None) -> str | None:
    """``2026-12-05T07:12:29Z`` (memoised: rows made in one second share their times).

    Also takes the text SQLite keeps (``2026-12-05 07:12:29.000000``), which the
    long lists read without parsing it into a ``datetime`` first."""
    if dt is None:
        return None
    if isinstance(dt, str):
        return f"{dt[:10]}T{dt[11:19]}Z"
    return _iso(dt)


def std_columns(description: str = "") -> dict[str, Any]:
    stamp = now()
    return {"description": description, "revision_number": 0, "created_at": stamp, "updated_at": stamp}


def std(row: Any, tags: Sequence[str] | None = None) -> dict[str, Any]:
    """``description``, ``tags``, ``created_at``, ``updated_at``, ``revision_number``."""
    out: dict[str, Any] = {"description": row.description}
    if tags is not None:
        out["tags"] = list(tags)
    out["created_at"] = iso(row.created_at)
    out["updated_at"] = iso(row.updated_at)
    out["revision_number"] = row.revision_number
    return out


def owner(project_id: str) -> dict[str, str]:
    return {"tenant_id": project_id, "project_id": project_id}


def bump(row: Any) -> None:
    """A change to ``row`` (or to what it shows): next revision, new ``updated_at``."""
    row.revision_number = (row.revision_number or 0) + 1
    row.updated_at = now()


def bump_ports(session: Session, port_ids: Sequence[str]) -> None:
    """``bump`` for ports whose addresses changed from elsewhere (a subnet added or
    deleted): as Neutron's addresses ``revises_on_change`` their port (and the list
    of ports reuses a port's rendering while its revision stays)."""
    ids = sorted(set(port_ids))
    for start in range(0, len(ids), 500):
        session.execute(
            update(Port).where(Port.id.in_(ids[start:start + 500]))
            .values(revision_number=Port.revision_number + 1, updated_at=now())
            .execution_options(synchronize_session=False)
        )


def check_revision(row: Any, expected: int | None) -> None:
    """``If-Match: revision_number=N`` on an update or delete (412 on mismatch)."""
    if expected is not None and row.revision_number != expected:
        raise RevisionNumberConstraintFailed(expected=expected, current=row.revision_number)


def set_tags(session: Session, resource_id: str, tags: Iterable[str]) -> None:
    session.execute(delete(NetworkTag).where(NetworkTag.resource_id == resource_id))
    for tag in sorted(set(tags)):
        session.add(NetworkTag(resource_id=resource_id, tag=tag))


def drop_tags(session: Session, resource_ids: Sequence[str]) -> None:
    if resource_ids:
        session.execute(delete(NetworkTag).where(NetworkTag.resource_id.in_(list(resource_ids))))


def tags_of(session: Session, resource_id: str) -> list[str]:
    return sorted(
        session.scalars(select(NetworkTag.tag).where(NetworkTag.resource_id == resource_id))
    )


# --- requests ---------------------------------------------------------------------------


def parse_create(caller: Caller, resource: Resource, body: dict[str, Any]) -> Parsed:
    return attributes.parse_create(
        resource, body, caller_project=caller.project_id, can_set_project=caller.can_set_project
    )


def parse_update(caller: Caller, resource: Resource, body: dict[str, Any]) -> Parsed:
    return attributes.parse_update(
        resource, body, caller_project=caller.project_id, can_set_project=caller.can_set_project
    )


def attr_rules(action: str, resource: Resource, parsed: Parsed, creating: bool) -> list[str]:
    """The ``<action>:<attr>`` (and ``<action>:<attr>:<key>``) rules a request needs."""
    rules: list[str] = []
    for name in attributes.explicitly_set(resource, parsed, creating):
        rules.append(f"{action}:{name}")
        rules.extend(attributes.sub_rules(action, resource, name, parsed.values[name]))
    return rules


def finish(
    caller: Caller,
    resource: Resource,
    items: list[dict[str, Any]],
    fields: Sequence[str] = (),
    targets: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Hide what ``get_<resource>:<attr>`` rules hide (decided on the first item, as
    Neutron does for a list), then keep only ``fields``."""
    if not items:
        return items
    sample = targets[0] if targets else items[0]
    hidden = caller.hidden_fields(resource.policy_name, items[0].keys(), sample)
    return project(items, fields, hidden)


def one(
    caller: Caller,
    resource: Resource,
    item: dict[str, Any],
    fields: Sequence[str] = (),
    target: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return finish(caller, resource, [item], fields, [target] if target is not None else None)[0]
