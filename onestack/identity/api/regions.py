"""/v3/regions: regions with a parent hierarchy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import (
    call,
    call_with_json,
    filters,
    identity_and_caller,
    read_json,
    with_link,
)
from onestack.identity.service import regions as svc

_FILTERS = ("parent_region_id",)


async def create_region(request: Request) -> Response:
    ref = await call_with_json(request, svc.create_region)
    return json_response({"region": with_link(request, ref, f"regions/{ref['id']}")}, 201)


async def put_region(request: Request) -> Response:
    """PUT /v3/regions/{region_id}: create a region with the id the client chose."""
    identity, ctx = await identity_and_caller(request)
    body = await read_json(request)
    ref = await run(svc.create_region, identity, ctx, body, request.path_params["region_id"])
    return json_response({"region": with_link(request, ref, f"regions/{ref['id']}")}, 201)


async def list_regions(request: Request) -> Response:
    refs = await call(request, svc.list_regions, filters(request, _FILTERS))
    items = [with_link(request, r, f"regions/{r['id']}") for r in refs]
    return json_response(wire.collection(request, "regions", items))


async def get_region(request: Request) -> Response:
    ref = await call(request, svc.get_region, request.path_params["region_id"])
    return json_response({"region": with_link(request, ref, f"regions/{ref['id']}")})


async def update_region(request: Request) -> Response:
    ref = await call_with_json(request, svc.update_region, request.path_params["region_id"])
    return json_response({"region": with_link(request, ref, f"regions/{ref['id']}")})


async def delete_region(request: Request) -> Response:
    await call(request, svc.delete_region, request.path_params["region_id"])
    return empty()


routes = [
    Route("/v3/regions", list_regions, methods=["GET", "HEAD"]),
    Route("/v3/regions", create_region, methods=["POST"]),
    Route("/v3/regions/{region_id}", get_region, methods=["GET", "HEAD"]),
    Route("/v3/regions/{region_id}", update_region, methods=["PATCH"]),
    Route("/v3/regions/{region_id}", delete_region, methods=["DELETE"]),
    Route("/v3/regions/{region_id}", put_region, methods=["PUT"]),
]
