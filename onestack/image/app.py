"""The Image service as the cloud mounts it: the service object plus its HTTP
application and its life cycle.

``onestack.image.create(cloud)`` returns an :class:`ImageApp`: the
:class:`~onestack.image.core.ImageService` every image service function
takes, with what only the top of the image layers may do: build the ASGI app
from the API routes, run its imports (the ``image.import`` durable task) in
the cloud's worker, reset the transfers whose owning process is gone (at
start, and every ``[hosts] service_down_time`` while it runs).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from onestack.image.core import ImageService

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from onestack.common.tasks.worker import TaskContext

log = logging.getLogger(__name__)


class ImageApp(ImageService):
    _recovery: asyncio.Task[None] | None = None

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
        self._recovery = asyncio.create_task(self._recover_periodically(), name="image-recovery")

    async def stop(self) -> None:
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)

    async def _recover_periodically(self) -> None:
        """Uploads of a process that died while this one runs (another API
        replica) are reset once its heartbeat is older than the down time."""
        from onestack.image.service import imports

        interval = max(self.settings.hosts.service_down_time, 1.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(imports.recover_interrupted, self)
            except Exception as exc:  # the database is away: next time
                log.warning("recovering interrupted uploads failed: %s", exc)
