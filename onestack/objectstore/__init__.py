"""Object Storage (Swift v1) under ``/object-store``: proxy, ring, storage servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.objectstore.app import ObjectStoreApp


def create(cloud: Cloud) -> ObjectStoreApp:
    from onestack.objectstore.app import ObjectStoreApp

    return ObjectStoreApp(cloud)
