"""Keystone v3 users: /v3/users, /v3/users/{id}/projects, /v3/users/{id}/groups.

(``POST /v3/users/{id}/password``, the self-service change, lives with auth.)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity.api._resources import (
    call,
    call_with_object,
    caller,
    identity_of,
    linked,
    query,
)
from onestack.identity.service import users as svc
from onestack.identity.wire import collection


async def list_users(request: Request) -> Response:
    items = await call(request, svc.list_users, query(request))
    return json_response(collection(request, "users", [linked(request, "users", u) for u in items]))


async def create_user(request: Request) -> Response:
    item = await call_with_object(request, "user", svc.create_user)
    return json_response({"user": linked(request, "users", item)}, status=201)


async def get_user(request: Request) -> Response:
    item = await call(request, svc.get_user, request.path_params["user_id"])
    return json_response({"user": linked(request, "users", item)})


async def update_user(request: Request) -> Response:
    item = await call_with_object(request, "user", svc.update_user, request.path_params["user_id"])
    return json_response({"user": linked(request, "users", item)})


async def delete_user(request: Request) -> Response:
    await call(request, svc.delete_user, request.path_params["user_id"])
    return empty(204)


async def user_projects(request: Request) -> Response:
    ctx = await caller(request)
    items = await run(
        svc.list_user_projects, identity_of(request), ctx, request.path_params["user_id"], query(request)
    )
    return json_response(collection(request, "projects", [linked(request, "projects", p) for p in items]))


async def user_groups(request: Request) -> Response:
    ctx = await caller(request)
    items = await run(
        svc.list_user_groups, identity_of(request), ctx, request.path_params["user_id"], query(request)
    )
    return json_response(collection(request, "groups", [linked(request, "groups", g) for g in items]))


routes = [
    Route("/v3/users", list_users, methods=["GET"]),
    Route("/v3/users", create_user, methods=["POST"]),
    Route("/v3/users/{user_id}", get_user, methods=["GET"]),
    Route("/v3/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/v3/users/{user_id}", delete_user, methods=["DELETE"]),
    Route("/v3/users/{user_id}/projects", user_projects, methods=["GET"]),
    Route("/v3/users/{user_id}/groups", user_groups, methods=["GET"]),
]
