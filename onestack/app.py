"""Assembles the cloud: settings, database, services, and the one ASGI app.

Each service package exposes ``create(cloud) -> Service``. A service owns a
path prefix (``/identity``, ``/image`` ...), an ASGI sub-app, the catalog
entry that points at it, and optional start/stop hooks (agents, caches).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from onestack import __version__
from onestack.common.cloud import CatalogEntry, Cloud, Service
from onestack.common.db import Database
from onestack.common.requestid import RequestIdMiddleware
from onestack.common.web import json_response, keystone_error, service_app
from onestack.config import Settings
from onestack.startup import secure_state_dir

log = logging.getLogger("onestack")

__all__ = ["CatalogEntry", "Cloud", "Service", "build_app", "build_cloud", "prepare", "secure_state_dir"]

# The services of the all-in-one cloud, in start order (identity first).
SERVICE_MODULES = ("onestack.identity", "onestack.image", "onestack.network", "onestack.compute",
                   "onestack.objectstore", "onestack.common.tasks.core")


def build_cloud(settings: Settings, modules: tuple[str, ...] = SERVICE_MODULES) -> Cloud:
    secure_state_dir(settings.state_dir)
    cloud = Cloud(settings=settings, db=Database(settings.db_url))
    for module_name in modules:
        module = importlib.import_module(module_name)
        svc = module.create(cloud)
        cloud.services[svc.name] = svc
    return cloud


def prepare(cloud: Cloud) -> None:
    """Upgrade the schema, then let each service set itself up (bootstrap).

    Under the database's schema lock: processes starting together on one
    PostgreSQL database take turns, so one creates the schema and bootstraps,
    and the others find it done and join (see ``identity/bootstrap``)."""
    from onestack.common import migrate
    from onestack.common.db import retrying

    with cloud.db.schema_lock():
        migrate.upgrade(cloud.db)
        for svc in cloud.services.values():
            hook = getattr(svc, "prepare", None)
            if hook is not None:
                # Other nodes may be serving already: a unit that loses a race runs again.
                retrying(hook)


class Dispatcher:
    """The outer ASGI app: hands each request to the service owning its path prefix.

    A dict lookup on the first path segment instead of a router walk: this
    sits in front of every request the cloud answers. The bare prefix
    (``/identity``) is served as the service's ``/`` without a redirect.
    """

    def __init__(self, cloud: Cloud, root: ASGIApp) -> None:
        self.cloud = cloud
        self.root = root
        self.mounts: dict[str, ASGIApp] = {}
        for svc in cloud.services.values():
            self.mounts[svc.prefix] = svc.asgi()
        self.started: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        slash = path.find("/", 1)
        prefix = path if slash < 0 else path[:slash]
        app = self.mounts.get(prefix)
        if app is None:
            await self.root(scope, receive, send)
            return
        scope = dict(scope)
        scope["root_path"] = scope.get("root_path", "") + prefix
        if slash < 0:
            scope["path"] = path + "/"
        await app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for svc in self.cloud.services.values():
                        await svc.start()
                        self.started.append(svc)
                except Exception as exc:  # report, uvicorn exits
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for svc in reversed(self.started):
                    try:
                        await svc.stop()
                    except Exception:
                        log.exception("stopping %s failed", svc.name)
                self.started.clear()
                self.cloud.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(cloud: Cloud) -> ASGIApp:
    async def root(request: Request) -> Response:
        base = cloud.settings.base_url
        return json_response(
            {
                "name": "onestack",
                "version": __version__,
                "services": [
                    {"type": e.service_type, "name": e.name, "url": e.url_for(base)}
                    for e in cloud.catalog()
                ],
            }
        )

    # Paths no service owns (``/foo``, ``/compute/v2.1`` before Compute exists)
    # get the same JSON errors as a service's own unknown paths.
    root_app = service_app([Route("/", root)], keystone_error)
    root_app.state.cloud = cloud
    return RequestIdMiddleware(Dispatcher(cloud, root_app))
