"""The Image service as the cloud mounts it: the service object plus its HTTP
application and its life cycle.

``onestack.image.create(cloud)`` returns an :class:`ImageApp`: the
:class:`~onestack.image.core.ImageService` every image service function
takes, with what only the top of the image layers may do: build the ASGI app
from the API routes, recover after a restart, wait for imports on stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.image.core import ImageService

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from onestack.common.tasks.worker import TaskContext


class ImageApp(ImageService):
    def asgi(self) -> ASGIApp:
        from onestack.common.web import glance_error, service_app
        from onestack.image.api import routes

        return service_app(
            routes,
            glance_error,
            state={"image": self, "validator": self.cloud.cached_validator, "service_type": "image",
                   "auth_uri": self.settings.base_url + "/identity"},
        )

    def handle_tasks(self) -> None:
        """Imports run as ``image.import`` tasks in this process's worker."""
        from onestack.image.service import import_task

        self.cloud.handle_tasks(import_task.KIND, self._run_import, import_task.rule(self))

    def _run_import(self, ctx: TaskContext) -> dict[str, Any]:
        from onestack.image.service import import_task

        return import_task.run(self, ctx)

    def prepare(self) -> None:
        """Runs before serving (schema already upgraded): left-overs of a crash."""
        from onestack.image.service import guest, imports

        self.file_store.sweep()
        self.staging.sweep()
        imports.recover_interrupted(self)
        guest.register_test_guest(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
