"""``/os-availability-zone`` and its ``/detail``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import json_response, run
from onestack.compute.api._common import call
from onestack.compute.service import zones


async def list_zones(request: Request) -> Response:
    c = await call(request)
    return json_response({"availabilityZoneInfo": await run(zones.list_zones, c.svc, c.ctx)})


async def detail(request: Request) -> Response:
    c = await call(request)
    return json_response({"availabilityZoneInfo": await run(zones.detail_zones, c.svc, c.ctx)})


routes = [
    Route("/v2.1/os-availability-zone", list_zones, methods=["GET"]),
    Route("/v2.1/os-availability-zone/detail", detail, methods=["GET"]),
]
