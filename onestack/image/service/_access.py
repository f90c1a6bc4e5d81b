"""Who may see and touch an image: loading, visibility (404 as Glance) and policy checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import (
    Forbidden,
    NotFound,
)
from onestack.image.models import Image, ImageMember

if TYPE_CHECKING:
    from onestack.image.core import ImageService



UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


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


def load_image(s: Session, image_id: str) -> Image:
    img = s.get(Image, image_id) if UUID_RE.match(image_id or "") else None
    if img is None:
        raise NotFound(f"No image found with ID {image_id}")
    return img


def visible_image(svc: ImageService, s: Session, ctx: AuthContext, image_id: str) -> tuple[Image, dict[str, Any]]:
    """The image if the caller may see it (get_image), else 404 as Glance."""
    img = load_image(s, image_id)
    tgt = target(s, img, ctx)
    if not svc.enforcer.check("get_image", ctx, tgt):
        raise NotFound(f"No image found with ID {image_id}")
    return img, tgt


def authorize(svc: ImageService, rule: str, ctx: AuthContext, tgt: Mapping[str, Any]) -> None:
    if not svc.enforcer.check(rule, ctx, dict(tgt)):
        raise Forbidden(f"You are not authorized to complete {rule} action.")
