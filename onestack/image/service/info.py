"""``/v2/info/*``: import methods, stores, the caller's quota usage."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from onestack.common.auth import AuthContext
from onestack.image import schemas
from onestack.image.models import Image
from onestack.image.service._access import authorize
from onestack.image.service.quotas import project_usage

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


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
        count, used = project_usage(s, ctx.project_id)
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
