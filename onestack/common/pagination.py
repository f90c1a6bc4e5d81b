"""Paging through collections: ``limit``/``marker``, sorted queries and links.

* :meth:`PageParams.from_query` reads ``limit`` and ``marker`` from the query
  string (a 400 for a non-integer or negative ``limit``) and clamps to the
  service's maximum.
* :func:`sort_params` reads ``sort_key``/``sort_dir`` pairs (Nova, Neutron,
  Glance) and Glance's ``sort=key:dir,...`` form.
* :func:`paginate_query` / :func:`fetch_page` order a SQLAlchemy ``select`` by
  the sort keys (with ``id`` as the last key, so the order is total and paging
  is stable) and continue after the marker row; NULLs sort first ascending
  and last descending on every database.
* :class:`json_text` / :class:`json_contains` filter on JSON columns (a
  member of an object, an element of an array) in SQL, on SQLite and on
  PostgreSQL alike.
* Link builders for each wire style: Nova's ``"servers_links"``, Neutron's
  ``"networks_links"`` (next and previous), Glance's ``"next"`` and Keystone's
  ``"links"`` (no marker paging).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from sqlalchemy import Boolean, Select, String, and_, case, false, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from onestack.common.errors import ApiError, BadRequest

T = TypeVar("T")

ASC = "asc"
DESC = "desc"


# --------------------------------------------------------------------------- parameters


def _get_all(params: Any, key: str) -> list[str]:
    """Every value of ``key`` in a query mapping (multi-dicts included)."""
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        return [str(v) for v in getlist(key)]
    if key not in params:
        return []
    value = params[key]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _last(params: Any, key: str) -> str | None:
    values = _get_all(params, key)
    return values[-1] if values else None


def parse_int_param(
    name: str,
    value: str | None,
    *,
    minimum: int = 0,
    error: type[ApiError] = BadRequest,
) -> int | None:
    """An integer query parameter; ``error`` (400) if it is not one or too small."""
    if value is None:
        return None
    try:
        number = int(value.strip())
    except (ValueError, AttributeError):
        raise error(f"{name} param must be an integer") from None
    if number < minimum:
        raise error(f"{name} param must be positive")
    return number


@dataclass(frozen=True)
class PageParams:
    """What page the client asked for.

    ``limit`` is the effective page size (``None`` = no limit), already clamped
    to the service's maximum; ``requested_limit`` is what the client sent.
    """

    limit: int | None = None
    marker: str | None = None
    requested_limit: int | None = None
    page_reverse: bool = False

    @classmethod
    def from_query(
        cls,
        params: Any,
        max_limit: int | None = 1000,
        default_limit: int | None = None,
        *,
        zero_is_default: bool = True,
        error: type[ApiError] = BadRequest,
    ) -> PageParams:
        """Read ``limit``/``marker`` (and Neutron's ``page_reverse``) from ``params``.

        ``params`` is a mapping or a multi-dict (Starlette ``QueryParams``); the
        last value of a repeated parameter counts. A ``limit`` of 0 means the
        default with ``zero_is_default`` (Nova, Neutron) and an empty page
        otherwise. Without ``limit`` the page size is ``default_limit`` (or
        ``max_limit`` if there is no default).
        """
        requested = parse_int_param("limit", _last(params, "limit"), error=error)
        limit = requested
        if limit is None or (limit == 0 and zero_is_default):
            limit = default_limit if default_limit is not None else max_limit
        if max_limit is not None and limit is not None:
            limit = min(limit, max_limit)
        marker = _last(params, "marker")
        if marker is not None and not marker.strip():
            marker = None
        reverse = (_last(params, "page_reverse") or "").strip().lower() in ("true", "1", "yes")
        return cls(limit=limit, marker=marker, requested_limit=requested, page_reverse=reverse)


def sort_params(
    params: Any,
    allowed: Iterable[str],
    *,
    default_keys: Sequence[str] = ("created_at",),
    default_dir: str = DESC,
    error: type[ApiError] = BadRequest,
) -> tuple[list[str], list[str]]:
    """Sort keys and directions from ``sort_key``/``sort_dir`` or ``sort=k:d,k2``.

    Directions pair up with keys in order; keys without a direction get the
    last given direction (or ``default_dir``). Unknown keys or directions, or
    more directions than keys, are a 400.
    """
    allowed_set = set(allowed)
    keys: list[str] = []
    dirs: list[str] = []
    sort = _last(params, "sort")
    if sort is not None and (_get_all(params, "sort_key") or _get_all(params, "sort_dir")):
        raise error("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
    if sort is not None:
        for part in sort.split(","):
            key, _, direction = part.strip().partition(":")
            keys.append(key.strip())
            dirs.append(direction.strip().lower() or default_dir)
    else:
        keys = [k.strip() for k in _get_all(params, "sort_key")]
        dirs = [d.strip().lower() for d in _get_all(params, "sort_dir")]
        if len(dirs) > max(len(keys), 1):
            raise error("The number of sort_dir values exceeds the number of sort_key values.")
        if not keys:
            keys = list(default_keys)
            dirs = dirs or [default_dir] * len(keys)
        while len(dirs) < len(keys):
            dirs.append(dirs[-1] if dirs else default_dir)
        dirs = dirs[: len(keys)]
    for key in keys:
        if key not in allowed_set:
            raise error(f"Invalid sort key: {key}")
    for direction in dirs:
        if direction not in (ASC, DESC):
            raise error(f"Invalid sort direction: {direction}")
    return keys, dirs


# --------------------------------------------------------------------------- queries


def _column(model: Any, key: str) -> Any:
    column = getattr(model, key, None)
    if column is None or not hasattr(column, "asc"):
        raise ValueError(f"{getattr(model, '__name__', model)} has no column {key!r}")
    return column


def _nullable(column: Any) -> bool:
    try:
        return bool(column.expression.nullable)
    except AttributeError:  # an expression rather than a column
        return True


def _marker_value(marker: Any, key: str) -> Any:
    if isinstance(marker, Mapping):
        return marker.get(key)
    return getattr(marker, key)


def _normalize(
    sort_keys: Sequence[str], sort_dirs: Sequence[str] | None, tie_breaker: str | None
) -> tuple[list[str], list[str]]:
    keys = list(sort_keys)
    dirs = list(sort_dirs) if sort_dirs else []
    if len(dirs) > len(keys):
        raise ValueError("more sort directions than sort keys")
    while len(dirs) < len(keys):
        dirs.append(dirs[-1] if dirs else ASC)
    if tie_breaker and tie_breaker not in keys:
        keys.append(tie_breaker)
        dirs.append(dirs[-1] if dirs else ASC)
    for direction in dirs:
        if direction not in (ASC, DESC):
            raise ValueError(f"bad sort direction {direction!r}")
    return keys, dirs


def paginate_query(
    stmt: Select[Any],
    model: Any,
    *,
    limit: int | None,
    sort_keys: Sequence[str],
    sort_dirs: Sequence[str] | None = None,
    marker: Any | None = None,
    tie_breaker: str | None = "id",
) -> Select[Any]:
    """``stmt`` ordered by the sort keys, after ``marker``, at most ``limit`` rows.

    ``marker`` is the marker row (a model instance or a mapping of its values);
    ``tie_breaker`` (the primary key) is appended to the keys so every row has
    a unique position and no row is skipped or repeated between pages.
    """
    keys, dirs = _normalize(sort_keys, sort_dirs, tie_breaker)
    order: list[Any] = []
    for key, direction in zip(keys, dirs, strict=True):
        column = _column(model, key)
        if _nullable(column):
            # NULLs first ascending, last descending - also on PostgreSQL.
            is_null = case((column.is_(None), 0), else_=1)
            order.append(is_null.asc() if direction == ASC else is_null.desc())
        order.append(column.asc() if direction == ASC else column.desc())
    stmt = stmt.order_by(*order)
    if marker is not None:
        alternatives: list[ColumnElement[bool]] = []
        for i, (key, direction) in enumerate(zip(keys, dirs, strict=True)):
            conditions: list[ColumnElement[bool]] = []
            for prev in keys[:i]:
                conditions.append(_equal(_column(model, prev), _marker_value(marker, prev)))
            conditions.append(_after(_column(model, key), _marker_value(marker, key), direction))
            alternatives.append(and_(*conditions))
        stmt = stmt.where(or_(*alternatives))
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def _equal(column: Any, value: Any) -> ColumnElement[bool]:
    if value is None:
        return column.is_(None)  # type: ignore[no-any-return]
    return column == value  # type: ignore[no-any-return]


def _after(column: Any, value: Any, direction: str) -> ColumnElement[bool]:
    """Rows strictly after ``value`` in this column's order (NULLs first asc)."""
    if isinstance(value, bool):  # SQLAlchemy compares True/False only with = and IS
        value = literal(value, Boolean())
    if direction == ASC:
        if value is None:
            return column.is_not(None)  # type: ignore[no-any-return]
        return column > value  # type: ignore[no-any-return]
    if value is None:
        return false()
    if _nullable(column):
        return or_(column < value, column.is_(None))
    return column < value  # type: ignore[no-any-return]


@dataclass
class Page(Generic[T]):
    """One page of rows, and whether more rows follow it."""

    items: list[T]
    has_more: bool
    limit: int | None = None
    marker: str | None = None

    @property
    def last(self) -> T | None:
        return self.items[-1] if self.items else None


def find_marker(
    session: Session,
    model: Any,
    marker: str | None,
    *,
    key: str = "id",
    stmt: Select[Any] | None = None,
    error: Callable[[str], ApiError] | None = None,
) -> Any | None:
    """The marker row, or ``error(marker)`` (400 ``marker [x] not found``) if absent.

    Pass ``stmt`` (the visible rows) so a marker the caller cannot see is not found.
    """
    if marker is None:
        return None
    from sqlalchemy import select

    query = stmt if stmt is not None else select(model)
    row = session.execute(query.where(_column(model, key) == marker).limit(1)).scalars().first()
    if row is None:
        raise (error or (lambda m: BadRequest(f"marker [{m}] not found")))(marker)
    return row


def fetch_page(
    session: Session,
    stmt: Select[Any],
    model: Any,
    page: PageParams,
    *,
    sort_keys: Sequence[str] = ("created_at",),
    sort_dirs: Sequence[str] | None = (DESC,),
    tie_breaker: str | None = "id",
    marker_error: Callable[[str], ApiError] | None = None,
) -> Page[Any]:
    """Run ``stmt`` (a ``select(model)...``) for one page.

    Looks the marker up among the rows ``stmt`` selects (absent -> 400), reads
    one row more than the limit to learn whether more follow.
    """
    marker_row = find_marker(session, model, page.marker, stmt=stmt, error=marker_error)
    probe = page.limit + 1 if page.limit is not None else None
    query = paginate_query(
        stmt,
        model,
        limit=probe,
        sort_keys=sort_keys,
        sort_dirs=sort_dirs,
        marker=marker_row,
        tie_breaker=tie_breaker,
    )
    rows = list(session.execute(query).scalars().all())
    has_more = page.limit is not None and len(rows) > page.limit
    if has_more:
        rows = rows[: page.limit]
    return Page(items=rows, has_more=has_more, limit=page.limit, marker=page.marker)


def paginate_list(
    items: Sequence[T],
    page: PageParams,
    *,
    key: Callable[[T], Any] = lambda item: item["id"],  # type: ignore[index]
    error: Callable[[str], ApiError] | None = None,
) -> Page[T]:
    """Page through an already sorted in-memory list by marker and limit."""
    start = 0
    if page.marker is not None:
        for index, item in enumerate(items):
            if str(key(item)) == page.marker:
                start = index + 1
                break
        else:
            raise (error or (lambda m: BadRequest(f"marker [{m}] not found")))(page.marker)
    rest = items[start:]
    if page.limit is None:
        return Page(items=list(rest), has_more=False, limit=None, marker=page.marker)
    return Page(
        items=list(rest[: page.limit]),
        has_more=len(rest) > page.limit,
        limit=page.limit,
        marker=page.marker,
    )


# --------------------------------------------------------------------------- JSON filters


class json_text(FunctionElement[str]):
    """``json_text(column, key)``: the text of member ``key`` of the JSON object in
    ``column`` (NULL when absent), for filters on free-form properties. Any key
    works, quotes and dots included (no JSON path is built from it)."""

    type = String()
    inherit_cache = True
    name = "json_text"


@compiles(json_text)
def _json_text(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:  # PostgreSQL
    column, key = list(element.clauses)
    return f"({compiler.process(column, **kw)} ->> CAST({compiler.process(key, **kw)} AS TEXT))"


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = list(element.clauses)
    return (f"(SELECT value FROM json_each({compiler.process(column, **kw)}) "
            f"WHERE key = {compiler.process(key, **kw)})")


class json_contains(FunctionElement[bool]):
    """``json_contains(column, value)``: the JSON array in ``column`` holds the
    string ``value`` (false for anything that is not an array)."""

    type = Boolean()
    inherit_cache = True
    name = "json_contains"


@compiles(json_contains)
def _json_contains(element: json_contains, compiler: SQLCompiler, **kw: Any) -> str:  # PostgreSQL
    column, value = list(element.clauses)
    return (f"(CAST({compiler.process(column, **kw)} AS JSONB) @> "
            f"jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))")


@compiles(json_contains, "sqlite")
def _json_contains_sqlite(element: json_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "
            f"WHERE type = 'text' AND value = {compiler.process(value, **kw)})")


# --------------------------------------------------------------------------- links


def _query_pairs(params: Any) -> list[tuple[str, str]]:
    multi = getattr(params, "multi_items", None)
    if multi is not None:
        return [(str(k), str(v)) for k, v in multi()]
    pairs: list[tuple[str, str]] = []
    for k, v in dict(params or {}).items():
        if isinstance(v, list | tuple):
            pairs.extend((str(k), str(x)) for x in v)
        elif v is not None:
            pairs.append((str(k), str(v)))
    return pairs


def with_query(url: str, params: Any, **changes: Any) -> str:
    """``url?<params>`` with the ``changes`` replacing (or, None, removing) parameters."""
    pairs = [(k, v) for k, v in _query_pairs(params) if k not in changes]
    for k, v in changes.items():
        if v is None:
            continue
        pairs.append((k, str(v)))
    return f"{url}?{urlencode(pairs)}" if pairs else url


def _id_of(item: Any, id_key: str) -> str:
    if isinstance(item, Mapping):
        return str(item[id_key])
    return str(getattr(item, id_key))


def nova_links(
    url: str,
    params: Any,
    collection: str,
    items: Sequence[Any],
    limit: int | None,
    *,
    id_key: str = "id",
) -> dict[str, list[dict[str, str]]]:
    """Nova's ``{"<collection>_links": [{"rel": "next", "href": ...}]}``, or ``{}``.

    Nova offers a next link whenever the page is full (``len(items) == limit``,
    the limit being the client's, clamped to the maximum). ``url`` is the
    collection's full URL (e.g. ``http://h/compute/v2.1/servers/detail``).
    Merge the result into the response body.
    """
    if not limit or len(items) != limit:
        return {}
    href = with_query(url, params, marker=_id_of(items[-1], id_key))
    return {f"{collection}_links": [{"rel": "next", "href": href}]}


def neutron_links(
    url: str,
    params: Any,
    collection: str,
    page: Page[Any],
    *,
    id_key: str = "id",
) -> dict[str, list[dict[str, str]]]:
    """Neutron's ``{"<collection>_links": [next?, previous?]}``, or ``{}``.

    A next link when more rows follow; a previous link (``page_reverse=True``,
    marker = the first row) when this page started after a marker.
    """
    links: list[dict[str, str]] = []
    if page.limit is None or not page.items:
        return {}
    if page.has_more:
        href = with_query(
            url, params, limit=page.limit, marker=_id_of(page.items[-1], id_key), page_reverse=None
        )
        links.append({"rel": "next", "href": href})
    if page.marker is not None:
        href = with_query(
            url,
            params,
            limit=page.limit,
            marker=_id_of(page.items[0], id_key),
            page_reverse="True",
        )
        links.append({"rel": "previous", "href": href})
    return {f"{collection}_links": links} if links else {}


def glance_next(
    path: str,
    params: Any,
    items: Sequence[Any],
    limit: int | None,
    *,
    id_key: str = "id",
) -> dict[str, str]:
    """Glance's ``{"next": "/v2/images?marker=<last id>&..."}`` when the page is full.

    ``path`` is the collection path relative to the service endpoint (e.g.
    ``/v2/images``), as Glance writes it.
    """
    if not items or not limit or len(items) != limit:
        return {}
    return {"next": with_query(path, params, marker=_id_of(items[-1], id_key))}


def keystone_links(self_url: str) -> dict[str, Any]:
    """``{"self": <url>, "previous": None, "next": None}`` (Keystone does not page)."""
    return {"self": self_url, "previous": None, "next": None}


def keystone_collection(
    key: str,
    items: list[Any],
    self_url: str,
    *,
    list_limit: int | None = None,
) -> dict[str, Any]:
    """A Keystone list body; with ``list_limit`` the list is cut and ``truncated`` set."""
    body: dict[str, Any] = {key: items, "links": keystone_links(self_url)}
    if list_limit is not None and len(items) > list_limit:
        body[key] = items[:list_limit]
        body["truncated"] = True
    return body
