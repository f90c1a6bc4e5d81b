"""Images: create, show, update (JSON patch), delete, tags, deactivate/reactivate.

Functions take the ``ImageService`` first and the caller's ``AuthContext``;
they raise ``ApiError`` subclasses, which the API renders in Glance's shape.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
)
from onestack.common.ids import utcnow
from onestack.image import schemas
from onestack.image.models import Image, ImageMember
from onestack.image.service._access import UUID_RE, authorize, is_admin, visible_image
from onestack.image.service._validation import (
    check_attribute_names,
    check_property_quota,
    check_visibility_policy,
    validate_tag,
    validate_value,
)
from onestack.image.service.quotas import check_count_quota
from onestack.image.views import image_view

if TYPE_CHECKING:
    from onestack.image.core import ImageService



def create_image(svc: ImageService, ctx: AuthContext, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Image body must be a JSON object.")
    body = dict(body)
    image_id = body.pop("id", None)
    check_attribute_names(body)
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
            values[key] = validate_value(key, value)
        else:
            props[key] = validate_value(key, value)
    check_property_quota(props)

    admin = is_admin(svc, ctx)
    if "owner" in body and body["owner"] != ctx.project_id and not admin:
        raise Forbidden(f"You are not permitted to create images owned by '{body['owner']}'.")
    tgt = {"project_id": values["owner"], "member_id": None, "visibility": values["visibility"]}
    authorize(svc, "add_image", ctx, {"project_id": ctx.project_id if not admin else values["owner"],
                                        "member_id": None, "visibility": values["visibility"]})
    check_visibility_policy(svc, ctx, values["visibility"], tgt)

    now = utcnow()
    with svc.db.write() as s:
        if s.get(Image, image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        check_count_quota(svc, s, values["owner"])
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
        img, _ = visible_image(svc, s, ctx, image_id)
        return image_view(img)


def delete_image(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "delete_image", ctx, tgt)
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
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "modify_image", ctx, tgt)
        admin = is_admin(svc, ctx)
        values = {k: getattr(img, k) for k in schemas.WRITABLE}
        values["tags"] = list(img.tags or [])
        props = dict(img.properties or {})
        for op, key, value in changes:
            check_attribute_names([key])
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
                values[key] = validate_value(key, value)
            elif op == "replace" and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            else:
                props[key] = validate_value(key, value)
        check_property_quota(props)
        for key in ("disk_format", "container_format"):
            if values[key] != getattr(img, key) and img.status != "queued":
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        if values["owner"] != img.owner and not admin:
            raise Forbidden("Attribute 'owner' may only be changed by an administrator.")
        if values["visibility"] != img.visibility:
            check_visibility_policy(svc, ctx, values["visibility"], tgt)
        for key, value in values.items():
            if getattr(img, key) != value:
                setattr(img, key, value)
        if props != img.properties:
            img.properties = props
        img.updated_at = utcnow()
        s.flush()
        return image_view(img)


def add_tag(svc: ImageService, ctx: AuthContext, image_id: str, tag: str) -> None:
    validate_tag(tag)
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "modify_image", ctx, tgt)
        tags = list(img.tags or [])
        if tag in tags:
            return
        if len(tags) + 1 > schemas.IMAGE_TAG_QUOTA:
            raise PayloadTooLarge(f"Maximum number of tags exceeded: {schemas.IMAGE_TAG_QUOTA}.")
        img.tags = [*tags, tag]
        img.updated_at = utcnow()


def delete_tag(svc: ImageService, ctx: AuthContext, image_id: str, tag: str) -> None:
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "modify_image", ctx, tgt)
        tags = list(img.tags or [])
        if tag not in tags:
            raise NotFound(f"Tag {tag} not found.")
        img.tags = [t for t in tags if t != tag]
        img.updated_at = utcnow()


def deactivate(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "deactivate", ctx, tgt)
        if img.status == "deactivated":
            return
        if img.status != "active":
            raise Forbidden(f"Not allowed to deactivate image in status '{img.status}'")
        img.status = "deactivated"
        img.updated_at = utcnow()


def reactivate(svc: ImageService, ctx: AuthContext, image_id: str) -> None:
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "reactivate", ctx, tgt)
        if img.status == "active":
            return
        if img.status != "deactivated":
            raise Forbidden(f"Not allowed to reactivate image in status '{img.status}'")
        img.status = "active"
        img.updated_at = utcnow()
