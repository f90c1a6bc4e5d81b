"""``/v2/info/*``: import methods, stores, the caller's quota usage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from onestack.common.auth import AuthContext
from onestack.image import schemas
from onestack.image.models import Image
from onestack.image.service._access import authorize
from onestack.image.service.quotas import IMAGE_COUNT, IMAGE_SIZE, quotas

if TYPE_CHECKING:
    from onestack.image.core import ImageService



def import_info() -> dict[str, Any]:
    return {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": list(schemas.IMPORT_METHODS),
        }
    }


def usage(svc: ImageService, ctx: AuthContext) -> dict[str, Any]:
    authorize(svc, "get_usage", ctx, {"project_id": ctx.project_id})
    with svc.db.read() as s:
        used = quotas(svc).usage(s, ctx.project_id)
        staging = s.scalar(
            select(func.count(Image.id)).where(Image.owner == ctx.project_id, Image.status.in_(("uploading", "importing")))
        ) or 0
    size, count = used[IMAGE_SIZE], used[IMAGE_COUNT]
    return {
        "usage": {
            IMAGE_SIZE: {"limit": size.limit, "usage": size.in_use},
            "image_stage_total": {"limit": -1, "usage": 0},
            IMAGE_COUNT: {"limit": count.limit, "usage": count.in_use},
            "image_count_uploading": {"limit": -1, "usage": int(staging)},
        }
    }


def stores_info(svc: ImageService) -> dict[str, Any]:
    return {"stores": [{"id": svc.store.name, "description": svc.store.description, "default": True}]}
