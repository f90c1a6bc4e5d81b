"""``/os-simple-tenant-usage``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.pagination import nova_links
from onestack.common.web import json_response, run
from onestack.compute.api._common import call
from onestack.compute.service import tenant_usage


async def index(request: Request) -> Response:
    c = await call(request)
    paged = c.at_least("2.40")
    summaries, servers, limit = await run(
        tenant_usage.usages, c.svc, c.ctx, c.params, tenant_id=None,
        detailed=c.params.get("detailed") == "1", paged=paged)
    out: dict[str, Any] = {"tenant_usages": summaries}
    if paged:
        out.update(nova_links(c.url("/os-simple-tenant-usage"), c.params, "tenant_usages",
                              servers, limit, id_key="instance_id"))
    return json_response(out)


async def show(request: Request) -> Response:
    c = await call(request)
    paged = c.at_least("2.40")
    tenant = request.path_params["tenant_id"]
    summaries, servers, limit = await run(tenant_usage.usages, c.svc, c.ctx, c.params,
                                          tenant_id=tenant, detailed=True, paged=paged)
    out: dict[str, Any] = {"tenant_usage": summaries[0] if summaries else {}}
    if paged:
        out.update(nova_links(c.url(f"/os-simple-tenant-usage/{tenant}"), c.params,
                              "tenant_usage", servers, limit, id_key="instance_id"))
    return json_response(out)


async def no_tenant(request: Request) -> Response:
    await call(request)
    from onestack.common.errors import NotFound

    raise NotFound("The resource could not be found.")


routes = [
    Route("/v2.1/os-simple-tenant-usage", index, methods=["GET"]),
    Route("/v2.1/os-simple-tenant-usage/", no_tenant, methods=["GET"]),
    Route("/v2.1/os-simple-tenant-usage/{tenant_id}", show, methods=["GET"]),
]
