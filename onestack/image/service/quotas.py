"""The per-project image quotas, on ``common.quota``: image count and bytes stored.

Limits are ``[image] image_count_total`` and ``image_size_total`` (-1:
unlimited), overridden by a project's own ``quota_limit`` rows; every image a
project owns counts, whatever its status (as Glance counts them). Messages are
Glance's (oslo.limit's words), with status 413.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import PayloadTooLarge
from onestack.common.quota import OverQuota, Quotas, Resource
from onestack.image.models import Image

if TYPE_CHECKING:
    from onestack.image.core import ImageService

IMAGE_COUNT = "image_count_total"
IMAGE_SIZE = "image_size_total"


def count_images(s: Session, project_id: str | None) -> int:
    return int(s.scalar(select(func.count(Image.id)).where(Image.owner == project_id)) or 0)


def bytes_stored(s: Session, project_id: str | None) -> int:
    return int(s.scalar(select(func.coalesce(func.sum(Image.size), 0)).where(Image.owner == project_id)) or 0)


def quotas(svc: ImageService) -> Quotas:
    settings = svc.settings.image
    return Quotas("image", [
        Resource(IMAGE_COUNT, count_images, settings.image_count_total),
        Resource(IMAGE_SIZE, bytes_stored, settings.image_size_total),
    ])


def check_count_quota(svc: ImageService, s: Session, project_id: str | None) -> None:
    """One more image for the project (in the write transaction that adds it)."""
    try:
        quotas(svc).check(s, project_id, {IMAGE_COUNT: 1})
    except OverQuota as exc:
        over = exc.overs[0]
        raise PayloadTooLarge(
            f"Project {project_id} is over a limit for [Resource {IMAGE_COUNT} is over limit of "
            f"{over.limit} due to current usage {over.in_use} and delta {over.requested}]"
        ) from None


def data_limit(svc: ImageService, s: Session, img: Image, *, lock: bool = True) -> tuple[int, str]:
    """Bytes this image's data may have, and what to say when it has more.

    In a write transaction (``lock``) the answer holds until it commits, so
    two uploads finishing together cannot both use the last bytes.
    """
    cap = svc.settings.image.image_size_cap
    limit, message = cap, f"Image exceeds the maximum image size of {cap} bytes."
    q = quotas(svc)
    remaining = q.headroom(s, img.owner, IMAGE_SIZE, lock=lock)
    if remaining is not None:
        remaining += img.size or 0  # its own data does not count against itself
        if remaining < limit:
            limit = remaining
            total = q.limits(s, img.owner)[IMAGE_SIZE]
            message = (
                f"Project {img.owner} is over a limit for [Resource {IMAGE_SIZE} is over limit of "
                f"{total} bytes: {remaining} bytes remaining]"
            )
    return limit, message
