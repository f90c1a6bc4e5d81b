"""``/v2/images/{id}/members``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.web import empty, json_response, read_json, run
from onestack.image.api._common import IMG, image_service
from onestack.image.service import members


async def add_member(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    return json_response(await run(members.add_member, image_service(request), ctx, request.path_params["image_id"], body))


async def list_members(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(members.list_members, image_service(request), ctx, request.path_params["image_id"]))


async def show_member(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    return json_response(await run(members.get_member, image_service(request), ctx, p["image_id"], p["member_id"]))


async def update_member(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    p = request.path_params
    return json_response(
        await run(members.update_member, image_service(request), ctx, p["image_id"], p["member_id"], body)
    )


async def delete_member(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(members.delete_member, image_service(request), ctx, p["image_id"], p["member_id"])
    return empty(204)


routes = [
    Route(IMG + "/members", list_members, methods=["GET"]),
    Route(IMG + "/members", add_member, methods=["POST"]),
    Route(IMG + "/members/{member_id}", show_member, methods=["GET"]),
    Route(IMG + "/members/{member_id}", update_member, methods=["PUT"]),
    Route(IMG + "/members/{member_id}", delete_member, methods=["DELETE"]),
]
