"""Networking HTTP API: version discovery and extensions, the standard
collections (generated from one table), member actions and sub-resources."""

from __future__ import annotations

from starlette.routing import BaseRoute


def all_routes() -> list[BaseRoute]:
    from onestack.network.api import actions, misc, resources

    return [*misc.routes, *resources.routes, *actions.routes]
