"""Image members: sharing a ``shared`` image with other projects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.db import lock
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
from onestack.image.service._access import authorize, is_admin, visible_image
from onestack.image.views import member_view

if TYPE_CHECKING:
    from onestack.image.core import ImageService



def _shared_image_for_members(svc: ImageService, s: Session, ctx: AuthContext, image_id: str) -> tuple[Image, dict[str, Any]]:
    img, tgt = visible_image(svc, s, ctx, image_id)
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
        authorize(svc, "add_member", ctx, tgt)
        if s.get(ImageMember, (img.id, member_id)) is not None:
            raise Conflict(f"Member {member_id} already associated with image {image_id}.")
        lock(s, "image-members", img.id)  # the count below must not race another add
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
        authorize(svc, "get_members", ctx, tgt)
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
        authorize(svc, "delete_member", ctx, tgt)
        s.delete(m)
