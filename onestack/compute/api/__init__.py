"""Compute v2.1 HTTP API: parse, call the service, serialize (Nova's wire format).

One module per area; each defines ``routes``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from onestack.compute.api import (
    actions,
    aggregates,
    consoles_proxy,
    flavors,
    groups,
    hosts,
    keypairs,
    legacy,
    metadata,
    migrations,
    proxies,
    quotas,
    server_data,
    server_network,
    servers,
    usage,
    versions,
    zones,
)

routes: list[BaseRoute] = [
    *versions.routes,
    *metadata.routes,
    *flavors.routes,
    *keypairs.routes,
    *quotas.routes,
    *servers.routes,
    *actions.routes,
    *aggregates.routes,
    *consoles_proxy.routes,
    *server_data.routes,
    *server_network.routes,
    *groups.routes,
    *hosts.routes,
    *legacy.routes,
    *migrations.routes,
    *proxies.routes,
    *usage.routes,
    *zones.routes,
]
