"""``/os-quota-sets`` and ``/limits``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.service import quotas


def _names(c: Call) -> list[str]:
    return quotas.visible_resources(c.at_least("2.36"), c.at_least("2.57"))


async def show(request: Request) -> Response:
    c = await call(request)
    project_id = request.path_params["project_id"]
    values = await run(quotas.show, c.svc, c.ctx, project_id, _names(c))
    return json_response({"quota_set": {"id": project_id, **values}})


async def detail(request: Request) -> Response:
    c = await call(request)
    project_id = request.path_params["project_id"]
    values = await run(quotas.detail, c.svc, c.ctx, project_id, _names(c))
    return json_response({"quota_set": {"id": project_id, **values}})


async def defaults(request: Request) -> Response:
    c = await call(request)
    project_id = request.path_params["project_id"]
    values = await run(quotas.defaults, c.svc, c.ctx, project_id, _names(c))
    return json_response({"quota_set": {"id": project_id, **values}})


async def update(request: Request) -> Response:
    c = await call(request)
    names = _names(c)
    data = await body(request, schemas.quota_update(names))
    values = dict(data["quota_set"])
    result = await run(quotas.update, c.svc, c.ctx, request.path_params["project_id"], values,
                       names)
    return json_response({"quota_set": result})


async def reset(request: Request) -> Response:
    c = await call(request)
    await run(quotas.reset, c.svc, c.ctx, request.path_params["project_id"])
    return empty(202)


async def limits(request: Request) -> Response:
    c = await call(request)
    tenant = request.query_params.get("tenant_id")
    result = await run(quotas.limits, c.svc, c.ctx, tenant, v236=c.at_least("2.36"),
                       v239=c.at_least("2.39"), v257=c.at_least("2.57"))
    return json_response({"limits": result})


Q = "/v2.1/os-quota-sets/{project_id}"

routes = [
    Route(Q, show, methods=["GET"]),
    Route(Q, update, methods=["PUT"]),
    Route(Q, reset, methods=["DELETE"]),
    Route(Q + "/detail", detail, methods=["GET"]),
    Route(Q + "/defaults", defaults, methods=["GET"]),
    Route("/v2.1/limits", limits, methods=["GET"]),
]
