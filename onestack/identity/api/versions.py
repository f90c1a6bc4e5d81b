"""Version discovery at /identity and /identity/v3."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import json_response

UPDATED = "2024-01-01T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def _v3(base: str) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": MEDIA_TYPES,
    }


def _base(request: Request) -> str:
    return request.app.state.identity.public_url


async def versions(request: Request) -> Response:
    return json_response({"versions": {"values": [_v3(_base(request))]}}, status=300)


async def v3(request: Request) -> Response:
    return json_response({"version": _v3(_base(request))})


routes = [
    Route("/", versions, methods=["GET", "HEAD"]),
    Route("/v3", v3, methods=["GET", "HEAD"]),
    Route("/v3/", v3, methods=["GET", "HEAD"]),
]
