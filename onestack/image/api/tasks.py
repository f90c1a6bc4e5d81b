"""``/v2/tasks`` and ``/v2/images/{id}/tasks``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.web import json_response, read_json, run
from onestack.image.api._common import IMG, image_service
from onestack.image.service import tasks


async def image_tasks(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(tasks.image_tasks, image_service(request), ctx, request.path_params["image_id"]))


async def list_tasks(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(tasks.list_tasks, image_service(request), ctx))


async def show_task(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(tasks.get_task, image_service(request), ctx, request.path_params["task_id"]))


async def create_task(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    return json_response(await run(tasks.create_task, image_service(request), ctx, body), status=201)


routes = [
    Route(IMG + "/tasks", image_tasks, methods=["GET"]),
    Route("/v2/tasks", list_tasks, methods=["GET"]),
    Route("/v2/tasks", create_task, methods=["POST"]),
    Route("/v2/tasks/{task_id}", show_task, methods=["GET"]),
]
