"""``/v2/images``: create, list, show, update, delete, tags and actions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.errors import (
    NotFound,
    UnsupportedMediaType,
)
from onestack.common.web import empty, json_response, read_json, run
from onestack.image import schemas
from onestack.image.api._common import IMG, image_service
from onestack.image.service import images, listing


async def create_image(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    svc = image_service(request)
    image = await run(images.create_image, svc, ctx, body)
    headers = {
        "Location": f"{svc.public_url}/v2/images/{image['id']}",
        # how clients learn that interoperable import is offered (as Glance says it)
        "OpenStack-image-import-methods": ",".join(schemas.IMPORT_METHODS),
    }
    return json_response(image, status=201, headers=headers)


async def list_images(request: Request) -> Response:
    ctx = await authenticate(request)
    params = list(request.query_params.multi_items())
    return json_response(await run(listing.list_images, image_service(request), ctx, params))


async def show_image(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(images.get_image, image_service(request), ctx, request.path_params["image_id"]))


async def update_image(request: Request) -> Response:
    ctx = await authenticate(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in images.PATCH_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type: {ctype or 'none'}. Use one of: "
            + ", ".join(images.PATCH_CONTENT_TYPES),
            headers={"Accept-Patch": ", ".join(images.PATCH_CONTENT_TYPES)},
        )
    body = await read_json(request, content_types=images.PATCH_CONTENT_TYPES)
    changes = images.parse_changes(body, v21=ctype == images.PATCH_CONTENT_TYPES[0])
    image = await run(images.update_image, image_service(request), ctx, request.path_params["image_id"], changes)
    return json_response(image)


async def delete_image(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(images.delete_image, image_service(request), ctx, request.path_params["image_id"])
    return empty(204)


async def add_tag(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(images.add_tag, image_service(request), ctx, p["image_id"], p["tag"])
    return empty(204)


async def delete_tag(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(images.delete_tag, image_service(request), ctx, p["image_id"], p["tag"])
    return empty(204)


async def deactivate(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(images.deactivate, image_service(request), ctx, request.path_params["image_id"])
    return empty(204)


async def reactivate(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(images.reactivate, image_service(request), ctx, request.path_params["image_id"])
    return empty(204)


async def no_image_id(request: Request) -> Response:
    await authenticate(request)
    raise NotFound("No image found with ID ''")


routes = [
    Route("/v2/images", list_images, methods=["GET"]),
    Route("/v2/images", create_image, methods=["POST"]),
    Route("/v2/images/", no_image_id, methods=["GET", "PATCH", "DELETE", "PUT", "POST"]),
    Route(IMG, show_image, methods=["GET"]),
    Route(IMG, update_image, methods=["PATCH"]),
    Route(IMG, delete_image, methods=["DELETE"]),
    Route(IMG + "/actions/deactivate", deactivate, methods=["POST"]),
    Route(IMG + "/actions/reactivate", reactivate, methods=["POST"]),
    Route(IMG + "/tags/{tag}", add_tag, methods=["PUT"]),
    Route(IMG + "/tags/{tag}", delete_tag, methods=["DELETE"]),
]
