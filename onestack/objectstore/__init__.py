"""Object Storage (Swift v1) under ``/object-store``: proxy, ring, storage servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.app import Cloud
    from onestack.objectstore.core import ObjectStoreService


def create(cloud: Cloud) -> ObjectStoreService:
    from onestack.objectstore.core import ObjectStoreService

    return ObjectStoreService(cloud)
