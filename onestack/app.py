"""Assembles the cloud: settings, database, services, and the one ASGI app.

Each service package exposes ``create(cloud) -> Service``. A service owns a
path prefix (``/identity``, ``/image`` ...), an ASGI sub-app, the catalog
entry that points at it, and optional start/stop hooks (agents, caches).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from onestack import __version__
from onestack.common.auth import CachingValidator, TokenValidator
from onestack.common.db import Database
from onestack.common.requestid import RequestIdMiddleware
from onestack.common.web import json_response
from onestack.config import Settings

log = logging.getLogger("onestack")

# The services of the all-in-one cloud, in start order (identity first).
SERVICE_MODULES = ("onestack.identity", "onestack.image")


@dataclass(frozen=True)
class CatalogEntry:
    service_type: str  # "identity", "image", "compute" ...
    name: str  # "keystone", "glance", "nova" ...
    path: str  # URL path of the endpoint, e.g. "/identity" or "/compute/v2.1"
    description: str = ""


class Service(Protocol):
    name: str
    prefix: str  # mount point, e.g. "/identity"
    catalog: list[CatalogEntry]

    def asgi(self) -> ASGIApp: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Cloud:
    """Everything the running process shares: settings, database, services."""

    settings: Settings
    db: Database
    services: dict[str, Any] = field(default_factory=dict)
    # Identity's validator (uncached) and the cached one other services use.
    validator: TokenValidator | None = None
    cached_validator: CachingValidator | None = None

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def service(self, name: str) -> Any:
        return self.services[name]

    def catalog(self) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        for svc in self.services.values():
            entries.extend(svc.catalog)
        return entries

    def set_validator(self, validator: TokenValidator) -> None:
        self.validator = validator
        self.cached_validator = CachingValidator(validator, ttl=self.settings.identity.token_cache_seconds)


def build_cloud(settings: Settings, modules: tuple[str, ...] = SERVICE_MODULES) -> Cloud:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    cloud = Cloud(settings=settings, db=Database(settings.db_url))
    for module_name in modules:
        module = importlib.import_module(module_name)
        svc = module.create(cloud)
        cloud.services[svc.name] = svc
    return cloud


class _BarePrefix:
    """Serves a mount's bare prefix (``/identity``) as the sub-app's ``/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sub = dict(scope)
        sub["root_path"] = scope.get("root_path", "") + scope["path"]
        sub["path"] = scope["path"] + "/"
        await self.app(sub, receive, send)


def prepare(cloud: Cloud) -> None:
    """Upgrade the schema, then let each service set itself up (bootstrap)."""
    from onestack.common import migrate

    migrate.upgrade(cloud.db)
    for svc in cloud.services.values():
        hook = getattr(svc, "prepare", None)
        if hook is not None:
            hook()


def build_app(cloud: Cloud) -> ASGIApp:
    async def root(request: Request) -> Response:
        base = cloud.settings.base_url
        return json_response(
            {
                "name": "onestack",
                "version": __version__,
                "services": [
                    {"type": e.service_type, "name": e.name, "url": base + e.path}
                    for e in cloud.catalog()
                ],
            }
        )

    routes: list[Any] = [Route("/", root)]
    for svc in cloud.services.values():
        sub = svc.asgi()
        # "/identity" itself (no trailing slash) answers without a redirect
        routes.append(Route(svc.prefix, endpoint=_BarePrefix(sub)))
        routes.append(Mount(svc.prefix, app=sub))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        started: list[Any] = []
        try:
            for svc in cloud.services.values():
                await svc.start()
                started.append(svc)
            yield
        finally:
            for svc in reversed(started):
                await svc.stop()
            cloud.db.dispose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.cloud = cloud
    return RequestIdMiddleware(app)
