"""``GET /v2/images``: Glance's filters, sort keys and marker paging."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import or_, select

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    BadRequest,
    NotFound,
)
from onestack.common.ids import parse_isotime
from onestack.image import schemas
from onestack.image.models import Image, ImageMember
from onestack.image.service._access import authorize, is_admin, visible_image
from onestack.image.views import image_view

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


LIMIT_DEFAULT = 25


LIMIT_MAX = 1000


_OPS = {
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


def _matches(img: Image, filters: list[tuple[str, str]]) -> bool:
    hidden_filter = False
    for key, value in filters:
        if key == "size_min":
            if img.size is None or img.size < int(value):
                return False
        elif key == "size_max":
            if img.size is None or img.size > int(value):
                return False
        elif key in ("protected", "os_hidden"):
            if key == "os_hidden":
                hidden_filter = True
            if bool(getattr(img, key)) != _bool_param(key, value):
                return False
        elif key in ("created_at", "updated_at"):
            op, when = _time_filter(key, value)
            if not _OPS[op](getattr(img, key), when):
                return False
        elif key == "tag":
            if value not in (img.tags or []):
                return False
        else:
            if key in ("id", "name", "status", "owner", "disk_format", "container_format", "min_ram",
                       "min_disk", "size", "virtual_size", "checksum", "os_hash_value"):
                actual: Any = getattr(img, key)
            else:
                actual = (img.properties or {}).get(key)
            op, wanted = _value_filter(value)
            if actual is None or str(actual) not in wanted:
                return False
    return hidden_filter or not img.os_hidden


def _sort_value(img: Image, key: str) -> tuple[int, Any]:
    value = getattr(img, key)
    if isinstance(value, bool):
        value = int(value)
    return (0, "") if value is None else (1, value)


def _order(images: list[Image], sort: list[tuple[str, str]]) -> list[Image]:
    ordered = list(images)
    for key, direction in reversed(sort):
        ordered.sort(key=lambda i, k=key: _sort_value(i, k), reverse=direction == "desc")  # type: ignore[misc]
    return ordered


def list_images(svc: ImageService, ctx: AuthContext, params: list[tuple[str, str]]) -> dict[str, Any]:
    query = parse_list_query(params)
    authorize(svc, "get_images", ctx, {"project_id": ctx.project_id, "member_id": None, "visibility": None})
    admin = is_admin(svc, ctx)
    project = ctx.project_id
    with svc.db.read() as s:
        stmt = select(Image)
        vis = query.visibility
        if vis not in (None, "all"):
            stmt = stmt.where(Image.visibility == vis)
        if not admin:
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
        candidates = list(s.scalars(stmt))
        rows = [img for img in candidates if _matches(img, query.filters)]
        ordered = _order(rows, query.sort)
        if query.marker is not None:
            marker = next((i for i in candidates if i.id == query.marker), None)
            if marker is None:
                try:
                    marker, _ = visible_image(svc, s, ctx, query.marker)
                except NotFound:
                    raise BadRequest(f"Invalid marker. Image {query.marker} could not be found.") from None
            if marker not in ordered:
                ordered = _order([*ordered, marker], query.sort)
            ordered = ordered[ordered.index(marker) + 1 :]
        page = ordered[: query.limit]
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
