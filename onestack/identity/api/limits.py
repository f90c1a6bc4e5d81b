"""Unified limits: ``/v3/registered_limits``, ``/v3/limits``, ``/v3/limits/model``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response
from onestack.identity import wire
from onestack.identity.api._resources import call, filters, read_json
from onestack.identity.service import limits as svc

REGISTERED_FILTERS = ("service_id", "region_id", "resource_name")
LIMIT_FILTERS = ("service_id", "region_id", "resource_name", "project_id", "domain_id")




def _linked(request: Request, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"{kind}/{body['id']}")}


async def registered_limits(request: Request) -> Response:
    if request.method == "POST":
        items = await call(request, svc.create_registered_limits, await read_json(request))
        body = {"registered_limits": [_linked(request, "registered_limits", r) for r in items]}
        return json_response(body, status=201)
    items = await call(request, svc.list_registered_limits, filters(request, REGISTERED_FILTERS))
    return json_response(
        wire.collection(request, "registered_limits", [_linked(request, "registered_limits", r) for r in items])
    )


async def registered_limit(request: Request) -> Response:
    limit_id = request.path_params["limit_id"]
    if request.method == "PATCH":
        item = await call(request, svc.update_registered_limit, limit_id, await read_json(request))
        return json_response({"registered_limit": _linked(request, "registered_limits", item)})
    if request.method == "DELETE":
        await call(request, svc.delete_registered_limit, limit_id)
        return empty(204)
    item = await call(request, svc.get_registered_limit, limit_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"registered_limit": _linked(request, "registered_limits", item)})


async def limits(request: Request) -> Response:
    if request.method == "POST":
        items = await call(request, svc.create_limits, await read_json(request))
        return json_response({"limits": [_linked(request, "limits", r) for r in items]}, status=201)
    items = await call(request, svc.list_limits, filters(request, LIMIT_FILTERS))
    return json_response(wire.collection(request, "limits", [_linked(request, "limits", r) for r in items]))


async def limit(request: Request) -> Response:
    limit_id = request.path_params["limit_id"]
    if request.method == "PATCH":
        item = await call(request, svc.update_limit, limit_id, await read_json(request))
        return json_response({"limit": _linked(request, "limits", item)})
    if request.method == "DELETE":
        await call(request, svc.delete_limit, limit_id)
        return empty(204)
    item = await call(request, svc.get_limit, limit_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"limit": _linked(request, "limits", item)})


async def model(request: Request) -> Response:
    body = await call(request, svc.get_model)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"model": body})


routes = [
    Route("/v3/registered_limits", registered_limits, methods=["GET", "HEAD", "POST"]),
    Route("/v3/registered_limits/{limit_id}", registered_limit, methods=["GET", "HEAD", "PATCH", "DELETE"]),
    Route("/v3/limits/model", model, methods=["GET", "HEAD"]),
    Route("/v3/limits", limits, methods=["GET", "HEAD", "POST"]),
    Route("/v3/limits/{limit_id}", limit, methods=["GET", "HEAD", "PATCH", "DELETE"]),
]
