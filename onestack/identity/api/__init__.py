"""Identity HTTP API: every module in this package that defines ``routes``
contributes them (one module per area: auth, users, projects, trusts ...)."""

from __future__ import annotations

import importlib
import pkgutil

from starlette.routing import BaseRoute


def all_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        routes.extend(getattr(module, "routes", []))
    return routes
