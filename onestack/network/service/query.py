"""Listing: Neutron's filters, ``fields``, sorting and pagination, in SQL.

``parse(resource, params)`` validates a query string the way Neutron does
(unknown filters, sort keys and directions, limits: each Neutron's 400) and
``fetch(...)`` runs one page of a ``select`` of columns through
``common.pagination`` (marker rows looked up among the visible rows; a
missing marker is the resource's 404, as Neutron answers). Without ``limit``,
``marker`` or sort keys nothing is ordered (the cheapest plan, as Neutron);
with them the order is total (``id`` last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, false, func, not_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import ApiError
from onestack.common.pagination import ASC, DESC, paginate_query
from onestack.network.models import NetworkTag
from onestack.network.service.attributes import Resource
from onestack.network.service.errors import HTTPBadRequest, bad_request

PAGING = ("limit", "marker", "page_reverse", "sort_key", "sort_dir", "fields")
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
CHUNK = 500  # ids per IN (...) when loading side tables for a page
_TAGS = select(NetworkTag.resource_id, NetworkTag.tag)
_TAGS_OF = _TAGS.where(NetworkTag.resource_id.in_(bindparam("ids", expanding=True)))

FilterFn = Callable[[list[Any]], ColumnElement[bool]]


@dataclass
class ListQuery:
    filters: dict[str, list[Any]] = field(default_factory=dict)
    tag_filters: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    sort_keys: list[str] = field(default_factory=list)
    sort_dirs: list[str] = field(default_factory=list)
    limit: int | None = None
    marker: str | None = None
    page_reverse: bool = False

    @property
    def paged(self) -> bool:
        return self.limit is not None or self.marker is not None


def _multi(params: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in params:
        out.setdefault(key, []).append(value)
    return out


def parse(resource: Resource, params: Iterable[tuple[str, str]], *, taggable: bool = True) -> ListQuery:
    """A validated list query (Neutron's messages for every bad parameter)."""
    raw = _multi(params)
    q = ListQuery()
    limit = raw.get("limit", ["0"])[-1]
    try:
        number = int(limit)
    except ValueError:
        number = -1
    if number < 0:
        raise bad_request("limit", f"Limit must be an integer 0 or greater and not '{limit}'")
    # A limit past any table's size is no limit (and must fit a BIGINT).
    q.limit = (number or None) if number < 2**62 else None
    marker = raw.get("marker", [None])[-1]
    q.marker = marker or None
    q.page_reverse = (raw.get("page_reverse", ["False"])[-1] or "").lower() == "true"
    q.fields = [f for f in raw.get("fields", []) if f]
    keys = [k for k in raw.get("sort_key", []) if k]
    dirs = [d for d in raw.get("sort_dir", []) if d]
    if len(keys) != len(dirs):
        raise HTTPBadRequest("The number of sort_keys and sort_dirs must be same")
    valid = resource.sort_keys
    bad_keys = [k for k in keys if k not in valid]
    if bad_keys:
        raise HTTPBadRequest(f"{bad_keys} is invalid attribute for sort_keys")
    bad_dirs = [d for d in dirs if d not in (ASC, DESC)]
    if bad_dirs:
        raise HTTPBadRequest(f"{bad_dirs} is invalid value for sort_dirs, valid value is 'asc' and 'desc'")
    q.sort_keys, q.sort_dirs = keys, dirs
    allowed = resource.filters | (set(TAG_FILTERS) if taggable else set())
    invalid: list[str] = []
    for key, values in raw.items():
        if key in PAGING:
            continue
        if key not in allowed:
            invalid.append(key)
            continue
        if key in TAG_FILTERS:
            tags = [t for value in values for t in value.split(",") if t]
            if tags:
                q.tag_filters[key] = tags
            continue
        attr = resource.attrs.get(key)
        if attr is not None and attr.convert_list is not None:
            q.filters[key] = [attr.convert_list(values)]
            continue
        converted: list[Any] = []
        for value in values:
            if attr is not None and attr.convert is not None and value != "":
                value = attr.convert(value)
            converted.append(value)
        q.filters[key] = converted
    if invalid:
        raise HTTPBadRequest(f"{invalid} is invalid attribute for filtering")
    return q


def where(
    q: ListQuery,
    columns: Mapping[str, Any],
    special: Mapping[str, FilterFn] | None = None,
    id_column: Any = None,
) -> list[ColumnElement[bool]]:
    """SQL conditions for the query's filters (``special`` for computed attributes)."""
    conds: list[ColumnElement[bool]] = []
    special = special or {}
    for key, values in q.filters.items():
        if key in special:
            conds.append(special[key](values))
            continue
        column = columns.get(key)
        if column is None:
            # a filterable attribute this resource cannot match (never true)
            conds.append(false())
            continue
        conds.append(column == values[0] if len(values) == 1 else column.in_(values))
    if q.tag_filters and id_column is not None:
        conds.extend(tag_conditions(q.tag_filters, id_column))
    return conds


def tag_conditions(tag_filters: Mapping[str, list[str]], id_column: Any) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for key, tags in tag_filters.items():
        unique = sorted(set(tags))
        having_all = (
            select(NetworkTag.resource_id)
            .where(NetworkTag.tag.in_(unique))
            .group_by(NetworkTag.resource_id)
            .having(func.count(NetworkTag.tag) == len(unique))
        )
        any_of = select(NetworkTag.resource_id).where(NetworkTag.tag.in_(unique))
        if key == "tags":
            conds.append(id_column.in_(having_all))
        elif key == "tags-any":
            conds.append(id_column.in_(any_of))
        elif key == "not-tags":
            conds.append(not_(id_column.in_(having_all)))
        else:
            conds.append(not_(id_column.in_(any_of)))
    return conds


@dataclass
class Page:
    rows: list[Any]
    has_more: bool
    limit: int | None
    marker: str | None
    reverse: bool


def fetch(
    session: Session,
    stmt: Select[Any],
    model: Any,
    q: ListQuery,
    *,
    sort_columns: Mapping[str, str],
    visible: Sequence[ColumnElement[bool]],
    not_found: Callable[[str], ApiError],
    columns_only: bool = False,
) -> Page:
    """One page of ``stmt`` (a select of columns from ``model``, filters applied).

    ``sort_columns`` maps API sort keys to model attribute names; ``visible`` are
    the caller's visibility conditions (the marker must be among those rows).
    ``columns_only``: ``stmt`` selects plain columns, run it on the connection
    (no ORM row processing: the long lists).
    """
    run = session.connection().execute if columns_only else session.execute
    if not q.paged and not q.sort_keys:
        return Page(list(run(stmt).all()), False, None, None, False)
    keys = [sort_columns.get(k, k) for k in q.sort_keys]
    dirs = list(q.sort_dirs)
    if q.page_reverse:
        dirs = [DESC if d == ASC else ASC for d in dirs]
    if "id" not in keys:
        keys.append("id")
        dirs.append(DESC if q.page_reverse else ASC)
    marker_row = None
    if q.marker is not None:
        marker_row = session.execute(
            select(model).where(model.id == q.marker, *visible).limit(1)
        ).scalars().first()
        if marker_row is None:
            raise not_found(q.marker)
    probe = q.limit + 1 if q.limit is not None else None
    query = paginate_query(
        stmt, model, limit=probe, sort_keys=keys, sort_dirs=dirs, marker=marker_row, tie_breaker=None
    )
    rows = list(run(query).all())
    has_more = q.limit is not None and len(rows) > q.limit
    if has_more:
        rows = rows[: q.limit]
    if q.page_reverse:
        rows.reverse()
    return Page(rows, has_more, q.limit, q.marker, q.page_reverse)


def chunks(ids: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def load_tags(session: Session, ids: Sequence[str], scope: Any = None) -> dict[str, list[str]]:
    """Tags of many resources, a few set-based queries (not one per row);
    ``scope``: a select of exactly these ids, used instead of lists of them."""
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    run = session.connection().execute
    if scope is not None:
        batches: list[tuple[Any, dict[str, Any]]] = [(_TAGS.where(NetworkTag.resource_id.in_(scope)), {})]
    else:
        batches = [(_TAGS_OF, {"ids": list(part)}) for part in chunks(ids)]
    for stmt, params in batches:
        for rid, tag in run(stmt, params):
            out.setdefault(rid, []).append(tag)
    for tags in out.values():
        tags.sort()
    return out


def project(items: list[dict[str, Any]], fields: Sequence[str], hidden: set[str]) -> list[dict[str, Any]]:
    """Drop what policy hides, then keep only the asked ``fields`` (if any)."""
    if fields:
        keep = [f for f in dict.fromkeys(fields) if f not in hidden]
        return [{k: item[k] for k in keep if k in item} for item in items]
    if hidden:  # the items are this request's own: drop the keys in place
        for item in items:
            for k in hidden:
                item.pop(k, None)
    return items
