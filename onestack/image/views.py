"""Glance's wire shapes of images, members and tasks."""

from __future__ import annotations

from typing import Any

from onestack.common.ids import isotime
from onestack.image.models import Image, ImageMember, ImageTask


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
