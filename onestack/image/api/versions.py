"""Version discovery of the Image API (``/``, ``/versions``, ``/v2``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import json_response
from onestack.image.api._common import image_service

CURRENT = 16  # v2.16


def _versions(request: Request) -> dict[str, Any]:
    href = image_service(request).public_url + "/v2/"
    versions = []
    for minor in range(CURRENT, -1, -1):
        versions.append(
            {
                "id": f"v2.{minor}",
                "status": "CURRENT" if minor == CURRENT else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
        )
    return {"versions": versions}


async def versions_multiple(request: Request) -> Response:
    return json_response(_versions(request), status=300)


async def versions_list(request: Request) -> Response:
    return json_response(_versions(request))


routes = [
    Route("/", versions_multiple, methods=["GET", "HEAD"]),
    Route("/versions", versions_list, methods=["GET", "HEAD"]),
    Route("/v2", versions_multiple, methods=["GET", "HEAD"]),
    Route("/v2/", versions_multiple, methods=["GET", "HEAD"]),
]
