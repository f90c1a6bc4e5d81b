"""/v3/services: the services of the catalog."""

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
from onestack.identity.service import services as svc

_FILTERS = ("type", "name")


async def create_service(request: Request) -> Response:
    ref = await call_with_json(request, svc.create_service)
    return json_response({"service": with_link(request, ref, f"services/{ref['id']}")}, 201)


async def list_services(request: Request) -> Response:
    refs = await call(request, svc.list_services, filters(request, _FILTERS))
    items = [with_link(request, r, f"services/{r['id']}") for r in refs]
    return json_response(wire.collection(request, "services", items))


async def get_service(request: Request) -> Response:
    ref = await call(request, svc.get_service, request.path_params["service_id"])
    return json_response({"service": with_link(request, ref, f"services/{ref['id']}")})


async def update_service(request: Request) -> Response:
    ref = await call_with_json(request, svc.update_service, request.path_params["service_id"])
    return json_response({"service": with_link(request, ref, f"services/{ref['id']}")})


async def delete_service(request: Request) -> Response:
    await call(request, svc.delete_service, request.path_params["service_id"])
    return empty()


routes = [
    Route("/v3/services", list_services, methods=["GET", "HEAD"]),
    Route("/v3/services", create_service, methods=["POST"]),
    Route("/v3/services/{service_id}", get_service, methods=["GET", "HEAD"]),
    Route("/v3/services/{service_id}", update_service, methods=["PATCH"]),
    Route("/v3/services/{service_id}", delete_service, methods=["DELETE"]),
]
