"""Nova's proxy to Image (``/images``, removed at 2.36; its ``metadata`` to
2.38): Glance's images in Nova's v1-style shape, read and written through
``onestack.image.interface`` for the caller (Glance's policy and visibility
apply). Nova's filters: ``name``, ``status``, ``changes-since``, ``server``,
``type``, ``minRam``, ``minDisk``, ``property-*``; ``limit`` and ``marker``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.common.ids import parse_isotime

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# Glance's own attributes: everything else of an image is a property (metadata).
_BASE = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
         "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size", "min_ram",
         "min_disk", "disk_format", "container_format", "created_at", "updated_at", "tags",
         "self", "file", "schema", "direct_url", "locations", "stores"}
_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "importing": "SAVING",
           "uploading": "SAVING", "deleted": "DELETED", "pending_delete": "DELETED",
           "killed": "ERROR"}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}


def _api() -> Any:
    from onestack.image import interface

    return interface


def properties(image: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in image.items() if k not in _BASE}


def status(image: dict[str, Any]) -> str:
    return _STATUS.get(str(image.get("status")), "UNKNOWN")


def progress(image: dict[str, Any]) -> int:
    return _PROGRESS.get(str(image.get("status")), 0)


def get_image(svc: ComputeService, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    try:
        return dict(_api().get_image(svc.cloud, ctx, image_id))
    except NotFound:
        raise NotFound("Image not found.") from None


def _time(value: Any) -> datetime | None:
    try:
        return parse_isotime(str(value)) if value else None
    except ValueError:
        return None


def list_images(svc: ComputeService, ctx: AuthContext, params: Any) -> list[dict[str, Any]]:
    filters: dict[str, str] = {"sort_key": "created_at", "sort_dir": "desc"}
    if params.get("name"):
        filters["name"] = params["name"]
    if params.get("status"):
        filters["status"] = params["status"].lower()
    if params.get("server"):
        filters["instance_uuid"] = params["server"].rsplit("/", 1)[-1]
    if params.get("type"):
        filters["image_type"] = params["type"]
    for key in params:
        if key.startswith("property-"):
            filters[key[len("property-"):]] = params[key]
    images = _api().list_images(svc.cloud, ctx, filters)
    since = None
    if params.get("changes-since"):
        try:
            since = parse_isotime(params["changes-since"])
        except ValueError:
            raise BadRequest(f"Invalid changes-since value: {params['changes-since']}") \
                from None
    out = []
    for image in images:
        if since is not None:
            updated = _time(image.get("updated_at"))
            if updated is None or updated < since:
                continue
        if params.get("minRam") and int(image.get("min_ram") or 0) < _int(params["minRam"]):
            continue
        if params.get("minDisk") and int(image.get("min_disk") or 0) < _int(params["minDisk"]):
            continue
        out.append(image)
    return out


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid value {value}: must be an integer") from None


def delete_image(svc: ComputeService, ctx: AuthContext, image_id: str) -> None:
    try:
        _api().delete_image(svc.cloud, ctx, image_id)
    except NotFound:
        raise NotFound("Image not found.") from None
    except Forbidden:
        raise Forbidden("You are not allowed to delete the image.") from None


# --- metadata --------------------------------------------------------------------------------


def _check_quota(svc: ComputeService, metadata: dict[str, Any]) -> None:
    limit = svc.conf.quota_metadata_items
    if limit >= 0 and len(metadata) > limit:
        raise Forbidden("Quota exceeded for metadata_items: Requested "
                        f"{len(metadata)}, but already used 0 of {limit} metadata_items")


def set_metadata(svc: ComputeService, ctx: AuthContext, image_id: str,
                 metadata: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    """Merge ``metadata`` into the image's properties (all of them replaced
    with ``replace``); returns the properties after."""
    image = get_image(svc, ctx, image_id)
    current = properties(image)
    wanted = dict(metadata) if replace else {**current, **metadata}
    _check_quota(svc, wanted)
    patch: list[dict[str, Any]] = []
    for key in current:
        if key not in wanted:
            patch.append({"op": "remove", "path": "/" + _escape(key)})
    for key, value in wanted.items():
        if current.get(key) != value:
            op = "replace" if key in current else "add"
            patch.append({"op": op, "path": "/" + _escape(key), "value": value})
    if not patch:
        return current
    updated = _api().update_image(svc.cloud, ctx, image_id, patch)
    return properties(updated)


def delete_metadata_item(svc: ComputeService, ctx: AuthContext, image_id: str, key: str) -> None:
    image = get_image(svc, ctx, image_id)
    if key not in properties(image):
        raise NotFound("Invalid metadata key")
    _api().update_image(svc.cloud, ctx, image_id, [{"op": "remove", "path": "/" + _escape(key)}])


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
