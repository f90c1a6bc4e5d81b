"""Keystone v3 domains: /v3/domains."""

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
from onestack.identity.service import domains as svc
from onestack.identity.wire import collection


async def list_domains(request: Request) -> Response:
    items = await call(request, svc.list_domains, query(request))
    return json_response(collection(request, "domains", [linked(request, "domains", d) for d in items]))


async def create_domain(request: Request) -> Response:
    item = await call_with_object(request, "domain", svc.create_domain)
    return json_response({"domain": linked(request, "domains", item)}, status=201)


async def get_domain(request: Request) -> Response:
    item = await call(request, svc.get_domain, request.path_params["domain_id"])
    return json_response({"domain": linked(request, "domains", item)})


async def update_domain(request: Request) -> Response:
    item = await call_with_object(request, "domain", svc.update_domain, request.path_params["domain_id"])
    return json_response({"domain": linked(request, "domains", item)})


async def delete_domain(request: Request) -> Response:
    await call(request, svc.delete_domain, request.path_params["domain_id"])
    return empty(204)


routes = [
    Route("/v3/domains", list_domains, methods=["GET"]),
    Route("/v3/domains", create_domain, methods=["POST"]),
    Route("/v3/domains/{domain_id}", get_domain, methods=["GET"]),
    Route("/v3/domains/{domain_id}", update_domain, methods=["PATCH"]),
    Route("/v3/domains/{domain_id}", delete_domain, methods=["DELETE"]),
]
