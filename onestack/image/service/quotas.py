"""The per-project image quotas: image count and bytes stored."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import (
    PayloadTooLarge,
)
from onestack.image.models import Image

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


def project_usage(s: Session, project_id: str | None) -> tuple[int, int]:
    """(image count, bytes stored) of a project."""
    row = s.execute(
        select(func.count(Image.id), func.coalesce(func.sum(Image.size), 0)).where(Image.owner == project_id)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def check_count_quota(svc: ImageService, s: Session, project_id: str | None) -> None:
    limit = svc.settings.image.image_count_total
    if limit < 0:
        return
    count, _ = project_usage(s, project_id)
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
        _, used = project_usage(s, img.owner)
        used -= img.size or 0
        remaining = max(total - used, 0)
        if remaining < limit:
            limit = remaining
            message = (
                f"Project {img.owner} is over a limit for [Resource image_size_total is over limit of "
                f"{total} bytes: {remaining} bytes remaining]"
            )
    return limit, message
