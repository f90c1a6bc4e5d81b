"""The Image service object: what the image service functions share.

Settings, the database, the stores (images and staging) and the policy
enforcer. (Imports are durable tasks: ``service/import_task``.)
Service logic lives in ``image/service/`` as functions taking this object
first; the HTTP API and the ASGI wiring (``image/app.py``) sit above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onestack.common.cloud import CatalogEntry
from onestack.image.stores import FileStore, Store

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.common.policy import Enforcer



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
        self._enforcer: Enforcer | None = None

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
    def enforcer(self) -> Enforcer:
        if self._enforcer is None:
            from onestack.common.policy import Enforcer, override_path
            from onestack.image.policies import DEFAULTS, metadef_defaults, scope_types

            rules = {**DEFAULTS, **metadef_defaults()}
            self._enforcer = Enforcer(
                rules, override_path(self.settings, self.name),
                scope_types=scope_types(rules), enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer
