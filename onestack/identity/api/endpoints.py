"""/v3/endpoints: the endpoints of the catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response
from onestack.identity import wire
from onestack.identity.api._resources import (
    call,
    call_with_json,
    filters,
    with_link,
)
from onestack.identity.service import endpoints as svc

_FILTERS = ("interface", "service_id", "region_id")


async def create_endpoint(request: Request) -> Response:
    ref = await call_with_json(request, svc.create_endpoint)
    return json_response({"endpoint": with_link(request, ref, f"endpoints/{ref['id']}")}, 201)


async def list_endpoints(request: Request) -> Response:
    refs = await call(request, svc.list_endpoints, filters(request, _FILTERS))
    items = [with_link(request, r, f"endpoints/{r['id']}") for r in refs]
    return json_response(wire.collection(request, "endpoints", items))


async def get_endpoint(request: Request) -> Response:
    ref = await call(request, svc.get_endpoint, request.path_params["endpoint_id"])
    return json_response({"endpoint": with_link(request, ref, f"endpoints/{ref['id']}")})


async def update_endpoint(request: Request) -> Response:
    ref = await call_with_json(request, svc.update_endpoint, request.path_params["endpoint_id"])
    return json_response({"endpoint": with_link(request, ref, f"endpoints/{ref['id']}")})


async def delete_endpoint(request: Request) -> Response:
    await call(request, svc.delete_endpoint, request.path_params["endpoint_id"])
    return empty()


routes = [
    Route("/v3/endpoints", list_endpoints, methods=["GET", "HEAD"]),
    Route("/v3/endpoints", create_endpoint, methods=["POST"]),
    Route("/v3/endpoints/{endpoint_id}", get_endpoint, methods=["GET", "HEAD"]),
    Route("/v3/endpoints/{endpoint_id}", update_endpoint, methods=["PATCH"]),
    Route("/v3/endpoints/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
]
