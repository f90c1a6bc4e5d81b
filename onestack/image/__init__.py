"""Image service (Glance v2) under ``/image``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.image.app import ImageApp


def create(cloud: Cloud) -> ImageApp:
    from onestack.image.app import ImageApp

    app = ImageApp(cloud)
    app.handle_tasks()
    return app
