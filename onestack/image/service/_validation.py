"""Checks of image attributes and properties against Glance's image schema and limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
)
from onestack.image import schemas
from onestack.image.service._access import authorize

if TYPE_CHECKING:
    from onestack.image.core import ImageService



def check_attribute_names(keys: Iterable[str]) -> None:
    for key in keys:
        if key in schemas.READ_ONLY:
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key in schemas.RESERVED or key.startswith("os_glance"):
            raise Forbidden(f"Attribute '{key}' is reserved.")


DB_INT_MAX = 2**31 - 1


def validate_value(key: str, value: Any) -> Any:
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
            validate_tag(tag)
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


def validate_tag(tag: Any) -> None:
    if not isinstance(tag, str) or not tag or len(tag) > schemas.TAG_MAX:
        raise BadRequest(f"Invalid tag {tag!r}: tags are strings of 1 to {schemas.TAG_MAX} characters.")


def check_property_quota(props: Mapping[str, Any]) -> None:
    if len(props) > schemas.IMAGE_PROPERTY_QUOTA:
        raise PayloadTooLarge(
            f"Maximum number of properties exceeded: {len(props)} > {schemas.IMAGE_PROPERTY_QUOTA}."
        )


def check_visibility_policy(svc: ImageService, ctx: AuthContext, visibility: str, tgt: dict[str, Any]) -> None:
    if visibility == "public":
        authorize(svc, "publicize_image", ctx, tgt)
    elif visibility == "community":
        authorize(svc, "communitize_image", ctx, tgt)
