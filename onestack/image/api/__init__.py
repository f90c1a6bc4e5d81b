"""Image v2 HTTP API: parse, call the service, serialize (Glance's wire format).

One module per area; each defines ``routes``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from onestack.image.api import data, images, info, members, metadefs, tasks, versions

routes: list[BaseRoute] = [
    *versions.routes,
    *images.routes,
    *data.routes,
    *tasks.routes,
    *members.routes,
    *info.routes,
    *metadefs.routes,
]
