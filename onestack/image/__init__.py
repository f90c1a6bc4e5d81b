"""Image service (Glance v2) under ``/image``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.app import Cloud
    from onestack.image.core import ImageService


def create(cloud: Cloud) -> ImageService:
    from onestack.image.core import ImageService

    return ImageService(cloud)
