"""``GET /v2/images``: Glance's filters, sort keys and marker paging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import Select, String, cast, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    BadRequest,
    NotFound,
)
from onestack.common.ids import parse_isotime
from onestack.common.pagination import json_contains, json_text, paginate_query
from onestack.image import schemas
from onestack.image.models import Image, ImageMember
from onestack.image.service._access import UUID_RE, authorize, is_admin, visible_image
from onestack.image.views import image_view

if TYPE_CHECKING:
    from onestack.image.core import ImageService

LIMIT_DEFAULT = 25
LIMIT_MAX = 1000

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}
_RESERVED_PARAMS = ("limit", "marker", "sort_key", "sort_dir", "sort", "member_status", "visibility")


def _split_in(value: str) -> list[str]:
    items, cur, quoted = [], "", False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return items


def _value_filter(value: str) -> tuple[str, list[str]]:
    """``in:a,b`` / ``eq:x`` / plain -> (operator, values)."""
    if value.startswith("in:"):
        return "in", _split_in(value[3:])
    if value.startswith("eq:"):
        return "eq", [value[3:]]
    return "eq", [value]


def _time_filter(name: str, value: str) -> tuple[str, datetime]:
    op, sep, rest = value.partition(":")
    if not sep or op not in _OPS:
        raise BadRequest(f"Invalid operator for {name}: {value!r}; use gt, gte, lt, lte, eq or neq.")
    try:
        return op, parse_isotime(rest)
    except ValueError:
        raise BadRequest(f"Unable to filter on a range with a nonsensical value: {rest!r}.") from None


def _int_param(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid value for {name}: {value!r} is not an integer.") from None


def _bool_param(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value for {name}: {value!r} is not a boolean.")


@dataclass
class ListQuery:
    limit: int
    marker: str | None
    sort: list[tuple[str, str]]
    visibility: str | None
    member_status: str
    filters: list[tuple[str, str]]


def parse_list_query(params: list[tuple[str, str]]) -> ListQuery:
    single: dict[str, str] = {}
    sort_keys: list[str] = []
    sort_dirs: list[str] = []
    filters: list[tuple[str, str]] = []
    for key, value in params:
        if key == "sort_key":
            sort_keys.extend(v.strip() for v in value.split(","))
        elif key == "sort_dir":
            sort_dirs.extend(v.strip() for v in value.split(","))
        elif key in _RESERVED_PARAMS:
            single[key] = value
        else:
            filters.append((key, value))
    limit = LIMIT_DEFAULT
    if "limit" in single:
        try:
            limit = int(single["limit"])
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise BadRequest("limit param must be positive")
    limit = min(limit, LIMIT_MAX)

    sort: list[tuple[str, str]] = []
    if "sort" in single:
        if sort_keys or sort_dirs:
            raise BadRequest("The 'sort' parameter cannot be used with 'sort_key' or 'sort_dir'.")
        for item in single["sort"].split(","):
            key, _, direction = item.strip().partition(":")
            sort.append((key.strip(), (direction or "desc").strip()))
    else:
        if len(sort_dirs) > 1 and len(sort_dirs) != len(sort_keys):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        keys = sort_keys or ["created_at"]
        for i, key in enumerate(keys):
            direction = sort_dirs[i] if len(sort_dirs) > 1 else (sort_dirs[0] if sort_dirs else "desc")
            sort.append((key, direction))
    for key, direction in sort:
        if key not in schemas.SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It is not in the list of sortable keys.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    for tiebreak in ("created_at", "id"):
        if tiebreak not in [k for k, _ in sort]:
            sort.append((tiebreak, sort[-1][1]))

    visibility = single.get("visibility")
    if visibility is not None and visibility not in (*schemas.VISIBILITIES, "all"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = single.get("member_status", "accepted")
    if member_status not in (*schemas.MEMBER_STATUSES, "all"):
        raise BadRequest(f"Invalid status value: {member_status}")
    # validate the typed filters early (400 on nonsense)
    for key, value in filters:
        if key in ("size_min", "size_max", "min_ram", "min_disk"):
            _int_param(key, value)
        elif key in ("protected", "os_hidden"):
            _bool_param(key, value)
        elif key in ("created_at", "updated_at"):
            _time_filter(key, value)
        elif key == "status" and value not in schemas.STATUSES and not value.startswith("in:"):
            raise BadRequest(f"Invalid status value: {value}")
    return ListQuery(limit, single.get("marker"), sort, visibility, member_status, filters)


# Attributes a plain filter compares (as text); any other name is a property.
_COLUMNS = ("id", "name", "status", "owner", "disk_format", "container_format", "min_ram",
            "min_disk", "size", "virtual_size", "checksum", "os_hash_value")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _clamp(value: int) -> int:
    """Beyond a 64-bit integer no stored size can be: clamp, so the database never overflows."""
    return min(max(value, _INT64[0]), _INT64[1])


def _conditions(svc: ImageService, filters: list[tuple[str, str]]) -> list[ColumnElement[bool]]:
    """The filters as SQL conditions (the query was validated by ``parse_list_query``)."""
    # PostgreSQL text holds no NUL character: such a value matches nothing there.
    storable: Callable[[str], bool] = (lambda v: "\x00" not in v) if svc.db.is_postgres else (lambda v: True)
    conditions: list[ColumnElement[bool]] = []
    hidden_filter = False
    for key, value in filters:
        if key == "size_min":
            conditions.append(Image.size >= _clamp(_int_param(key, value)))
        elif key == "size_max":
            conditions.append(Image.size <= _clamp(_int_param(key, value)))
        elif key in ("protected", "os_hidden"):
            hidden_filter = hidden_filter or key == "os_hidden"
            conditions.append(getattr(Image, key) == _bool_param(key, value))
        elif key in ("created_at", "updated_at"):
            op, when = _time_filter(key, value)
            conditions.append(_OPS[op](getattr(Image, key), when))
        elif key == "tag":
            conditions.append(json_contains(Image.tags, value) if storable(value) else false())
        else:
            _, wanted = _value_filter(value)
            wanted = [w for w in wanted if storable(w)]
            if key in _COLUMNS:
                column: Any = getattr(Image, key)
                if key in ("min_ram", "min_disk", "size", "virtual_size"):
                    column = cast(column, String)  # compared as the text the client sent
            elif storable(key):
                column = json_text(Image.properties, key)
            else:
                wanted = []
            conditions.append(column.in_(wanted) if wanted else false())
    if not hidden_filter:
        conditions.append(Image.os_hidden == false())
    return conditions


def _visible_to(stmt: Select[Any], query: ListQuery, project: str | None, admin: bool) -> Select[Any]:
    """Only the images the caller may list, as Glance's visibility rules say."""
    vis = query.visibility
    if vis not in (None, "all"):
        stmt = stmt.where(Image.visibility == vis)
    if admin:
        return stmt
    member_q = select(ImageMember.image_id).where(ImageMember.member == project)
    if query.member_status != "all":
        member_q = member_q.where(ImageMember.status == query.member_status)
    shared_ok = Image.id.in_(member_q)
    conditions = [Image.owner == project, Image.visibility == "public",
                  (Image.visibility == "shared") & shared_ok]
    if vis in ("community", "all"):
        conditions.append(Image.visibility == "community")
    stmt = stmt.where(or_(*conditions))
    if vis == "shared":
        # only the caller's shared images and those shared with it
        stmt = stmt.where(or_(Image.owner == project, shared_ok))
    return stmt


def _marker(svc: ImageService, s: Session, ctx: AuthContext, visible: Select[Any], marker: str) -> Image:
    """The marker image: one the caller can list, or at least see (404 -> 400)."""
    invalid = BadRequest(f"Invalid marker. Image {marker} could not be found.")
    if not UUID_RE.match(marker):
        raise invalid
    row = s.scalars(visible.where(Image.id == marker).limit(1)).first()
    if row is not None:
        return row
    try:
        row, _ = visible_image(svc, s, ctx, marker)
    except NotFound:
        raise invalid from None
    return row


def list_images(svc: ImageService, ctx: AuthContext, params: list[tuple[str, str]]) -> dict[str, Any]:
    """One page of the images the caller may see: filtered, sorted (the sort keys,
    then ``created_at`` and ``id``) and cut after the marker, all in SQL."""
    query = parse_list_query(params)
    authorize(svc, "get_images", ctx, {"project_id": ctx.project_id, "member_id": None, "visibility": None})
    admin = is_admin(svc, ctx)
    with svc.db.read() as s:
        visible = _visible_to(select(Image), query, ctx.project_id, admin)
        marker = _marker(svc, s, ctx, visible, query.marker) if query.marker is not None else None
        stmt = paginate_query(
            visible.where(*_conditions(svc, query.filters)),
            Image,
            limit=query.limit,
            sort_keys=[k for k, _ in query.sort],
            sort_dirs=[d for _, d in query.sort],
            marker=marker,
            tie_breaker="id",
        )
        page = list(s.scalars(stmt))
        next_marker = page[-1].id if page and len(page) == query.limit else None
        body: dict[str, Any] = {
            "images": [image_view(i) for i in page],
            "first": "/v2/images",
            "schema": "/v2/schemas/images",
        }
    rest = [(k, v) for k, v in params if k != "marker"]
    if rest:
        body["first"] = "/v2/images?" + urlencode(rest)
    if next_marker is not None:
        body["next"] = "/v2/images?" + urlencode([*rest, ("marker", next_marker)])
    return body
