"""``/v2/schemas/*`` and ``/v2/info/*``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.errors import (
    NotFound,
)
from onestack.common.web import json_response, run
from onestack.image import schemas
from onestack.image.api._common import image_service
from onestack.image.service import info


async def show_schema(request: Request) -> Response:
    await authenticate(request)
    name = request.path_params["name"]
    if name not in schemas.SCHEMAS:
        raise NotFound("The resource could not be found.")
    return json_response(schemas.SCHEMAS[name])


async def info_import(request: Request) -> Response:
    await authenticate(request)
    return json_response(info.import_info())


async def info_stores(request: Request) -> Response:
    await authenticate(request)
    return json_response(info.stores_info(image_service(request)))


async def info_usage(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(info.usage, image_service(request), ctx))


routes = [
    Route("/v2/schemas/{name}", show_schema, methods=["GET"]),
    Route("/v2/info/import", info_import, methods=["GET"]),
    Route("/v2/info/stores", info_stores, methods=["GET"]),
    Route("/v2/info/usage", info_usage, methods=["GET"]),
]
