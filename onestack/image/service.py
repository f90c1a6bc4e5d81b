"""Image rules: visibility, policy, validation, quotas and the status life cycle.

Functions take the ``ImageService`` first and the caller's ``AuthContext``;
they raise ``ApiError`` subclasses, which the API renders in Glance's shape.
Data transfer itself is in ``data.py``; here are the state transitions around
it (``begin_upload`` -> bytes -> ``finish_upload`` or ``fail_upload``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
)
from onestack.common.ids import isotime, parse_isotime, utcnow
from onestack.image import schemas
from onestack.image.models import Image, ImageMember, ImageTask

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
TEST_GUEST_NAME = "onestack-test-guest"
LIMIT_DEFAULT = 25
LIMIT_MAX = 1000


# --------------------------------------------------------------------------- views


def image_view(img: Image) -> dict[str, Any]:
    body: dict[str, Any] = {}
    body.update(img.properties or {})
    body.update(
        {
            "id": img.id,
            "name": img.name,
            "status": img.status,
            "visibility": img.visibility,
            "protected": bool(img.protected),
            "os_hidden": bool(img.os_hidden),
            "checksum": img.checksum,
            "os_hash_algo": img.os_hash_algo,
            "os_hash_value": img.os_hash_value,
            "owner": img.owner,
            "size": img.size,
            "virtual_size": img.virtual_size,
            "min_ram": img.min_ram,
            "min_disk": img.min_disk,
            "disk_format": img.disk_format,
            "container_format": img.container_format,
            "created_at": isotime(img.created_at),
            "updated_at": isotime(img.updated_at),
            "tags": list(img.tags or []),
            "self": f"/v2/images/{img.id}",
            "file": f"/v2/images/{img.id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    if img.status == "active" and img.location:
        body["stores"] = "file"
    return body


def member_view(m: ImageMember) -> dict[str, Any]:
    return {
        "created_at": isotime(m.created_at),
        "updated_at": isotime(m.updated_at),
        "image_id": m.image_id,
        "member_id": m.member,
        "schema": "/v2/schemas/member",
        "status": m.status,
    }


# --------------------------------------------------------------------------- access


def is_admin(svc: ImageService, ctx: AuthContext) -> bool:
    return bool(svc.enforcer.check("context_is_admin", ctx, {}))


def _member_row(s: Session, image_id: str, project_id: str | None) -> ImageMember | None:
    if not project_id:
        return None
    return s.get(ImageMember, (image_id, project_id))


def target(s: Session, img: Image, ctx: AuthContext) -> dict[str, Any]:
    member = _member_row(s, img.id, ctx.project_id) if img.visibility == "shared" else None
    return {
        "project_id": img.owner,
        "member_id": member.member if member is not None else None,
        "visibility": img.visibility,
    }


def _load(s: Session, image_id: str) -> Image:
    img = s.get(Image, image_id) if UUID_RE.match(image_id or "") else None
    if img is None:
        raise NotFound(f"No image found with ID {image_id}")
    return img


def _visible(svc: ImageService, s: Session, ctx: AuthContext, image_id: str) -> tuple[Image, dict[str, Any]]:
    """The image if the caller may see it (get_image), else 404 as Glance."""
    img = _load(s, image_id)
    tgt = target(s, img, ctx)
    if not svc.enforcer.check("get_image", ctx, tgt):
        raise NotFound(f"No image found with ID {image_id}")
    return img, tgt


def _authorize(svc: ImageService, rule: str, ctx: AuthContext, tgt: Mapping[str, Any]) -> None:
    if not svc.enforcer.check(rule, ctx, dict(tgt)):
        raise Forbidden(f"You are not authorized to complete {rule} action.")


# --------------------------------------------------------------------------- validation


def _check_attribute_names(keys: Iterable[str]) -> None:
    for key in keys:
        if key in schemas.READ_ONLY:
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key in schemas.RESERVED or key.startswith("os_glance"):
            raise Forbidden(f"Attribute '{key}' is reserved.")


DB_INT_MAX = 2**31 - 1


def _validate_value(key: str, value: Any) -> Any:
    """Validate one attribute against the image schema; returns the value to store."""
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise BadRequest(f"Invalid value for 'name': {value!r} is not a string of at most 255 characters.")
        return value
    if key == "visibility":
        if value not in schemas.VISIBILITIES:
            raise BadRequest(f"Invalid value for 'visibility': {value!r} is not one of {list(schemas.VISIBILITIES)}.")
        return value
    if key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise BadRequest(f"Invalid value for '{key}': {value!r} is not of type 'boolean'.")
        return value
    if key in ("min_ram", "min_disk"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"Invalid value for '{key}': {value!r} must be a non-negative integer.")
        if value > DB_INT_MAX:  # Glance's own check: the column is a 4-byte INTEGER
            raise BadRequest(f"'{key}' value out of range, must not exceed {DB_INT_MAX}.")
        return value
    if key == "disk_format":
        if value is not None and value not in schemas.DISK_FORMATS:
            raise BadRequest(f"Invalid value for 'disk_format': {value!r} is not one of {list(schemas.DISK_FORMATS)}.")
        return value
    if key == "container_format":
        if value is not None and value not in schemas.CONTAINER_FORMATS:
            raise BadRequest(
                f"Invalid value for 'container_format': {value!r} is not one of {list(schemas.CONTAINER_FORMATS)}."
            )
        return value
    if key == "owner":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise BadRequest("Invalid value for 'owner': must be a string of at most 255 characters.")
        return value
    if key == "tags":
        if not isinstance(value, list):
            raise BadRequest("Invalid value for 'tags': must be a list of strings.")
        tags: list[str] = []
        for tag in value:
            _validate_tag(tag)
            if tag not in tags:
                tags.append(tag)
        if len(tags) > schemas.IMAGE_TAG_QUOTA:
            raise PayloadTooLarge(f"Maximum number of tags exceeded: {len(tags)} > {schemas.IMAGE_TAG_QUOTA}.")
        return tags
    # a free-form property
    if len(key) > schemas.PROPERTY_KEY_MAX or not key:
        raise BadRequest(f"Invalid property name {key[:64]!r}: must be 1 to 255 characters.")
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value for '{key}': {value!r} is not of type 'string'.")
    if len(value) > 65535:
        raise BadRequest(f"Invalid value for '{key}': longer than 65535 characters.")
    return value


def _validate_tag(tag: Any) -> None:
    if not isinstance(tag, str) or not tag or len(tag) > schemas.TAG_MAX:
        raise BadRequest(f"Invalid tag {tag!r}: tags are strings of 1 to {schemas.TAG_MAX} characters.")


def _check_property_quota(props: Mapping[str, Any]) -> None:
    if len(props) > schemas.IMAGE_PROPERTY_QUOTA:
        raise PayloadTooLarge(
            f"Maximum number of properties exceeded: {len(props)} > {schemas.IMAGE_PROPERTY_QUOTA}."
        )


def _check_visibility_policy(svc: ImageService, ctx: AuthContext, visibility: str, tgt: dict[str, Any]) -> None:
    if visibility == "public":
        _authorize(svc, "publicize_image", ctx, tgt)
    elif visibility == "community":
        _authorize(svc, "communitize_image", ctx, tgt)


# --------------------------------------------------------------------------- quotas


def _project_usage(s: Session, project_id: str | None) -> tuple[int, int]:
    """(image count, bytes stored) of a project."""
    row = s.execute(
        select(func.count(Image.id), func.coalesce(func.sum(Image.size), 0)).where(Image.owner == project_id)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def _check_count_quota(svc: ImageService, s: Session, project_id: str | None) -> None:
    limit = svc.settings.image.image_count_total
    if limit < 0:
        return
    count, _ = _project_usage(s, project_id)
    if count + 1 > limit:
        raise PayloadTooLarge(
            f"Project {project_id} is over a limit for [Resource image_count_total is over limit of "
            f"{limit} due to current usage {count} and delta 1]"
        )


def data_limit(svc: ImageService, s: Session, img: Image) -> tuple[int, str]:
    """Bytes this image's data may have, and what to say when it has more."""
    cap = svc.settings.image.image_size_cap
    limit, message = cap, f"Image exceeds the maximum image size of {cap} bytes."
    total = svc.settings.image.image_size_total
    if total >= 0:
        _, used = _project_usage(s, img.owner)
        used -= img.size or 0
        remaining = max(total - used, 0)
        if remaining < limit:
            limit = remaining
            message = (
                f"Project {img.owner} is over a limit for [Resource image_size_total is over limit of "
                f"{total} bytes: {remaining} bytes remaining]"
            )
    return limit, message


# --------------------------------------------------------------------------- images


def create_image(svc: ImageService, ctx: AuthContext, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Image body must be a JSON object.")
    body = dict(body)
    image_id = body.pop("id", None)
    _check_attribute_names(body)
    if image_id is not None:
        if not isinstance(image_id, str) or not UUID_RE.match(image_id):
            raise BadRequest(f"Invalid value for 'id': {image_id!r} is not a valid UUID.")
        image_id = str(uuid.UUID(image_id))
    else:
        image_id = str(uuid.uuid4())

    values: dict[str, Any] = {
        "name": None, "visibility": "shared", "protected": False, "os_hidden": False,
        "min_ram": 0, "min_disk": 0, "disk_format": None, "container_format": None,
        "tags": [], "owner": ctx.project_id,
    }
    props: dict[str, Any] = {}
    for key, value in body.items():
        if key in schemas.WRITABLE:
            values[key] = _validate_value(key, value)
        else:
            props[key] = _validate_value(key, value)
    _check_property_quota(props)

    admin = is_admin(svc, ctx)
    if "owner" in body and body["owner"] != ctx.project_id and not admin:
        raise Forbidden(f"You are not permitted to create images owned by '{body['owner']}'.")
    tgt = {"project_id": values["owner"], "member_id": None, "visibility": values["visibility"]}
    _authorize(svc, "add_image", ctx, {"project_id": ctx.project_id if not admin else values["owner"],
                                        "member_id": None, "visibility": values["visibility"]})
    _check_visibility_policy(svc, ctx, values["visibility"], tgt)

    now = utcnow()
    with svc.db.write() as s:
        if s.get(Image, image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        _check_count_quota(svc, s, values["owner"])
        img = Image(
            id=image_id, status="queued", properties=props, created_at=now, updated_at=now,
            size=None, virtual_size=None, checksum=None, os_hash_algo=None, os_hash_value=None,
            location=None, staging=None, **values,
        )
        s.add(img)
        s.flush()
        return image_view(img)


def get_image(svc: ImageService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        img, _ = _visible(svc, s, ctx, image_id)
        return image_view(img)


def delete_image(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "delete_image", ctx, tgt)
        if img.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        locations = [loc for loc in (img.location,) if loc]
        staged = img.staging
        for m in s.scalars(select(ImageMember).where(ImageMember.image_id == img.id)):
            s.delete(m)
        s.delete(img)
    for loc in locations:
        svc.store.delete(loc)
    if staged:
        svc.staging.delete(staged)


# --- PATCH (application/openstack-images-v2.1-json-patch) --------------------

PATCH_CONTENT_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


def _decode_pointer(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    parts = path[1:].split("/")
    if len(parts) != 1 and parts[0] != "locations":
        raise BadRequest("Nested paths are not allowed")
    if re.search(r"~[^01]", path):
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    key = parts[0].replace("~1", "/").replace("~0", "~")
    if not key:
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    return key


def parse_changes(body: Any, v21: bool = True) -> list[tuple[str, str, Any]]:
    """JSON-patch operations: ``{"op": "replace", "path": "/name", "value": ..}``
    (v2.1 media type) or Glance's older ``{"replace": "/name", "value": ..}``
    (v2.0). In v2.0, ``add`` of something already present is a conflict."""
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes: list[tuple[str, str, Any]] = []
    for raw in body:
        if not isinstance(raw, dict):
            raise BadRequest("Operations must be JSON objects.")
        if v21:
            op = raw.get("op")
            if op not in ("add", "replace", "remove"):
                raise BadRequest(
                    "Unable to find `op` in JSON Schema change. "
                    "It must be one of the following: add, remove, replace."
                )
            if "path" not in raw:
                raise BadRequest("Unable to find `path` in JSON Schema change.")
            path = raw["path"]
        else:
            named = [k for k in ("add", "replace", "remove") if k in raw]
            if len(named) != 1:
                raise BadRequest(
                    "Operation objects must contain exactly one member named "
                    "\"add\", \"remove\", or \"replace\"."
                )
            op = named[0]
            path = raw[op]
        key = _decode_pointer(path)
        if key == "locations":
            raise Forbidden("Image locations are not exposed by this cloud.")
        if op in ("add", "replace") and "value" not in raw:
            raise BadRequest(f"Operation \"{op}\" requires a member named \"value\".")
        changes.append((op if v21 or op != "add" else "add4", key, raw.get("value")))
    return changes


def update_image(svc: ImageService, ctx: AuthContext, image_id: str, changes: list[tuple[str, str, Any]]) -> dict[str, Any]:
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "modify_image", ctx, tgt)
        admin = is_admin(svc, ctx)
        values = {k: getattr(img, k) for k in schemas.WRITABLE}
        values["tags"] = list(img.tags or [])
        props = dict(img.properties or {})
        for op, key, value in changes:
            _check_attribute_names([key])
            if op == "remove":
                if key in schemas.WRITABLE or key in schemas.BASE_ATTRIBUTES:
                    raise Forbidden(f"Property {key} may not be removed.")
                if key not in props:
                    raise Conflict(f"Property {key} does not exist.")
                del props[key]
                continue
            if op == "add4" and (key in schemas.BASE_ATTRIBUTES or key in props):
                raise Conflict(f"Property {key} already present.")
            if key in schemas.WRITABLE:
                values[key] = _validate_value(key, value)
            elif op == "replace" and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            else:
                props[key] = _validate_value(key, value)
        _check_property_quota(props)
        for key in ("disk_format", "container_format"):
            if values[key] != getattr(img, key) and img.status != "queued":
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        if values["owner"] != img.owner and not admin:
            raise Forbidden("Attribute 'owner' may only be changed by an administrator.")
        if values["visibility"] != img.visibility:
            _check_visibility_policy(svc, ctx, values["visibility"], tgt)
        for key, value in values.items():
            if getattr(img, key) != value:
                setattr(img, key, value)
        if props != img.properties:
            img.properties = props
        img.updated_at = utcnow()
        s.flush()
        return image_view(img)


def add_tag(svc: ImageService, ctx: AuthContext, image_id: str, tag: str) -> None:
    _validate_tag(tag)
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "modify_image", ctx, tgt)
        tags = list(img.tags or [])
        if tag in tags:
            return
        if len(tags) + 1 > schemas.IMAGE_TAG_QUOTA:
            raise PayloadTooLarge(f"Maximum number of tags exceeded: {schemas.IMAGE_TAG_QUOTA}.")
        img.tags = [*tags, tag]
        img.updated_at = utcnow()


def delete_tag(svc: ImageService, ctx: AuthContext, image_id: str, tag: str) -> None:
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "modify_image", ctx, tgt)
        tags = list(img.tags or [])
        if tag not in tags:
            raise NotFound(f"Tag {tag} not found.")
        img.tags = [t for t in tags if t != tag]
        img.updated_at = utcnow()


# --- actions -----------------------------------------------------------------


def deactivate(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "deactivate", ctx, tgt)
        if img.status == "deactivated":
            return
        if img.status != "active":
            raise Forbidden(f"Not allowed to deactivate image in status '{img.status}'")
        img.status = "deactivated"
        img.updated_at = utcnow()


def reactivate(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "reactivate", ctx, tgt)
        if img.status == "active":
            return
        if img.status != "deactivated":
            raise Forbidden(f"Not allowed to reactivate image in status '{img.status}'")
        img.status = "active"
        img.updated_at = utcnow()


# --------------------------------------------------------------------------- list

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
    _authorize(svc, "get_images", ctx, {"project_id": ctx.project_id, "member_id": None, "visibility": None})
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
                    marker, _ = _visible(svc, s, ctx, query.marker)
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


# --------------------------------------------------------------------------- data


@dataclass
class Upload:
    image_id: str
    disk_format: str | None
    limit: int
    limit_message: str
    previous_status: str


def begin_upload(
    svc: ImageService, ctx: AuthContext, image_id: str, content_length: int | None, *, stage: bool = False
) -> Upload:
    """queued -> saving (upload) or uploading (stage); checks policy and quota."""
    new_status = "uploading" if stage else "saving"
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "stage_image" if stage else "upload_image", ctx, tgt)
        if img.status != "queued":
            raise Conflict(f"Image status transition from {img.status} to {new_status} is not allowed")
        if not stage and (img.disk_format is None or img.container_format is None):
            raise BadRequest("Properties disk_format, container_format must be set prior to saving data.")
        limit, message = data_limit(svc, s, img)
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(message)
        img.status = new_status
        img.updated_at = utcnow()
        return Upload(img.id, img.disk_format, limit, message, "queued")


def finish_upload(svc: ImageService, up: Upload, location: str, size: int, checksum: str,
                  os_hash_value: str, virtual_size: int | None) -> None:
    """saving -> active with the data's facts; the data is dropped if the image went away."""
    keep = False
    error: ApiError | None = None
    try:
        with svc.db.write() as s:
            img = s.get(Image, up.image_id)
            if img is None or img.status != "saving":
                raise Gone(
                    f"Image {up.image_id} could not be found after upload. "
                    "The image may have been deleted during the upload."
                )
            # the quota may have been used up by a concurrent upload
            limit, message = data_limit(svc, s, img)
            if size > limit:
                img.status = "queued"
                img.updated_at = utcnow()
                error = PayloadTooLarge(message)
            else:
                img.status = "active"
                img.size = size
                img.virtual_size = virtual_size
                img.checksum = checksum
                img.os_hash_algo = "sha512"
                img.os_hash_value = os_hash_value
                img.location = location
                img.updated_at = utcnow()
                keep = True
    finally:
        if not keep:
            svc.store.delete(location)
    if error is not None:
        raise error


def fail_upload(svc: ImageService, up: Upload, *, stage: bool = False) -> None:
    """Back to queued after a failed or aborted transfer (as Glance restores it)."""
    expected = "uploading" if stage else "saving"
    with svc.db.write() as s:
        img = s.get(Image, up.image_id)
        if img is not None and img.status == expected:
            img.status = "queued"
            img.updated_at = utcnow()


def finish_stage(svc: ImageService, up: Upload, location: str) -> None:
    with svc.db.write() as s:
        img = s.get(Image, up.image_id)
        if img is None or img.status != "uploading":
            svc.staging.delete(location)
            raise Gone(
                f"Image {up.image_id} could not be found after upload. "
                "The image may have been deleted during the upload."
            )
        img.staging = location
        img.updated_at = utcnow()


@dataclass
class Download:
    location: str | None
    size: int
    checksum: str | None


def begin_download(svc: ImageService, ctx: AuthContext, image_id: str) -> Download:
    with svc.db.read() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "download_image", ctx, tgt)
        if img.status == "deactivated" and not is_admin(svc, ctx):
            raise Forbidden("The requested image has been deactivated. Image data download is prohibited.")
        if img.status != "active" and img.status != "deactivated" or not img.location:
            return Download(None, 0, None)
        return Download(img.location, int(img.size or 0), img.checksum)


# --- interoperable import ----------------------------------------------------


def import_info() -> dict[str, Any]:
    return {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": list(schemas.IMPORT_METHODS),
        }
    }


def begin_import(
    svc: ImageService, ctx: AuthContext, image_id: str, body: Any, request_id: str | None = None
) -> tuple[Path, str]:
    """Validate an import request; uploading -> importing. Returns the staged file and the task id."""
    if not isinstance(body, dict) or not isinstance(body.get("method"), dict):
        raise BadRequest("The import request must name a method: {\"method\": {\"name\": ...}}.")
    method = body["method"].get("name")
    if method not in schemas.ALL_IMPORT_METHODS:
        raise BadRequest(f"Unknown import method name '{method}'.")
    if method not in schemas.IMPORT_METHODS:
        raise BadRequest(f"Import method {method} is not enabled at this site.")
    with svc.db.write() as s:
        img, tgt = _visible(svc, s, ctx, image_id)
        _authorize(svc, "import_image", ctx, tgt)
        if img.disk_format is None or img.container_format is None:
            raise Conflict(f"The image {image_id} has no container_format or disk_format, cannot import.")
        if img.status != "uploading" or not img.staging:
            if img.status == "queued":
                raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
            raise Conflict(f"Image status transition from {img.status} to importing is not allowed")
        img.status = "importing"
        now = utcnow()
        img.updated_at = now
        task = ImageTask(
            id=str(uuid.uuid4()), type="api_image_import", status="processing", owner=img.owner,
            image_id=img.id, request_id=request_id, user_id=ctx.user_id,
            input={"image_id": img.id, "import_req": body, "backend": [svc.store.name]},
            result=None, message="", created_at=now, updated_at=now, expires_at=None,
        )
        s.add(task)
        return Path(img.staging[len("file://") :]), task.id


def _finish_task(s: Session, task_id: str | None, status: str, message: str = "") -> None:
    task = s.get(ImageTask, task_id) if task_id else None
    if task is None:
        return
    now = utcnow()
    task.status = status
    task.message = message
    task.result = {"image_id": task.image_id} if status == "success" else None
    task.updated_at = now
    task.expires_at = now + timedelta(hours=48)


def task_view(task: ImageTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "owner": task.owner,
        "input": task.input,
        "result": task.result,
        "message": task.message,
        "image_id": task.image_id,
        "request_id": task.request_id,
        "user_id": task.user_id,
        "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at),
        "expires_at": isotime(task.expires_at),
        "self": f"/v2/tasks/{task.id}",
        "schema": "/v2/schemas/task",
    }


def image_tasks(svc: ImageService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        img, _ = _visible(svc, s, ctx, image_id)
        rows = s.scalars(select(ImageTask).where(ImageTask.image_id == img.id).order_by(ImageTask.created_at))
        return {"tasks": [task_view(t) for t in rows]}


def get_task(svc: ImageService, ctx: AuthContext, task_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        task = s.get(ImageTask, task_id)
        if task is None or (task.owner != ctx.project_id and not is_admin(svc, ctx)):
            raise NotFound(f"Task with the given id {task_id} not found")
        return task_view(task)


def list_tasks(svc: ImageService, ctx: AuthContext) -> dict[str, Any]:
    with svc.db.read() as s:
        stmt = select(ImageTask).order_by(ImageTask.created_at.desc())
        if not is_admin(svc, ctx):
            stmt = stmt.where(ImageTask.owner == ctx.project_id)
        return {"tasks": [task_view(t) for t in s.scalars(stmt)], "first": "/v2/tasks",
                "schema": "/v2/schemas/tasks"}


def create_task(svc: ImageService, ctx: AuthContext, body: Any) -> dict[str, Any]:
    """The legacy tasks API: only ``import`` from a URL exists, and this cloud
    fetches nothing from the network, so every such task is refused."""
    if not isinstance(body, dict) or body.get("type") != "import" or not isinstance(body.get("input"), dict):
        raise BadRequest("Invalid task: 'type' must be 'import' with an 'input' object.")
    source = body["input"].get("import_from")
    raise BadRequest(
        f"Import from {source!r} is not supported: this cloud does not download images; "
        "use the glance-direct import method."
    )


def run_import(svc: ImageService, image_id: str, staged: Path, task_id: str | None = None) -> None:
    """Inspect and hash the staged data, then move it into the store (importing -> active)."""
    from onestack.image.data import DataSink, TooLarge
    from onestack.image.formats import FormatError, Inspector

    with svc.db.read() as s:
        img = s.get(Image, image_id)
        if img is None:
            staged.unlink(missing_ok=True)
            return
        disk_format = img.disk_format
        limit, _ = data_limit(svc, s, img)
    try:
        sink = DataSink(None, Inspector(disk_format), limit)
        with open(staged, "rb") as fh:
            while chunk := fh.read(4 << 20):
                sink.write(chunk)
        got = sink.finish()
        location = svc.store.adopt(image_id, staged)
    except (FormatError, TooLarge, OSError) as exc:
        log.warning("import of image %s failed: %s", image_id, exc)
        staged.unlink(missing_ok=True)
        with svc.db.write() as s:
            img = s.get(Image, image_id)
            if img is not None:
                img.status = "queued"
                img.staging = None
                props = dict(img.properties or {})
                props["os_glance_failed_import"] = "file"
                img.properties = props
                img.updated_at = utcnow()
            _finish_task(s, task_id, "failure", str(exc))
        return
    with svc.db.write() as s:
        img = s.get(Image, image_id)
        if img is None or img.status != "importing":
            svc.store.delete(location)
            _finish_task(s, task_id, "failure", "The image was deleted during the import.")
            return
        _finish_task(s, task_id, "success")
        img.status = "active"
        img.staging = None
        img.size = got.size
        img.virtual_size = got.virtual_size
        img.checksum = got.checksum
        img.os_hash_algo = "sha512"
        img.os_hash_value = got.os_hash_value
        img.location = location
        props = dict(img.properties or {})
        props.pop("os_glance_failed_import", None)
        props["os_glance_importing_to_stores"] = ""
        img.properties = props
        img.updated_at = utcnow()


def recover_interrupted(svc: ImageService) -> None:
    """After a restart: transfers that were running are gone; back to queued."""
    with svc.db.read() as s:
        stuck = s.scalar(select(func.count(Image.id)).where(Image.status.in_(("saving", "importing"))))
    if not stuck:
        return
    with svc.db.write() as s:
        for img in s.scalars(select(Image).where(Image.status.in_(("saving", "importing")))):
            if img.status == "importing" and img.staging and Path(img.staging[len("file://"):]).exists():
                img.status = "uploading"
            else:
                img.status = "queued"
                img.staging = None
            img.updated_at = utcnow()


# --------------------------------------------------------------------------- members


def _shared_image_for_members(svc: ImageService, s: Session, ctx: AuthContext, image_id: str) -> tuple[Image, dict[str, Any]]:
    img, tgt = _visible(svc, s, ctx, image_id)
    if img.visibility != "shared":
        raise Forbidden("Only shared images have members.")
    return img, tgt


def add_member(svc: ImageService, ctx: AuthContext, image_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("member"), str) or not body["member"]:
        raise BadRequest("Member to be added not specified")
    member_id = body["member"]
    if len(member_id) > 255:
        raise BadRequest("Member id is longer than 255 characters.")
    with svc.db.write() as s:
        img, tgt = _shared_image_for_members(svc, s, ctx, image_id)
        _authorize(svc, "add_member", ctx, tgt)
        if s.get(ImageMember, (img.id, member_id)) is not None:
            raise Conflict(f"Member {member_id} already associated with image {image_id}.")
        count = s.scalar(select(func.count()).where(ImageMember.image_id == img.id)) or 0
        if count + 1 > schemas.IMAGE_MEMBER_QUOTA:
            raise PayloadTooLarge(f"Maximum number of image members exceeded: {schemas.IMAGE_MEMBER_QUOTA}.")
        now = utcnow()
        m = ImageMember(image_id=img.id, member=member_id, status="pending", created_at=now, updated_at=now)
        s.add(m)
        s.flush()
        return member_view(m)


def list_members(svc: ImageService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        img, tgt = _shared_image_for_members(svc, s, ctx, image_id)
        _authorize(svc, "get_members", ctx, tgt)
        stmt = select(ImageMember).where(ImageMember.image_id == img.id).order_by(ImageMember.created_at)
        if img.owner != ctx.project_id and not is_admin(svc, ctx):
            stmt = stmt.where(ImageMember.member == ctx.project_id)
        return {"members": [member_view(m) for m in s.scalars(stmt)], "schema": "/v2/schemas/members"}


def get_member(svc: ImageService, ctx: AuthContext, image_id: str, member_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        img, tgt = _shared_image_for_members(svc, s, ctx, image_id)
        m = s.get(ImageMember, (img.id, member_id))
        visible = m is not None and (
            img.owner == ctx.project_id or member_id == ctx.project_id or is_admin(svc, ctx)
        )
        if m is None or not visible or not svc.enforcer.check("get_member", ctx, tgt):
            raise NotFound(f"Member {member_id} not found for image {image_id}.")
        return member_view(m)


def update_member(svc: ImageService, ctx: AuthContext, image_id: str, member_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "status" not in body:
        raise BadRequest("Status not specified")
    status = body["status"]
    if status not in schemas.MEMBER_STATUSES:
        raise BadRequest(f"Invalid status: {status}")
    with svc.db.write() as s:
        img, tgt = _shared_image_for_members(svc, s, ctx, image_id)
        m = s.get(ImageMember, (img.id, member_id))
        if m is None or (img.owner != ctx.project_id and member_id != ctx.project_id and not is_admin(svc, ctx)):
            raise NotFound(f"Member {member_id} not found for image {image_id}.")
        if not svc.enforcer.check("modify_member", ctx, {**tgt, "member_id": member_id}) or (
            member_id != ctx.project_id and not is_admin(svc, ctx)
        ):
            raise Forbidden("You are not permitted to modify 'status' on this image member.")
        m.status = status
        m.updated_at = utcnow()
        s.flush()
        return member_view(m)


def delete_member(svc: ImageService, ctx: AuthContext, image_id: str, member_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = _shared_image_for_members(svc, s, ctx, image_id)
        m = s.get(ImageMember, (img.id, member_id))
        if m is None or (img.owner != ctx.project_id and member_id != ctx.project_id and not is_admin(svc, ctx)):
            raise NotFound(f"Member {member_id} not found for image {image_id}.")
        _authorize(svc, "delete_member", ctx, tgt)
        s.delete(m)


# --------------------------------------------------------------------------- info


def usage(svc: ImageService, ctx: AuthContext) -> dict[str, Any]:
    _authorize(svc, "get_usage", ctx, {"project_id": ctx.project_id})
    with svc.db.read() as s:
        count, used = _project_usage(s, ctx.project_id)
        staging = s.scalar(
            select(func.count(Image.id)).where(Image.owner == ctx.project_id, Image.status.in_(("uploading", "importing")))
        ) or 0
    q = svc.settings.image
    return {
        "usage": {
            "image_size_total": {"limit": q.image_size_total, "usage": used},
            "image_stage_total": {"limit": -1, "usage": 0},
            "image_count_total": {"limit": q.image_count_total, "usage": count},
            "image_count_uploading": {"limit": -1, "usage": int(staging)},
        }
    }


def stores_info(svc: ImageService) -> dict[str, Any]:
    return {"stores": [{"id": svc.store.name, "description": svc.store.description, "default": True}]}


# --------------------------------------------------------------------------- test guest


def _admin_project_id(svc: ImageService) -> str | None:
    try:
        from onestack.identity.models import Project
    except ImportError:  # pragma: no cover
        return None
    with svc.db.read() as s:
        row = s.scalars(
            select(Project.id).where(Project.name == "admin", Project.is_domain.is_(False))
        ).first()
        return str(row) if row else None


def register_test_guest(svc: ImageService) -> str | None:
    """Register the test guest built by ``onestack image build-test`` as a public image once."""
    from onestack.guest import image_path
    from onestack.image.data import DataSink
    from onestack.image.formats import Inspector

    path = image_path(svc.settings.state_dir)
    if not path.is_file():
        return None
    with svc.db.read() as s:
        if s.scalar(select(Image.id).where(Image.name == TEST_GUEST_NAME).limit(1)) is not None:
            return None
    owner = _admin_project_id(svc)
    image_id = str(uuid.uuid4())
    writer = svc.store.writer(image_id)
    sink = DataSink(writer, Inspector("qcow2"))
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(4 << 20):
                sink.write(chunk)
        got = sink.finish()
        location = writer.commit()
    except Exception:
        sink.abort()
        log.exception("could not register the test guest image %s", path)
        return None
    now = utcnow()
    with svc.db.write() as s:
        s.add(
            Image(
                id=image_id, name=TEST_GUEST_NAME, status="active", visibility="public", owner=owner,
                disk_format="qcow2", container_format="bare", size=got.size, virtual_size=got.virtual_size,
                checksum=got.checksum, os_hash_algo="sha512", os_hash_value=got.os_hash_value,
                min_disk=0, min_ram=0, protected=False, os_hidden=False, location=location, staging=None,
                tags=[], properties={"hw_rng_model": "virtio", "onestack_test_guest": "true"},
                created_at=now, updated_at=now,
            )
        )
    log.info("registered the test guest image %s as %s", path, image_id)
    return image_id
