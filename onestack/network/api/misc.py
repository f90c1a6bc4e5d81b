"""Version discovery, extensions, quotas, availability zones, IP availability,
service providers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.web import empty, json_response, run
from onestack.network.api._http import (
    body_of,
    call,
    caller_of,
    fields_of,
    net_of,
    query_pairs,
    resource_item,
)
from onestack.network.service import availability, extensions, query, quotas


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def versions(request: Request) -> Response:
    """``GET /networking/``: the one API version (no token needed)."""
    href = _base(request) + "/v2.0/"
    return json_response(
        {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]}
    )


async def v2_resources(request: Request) -> Response:
    """``GET /networking/v2.0/``: the core resources."""
    await authenticate(request)
    base = _base(request) + "/v2.0/"
    names = (("network", "networks"), ("subnet", "subnets"), ("subnetpool", "subnetpools"), ("port", "ports"))
    return json_response({
        "resources": [
            {"name": n, "collection": c, "links": [{"rel": "self", "href": base + c}]} for n, c in names
        ]
    })


async def list_extensions(request: Request) -> Response:
    await authenticate(request)
    return json_response({"extensions": extensions.list_extensions()})


async def show_extension(request: Request) -> Response:
    await authenticate(request)
    return json_response({"extension": extensions.show_extension(request.path_params["alias"])})


# --- quotas -------------------------------------------------------------------------------------------


async def list_quotas(request: Request) -> Response:
    return json_response({"quotas": await call(request, quotas.list_quotas)})


async def show_quota(request: Request) -> Response:
    return json_response({"quota": await call(request, quotas.show, request.path_params["project_id"])})


async def show_quota_details(request: Request) -> Response:
    result = await call(request, quotas.show, request.path_params["project_id"], details=True)
    return json_response({"quota": result})


async def show_quota_default(request: Request) -> Response:
    return json_response({"quota": await call(request, quotas.show_default, request.path_params["project_id"])})


async def update_quota(request: Request) -> Response:
    caller = await caller_of(request)
    body = resource_item(await body_of(request), "quota")
    result = await run(quotas.update, net_of(request), caller, request.path_params["project_id"], body)
    return json_response({"quota": result})


async def delete_quota(request: Request) -> Response:
    await call(request, quotas.reset, request.path_params["project_id"])
    return empty(204)


# --- availability ---------------------------------------------------------------------------------------


async def list_zones(request: Request) -> Response:
    caller = await caller_of(request)
    q = query.parse(availability.AVAILABILITY_ZONES, query_pairs(request), taggable=False)
    return json_response({"availability_zones": availability.list_zones(net_of(request), caller, q)})


async def list_ip_availabilities(request: Request) -> Response:
    caller = await caller_of(request)
    net = net_of(request)

    def work() -> list[dict[str, object]]:
        q = query.parse(availability.IP_AVAILABILITIES, query_pairs(request), taggable=False)
        return availability.list_availabilities(net, caller, q)

    return json_response({"network_ip_availabilities": await run(work)})


async def show_ip_availability(request: Request) -> Response:
    item = await call(request, availability.show_availability, request.path_params["id"], fields_of(request))
    return json_response({"network_ip_availability": item})


async def list_agents(request: Request) -> Response:
    caller = await caller_of(request)
    q = query.parse(availability.AGENTS, query_pairs(request), taggable=False)
    return json_response({"agents": availability.list_agents(net_of(request), caller, q)})


async def show_agent(request: Request) -> Response:
    caller = await caller_of(request)
    item = availability.show_agent(net_of(request), caller, request.path_params["id"], fields_of(request))
    return json_response({"agent": item})


async def service_providers(request: Request) -> Response:
    """No advanced services (load balancers, VPN ...) are offered: an empty list."""
    await authenticate(request)
    return json_response({"service_providers": []})


routes = [
    Route("/", versions, methods=["GET"]),
    Route("/v2.0", v2_resources, methods=["GET"]),
    Route("/v2.0/", v2_resources, methods=["GET"]),
    Route("/v2.0/extensions", list_extensions, methods=["GET"]),
    Route("/v2.0/extensions/{alias}", show_extension, methods=["GET"]),
    Route("/v2.0/quotas", list_quotas, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", show_quota, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", update_quota, methods=["PUT"]),
    Route("/v2.0/quotas/{project_id}", delete_quota, methods=["DELETE"]),
    Route("/v2.0/quotas/{project_id}/details", show_quota_details, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}/default", show_quota_default, methods=["GET"]),
    Route("/v2.0/availability_zones", list_zones, methods=["GET"]),
    Route("/v2.0/network-ip-availabilities", list_ip_availabilities, methods=["GET"]),
    Route("/v2.0/network-ip-availabilities/{id}", show_ip_availability, methods=["GET"]),
    Route("/v2.0/service-providers", service_providers, methods=["GET"]),
    Route("/v2.0/agents", list_agents, methods=["GET"]),
    Route("/v2.0/agents/{id}", show_agent, methods=["GET"]),
]
