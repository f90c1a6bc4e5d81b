"""Keystone v3 groups and membership: /v3/groups, /v3/groups/{g}/users[/{u}]."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response
from onestack.identity.api._resources import (
    call,
    call_with_object,
    linked,
    query,
)
from onestack.identity.service import groups as svc
from onestack.identity.wire import collection


async def list_groups(request: Request) -> Response:
    items = await call(request, svc.list_groups, query(request))
    return json_response(collection(request, "groups", [linked(request, "groups", g) for g in items]))


async def create_group(request: Request) -> Response:
    item = await call_with_object(request, "group", svc.create_group)
    return json_response({"group": linked(request, "groups", item)}, status=201)


async def get_group(request: Request) -> Response:
    item = await call(request, svc.get_group, request.path_params["group_id"])
    return json_response({"group": linked(request, "groups", item)})


async def update_group(request: Request) -> Response:
    item = await call_with_object(request, "group", svc.update_group, request.path_params["group_id"])
    return json_response({"group": linked(request, "groups", item)})


async def delete_group(request: Request) -> Response:
    await call(request, svc.delete_group, request.path_params["group_id"])
    return empty(204)


async def group_users(request: Request) -> Response:
    items = await call(request, svc.list_users, request.path_params["group_id"], query(request))
    return json_response(collection(request, "users", [linked(request, "users", u) for u in items]))


async def add_member(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.add_user, p["group_id"], p["user_id"])
    return empty(204)


async def check_member(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.check_user, p["group_id"], p["user_id"])
    return empty(204)


async def remove_member(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.remove_user, p["group_id"], p["user_id"])
    return empty(204)


routes = [
    Route("/v3/groups", list_groups, methods=["GET"]),
    Route("/v3/groups", create_group, methods=["POST"]),
    Route("/v3/groups/{group_id}", get_group, methods=["GET"]),
    Route("/v3/groups/{group_id}", update_group, methods=["PATCH"]),
    Route("/v3/groups/{group_id}", delete_group, methods=["DELETE"]),
    Route("/v3/groups/{group_id}/users", group_users, methods=["GET"]),
    Route("/v3/groups/{group_id}/users/{user_id}", check_member, methods=["GET", "HEAD"]),
    Route("/v3/groups/{group_id}/users/{user_id}", add_member, methods=["PUT"]),
    Route("/v3/groups/{group_id}/users/{user_id}", remove_member, methods=["DELETE"]),
]
