"""The Image service object: sub-app, store, policy enforcer, background imports."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from onestack.app import CatalogEntry
from onestack.common.web import glance_error, service_app
from onestack.image.stores import FileStore, Store

if TYPE_CHECKING:
    from onestack.app import Cloud

log = logging.getLogger(__name__)


class ImageService:
    name = "image"
    prefix = "/image"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.db = cloud.db
        self.catalog = [CatalogEntry("image", "glance", "/image", "Image (Glance v2)")]
        self.data_dir = cloud.state_dir / "images"
        self._store: FileStore | None = None
        self._staging: FileStore | None = None
        self._enforcer: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def public_url(self) -> str:
        return self.settings.base_url + self.prefix

    @property
    def store(self) -> Store:
        return self.file_store

    @property
    def file_store(self) -> FileStore:
        if self._store is None:
            self._store = FileStore(self.data_dir)
        return self._store

    @property
    def staging(self) -> FileStore:
        if self._staging is None:
            self._staging = FileStore(self.data_dir / "staging")
        return self._staging

    @property
    def enforcer(self) -> Any:
        if self._enforcer is None:
            from onestack.common.policy import Enforcer, override_path
            from onestack.image.metadefs import policy_defaults
            from onestack.image.policies import DEFAULTS, scope_types

            rules = {**DEFAULTS, **policy_defaults()}
            self._enforcer = Enforcer(
                rules, override_path(self.settings, self.name),
                scope_types=scope_types(rules), enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer

    def spawn(self, coro: Any) -> None:
        """Run a background job (an import) the service waits for on stop."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- Service protocol -----------------------------------------------------

    def asgi(self) -> ASGIApp:
        from onestack.image.api import routes

        return service_app(
            routes,
            glance_error,
            state={"image": self, "validator": self.cloud.cached_validator, "service_type": "image",
                   "auth_uri": self.settings.base_url + "/identity"},
        )

    def prepare(self) -> None:
        from onestack.image import service

        self.file_store.sweep()
        self.staging.sweep()
        service.recover_interrupted(self)
        service.register_test_guest(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
