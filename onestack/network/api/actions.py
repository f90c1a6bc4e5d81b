"""Member actions and sub-resources: router interfaces and routes, subnet pool
prefixes, floating IP port forwardings, and tags on every taggable resource."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import dumps, empty, json_response, run
from onestack.network.api._http import (
    body_of,
    call,
    caller_of,
    fields_of,
    listing,
    net_of,
    query_pairs,
    resource_item,
)
from onestack.network.service import port_forwardings, query, routers, subnetpools, tags
from onestack.network.service.resources import PORT_FORWARDINGS

# --- routers ----------------------------------------------------------------------------------------


async def add_router_interface(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    result = await run(routers.add_interface, net_of(request), caller, request.path_params["id"], body)
    return json_response(result)


async def remove_router_interface(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    result = await run(routers.remove_interface, net_of(request), caller, request.path_params["id"], body)
    return json_response(result)


async def add_extraroutes(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    item = await run(routers.change_routes, net_of(request), caller, request.path_params["id"], body, True)
    return json_response({"router": item})


async def remove_extraroutes(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    item = await run(routers.change_routes, net_of(request), caller, request.path_params["id"], body, False)
    return json_response({"router": item})


# --- subnet pools -----------------------------------------------------------------------------------


async def add_prefixes(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    result = await run(subnetpools.change_prefixes, net_of(request), caller, request.path_params["id"], body, True)
    return json_response(result)


async def remove_prefixes(request: Request) -> Response:
    caller = await caller_of(request)
    body = await body_of(request)
    result = await run(subnetpools.change_prefixes, net_of(request), caller, request.path_params["id"], body, False)
    return json_response(result)


# --- port forwardings --------------------------------------------------------------------------------

_PF = "/v2.0/floatingips/{fip_id}/port_forwardings"


async def list_forwardings(request: Request) -> Response:
    caller = await caller_of(request)
    net = net_of(request)

    def work() -> tuple[list[dict[str, Any]], Any]:
        q = query.parse(PORT_FORWARDINGS, query_pairs(request), taggable=False)
        return port_forwardings.list_forwardings(net, caller, request.path_params["fip_id"], q)

    items, page = await run(work)
    return listing(request, "port_forwardings", items, page)


async def create_forwarding(request: Request) -> Response:
    caller = await caller_of(request)
    body = resource_item(await body_of(request), "port_forwarding")
    item = await run(port_forwardings.create, net_of(request), caller, request.path_params["fip_id"], body)
    return json_response({"port_forwarding": item}, 201)


async def show_forwarding(request: Request) -> Response:
    p = request.path_params
    item = await call(request, port_forwardings.show, p["fip_id"], p["id"], fields_of(request))
    return json_response({"port_forwarding": item})


async def update_forwarding(request: Request) -> Response:
    caller = await caller_of(request)
    body = resource_item(await body_of(request), "port_forwarding")
    p = request.path_params
    item = await run(port_forwardings.update, net_of(request), caller, p["fip_id"], p["id"], body)
    return json_response({"port_forwarding": item})


async def delete_forwarding(request: Request) -> Response:
    p = request.path_params
    await call(request, port_forwardings.delete, p["fip_id"], p["id"])
    return empty(204)


# --- tags --------------------------------------------------------------------------------------------


def _tag_routes(collection: str) -> list[Route]:
    base = f"/v2.0/{collection}/{{id}}/tags"

    async def get_all(request: Request) -> Response:
        result = await call(request, tags.list_tags, collection, request.path_params["id"])
        return json_response({"tags": result})

    async def replace(request: Request) -> Response:
        caller = await caller_of(request)
        body = await body_of(request)
        result = await run(tags.replace, net_of(request), caller, collection, request.path_params["id"], body)
        return json_response({"tags": result})

    async def add_many(request: Request) -> Response:
        caller = await caller_of(request)
        body = await body_of(request)
        result = await run(tags.add_many, net_of(request), caller, collection, request.path_params["id"], body)
        return json_response({"tags": result})

    async def remove_all(request: Request) -> Response:
        await call(request, tags.remove_all, collection, request.path_params["id"])
        return empty(204)

    async def check(request: Request) -> Response:
        p = request.path_params
        await call(request, tags.check, collection, p["id"], p["tag"])
        return empty(204)

    async def add(request: Request) -> Response:
        p = request.path_params
        await call(request, tags.add, collection, p["id"], p["tag"])
        return Response(dumps(None), status_code=201, media_type="application/json")

    async def remove(request: Request) -> Response:
        p = request.path_params
        await call(request, tags.remove, collection, p["id"], p["tag"])
        return empty(204)

    return [
        Route(base, get_all, methods=["GET"]),
        Route(base, replace, methods=["PUT"]),
        Route(base, add_many, methods=["POST"]),
        Route(base, remove_all, methods=["DELETE"]),
        Route(base + "/{tag:path}", check, methods=["GET"]),
        Route(base + "/{tag:path}", add, methods=["PUT"]),
        Route(base + "/{tag:path}", remove, methods=["DELETE"]),
    ]


routes = [
    Route("/v2.0/routers/{id}/add_router_interface", add_router_interface, methods=["PUT"]),
    Route("/v2.0/routers/{id}/remove_router_interface", remove_router_interface, methods=["PUT"]),
    Route("/v2.0/routers/{id}/add_extraroutes", add_extraroutes, methods=["PUT"]),
    Route("/v2.0/routers/{id}/remove_extraroutes", remove_extraroutes, methods=["PUT"]),
    Route("/v2.0/subnetpools/{id}/add_prefixes", add_prefixes, methods=["PUT"]),
    Route("/v2.0/subnetpools/{id}/remove_prefixes", remove_prefixes, methods=["PUT"]),
    Route(_PF, list_forwardings, methods=["GET"]),
    Route(_PF, create_forwarding, methods=["POST"]),
    Route(_PF + "/{id}", show_forwarding, methods=["GET"]),
    Route(_PF + "/{id}", update_forwarding, methods=["PUT"]),
    Route(_PF + "/{id}", delete_forwarding, methods=["DELETE"]),
    *(route for collection in tags.TAGGABLE for route in _tag_routes(collection)),
]
