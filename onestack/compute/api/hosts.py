"""``/os-hypervisors`` and ``/os-services``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest
from onestack.common.pagination import PageParams, nova_links, paginate_list
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.service import hosts


def _with_servers(c: Call) -> bool:
    if not c.at_least("2.53") or "with_servers" not in c.params:
        return False
    value = c.params["with_servers"].strip().lower()
    if value in ("1", "true", "t", "on", "y", "yes"):
        return True
    if value in ("0", "false", "f", "off", "n", "no"):
        return False
    raise BadRequest(f"Unrecognized value '{c.params['with_servers']}', acceptable values "
                     "are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', "
                     "'yes'")


async def _list(request: Request, detail: bool) -> Response:
    c = await call(request)
    pattern = c.params.get("hypervisor_hostname_pattern") if c.at_least("2.53") else None
    if pattern is not None and ("limit" in c.params or "marker" in c.params):
        raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query "
                         "parameter is not supported.")
    with_servers = _with_servers(c)
    nodes = await run(hosts.list_hypervisors, c.svc, c.ctx, pattern,
                      "list-detail" if detail else "list")

    def render() -> list[dict[str, Any]]:
        return [hosts.hypervisor_view(c.svc, n, c.version, detail=detail,
                                      with_servers=with_servers) for n in nodes]

    items = await run(render)
    out: dict[str, Any] = {}
    if c.at_least("2.33") and pattern is None:
        page = PageParams.from_query(c.params, max_limit=c.svc.conf.max_limit,
                                   zero_is_default=False)
        found = paginate_list(items, page, key=lambda h: str(h["id"]))
        items = found.items
        out.update(nova_links(c.url("/os-hypervisors" + ("/detail" if detail else "")),
                              c.params, "hypervisors", items, page.limit))
    out["hypervisors"] = items
    return json_response(out)


async def list_hypervisors(request: Request) -> Response:
    return await _list(request, False)


async def list_detail(request: Request) -> Response:
    return await _list(request, True)


async def show_hypervisor(request: Request) -> Response:
    c = await call(request)
    node = await run(hosts.get_hypervisor, c.svc, c.ctx, request.path_params["hid"], c.version)
    view = await run(hosts.hypervisor_view, c.svc, node, c.version, detail=True,
                     with_servers=_with_servers(c))
    return json_response({"hypervisor": view})


async def statistics(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.87")
    return json_response({"hypervisor_statistics": await run(hosts.statistics, c.svc, c.ctx)})


async def uptime(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.87")
    node = await run(hosts.get_hypervisor, c.svc, c.ctx, request.path_params["hid"], c.version)
    view = await run(hosts.hypervisor_view, c.svc, node, c.version, detail=False,
                     with_servers=False)
    view["uptime"] = hosts._uptime()
    return json_response({"hypervisor": view})


async def search(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.52")
    nodes = await run(hosts.list_hypervisors, c.svc, c.ctx, request.path_params["pattern"],
                      "search")
    items = [hosts.hypervisor_view(c.svc, n, c.version, detail=False, with_servers=False)
             for n in nodes]
    return json_response({"hypervisors": items})


async def servers(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.52")
    nodes = await run(hosts.list_hypervisors, c.svc, c.ctx, request.path_params["pattern"],
                      "servers")
    items = [hosts.hypervisor_view(c.svc, n, c.version, detail=False, with_servers=True)
             for n in nodes]
    return json_response({"hypervisors": items})


async def list_services(request: Request) -> Response:
    c = await call(request)
    views = await run(hosts.list_services, c.svc, c.ctx, c.params.get("host"),
                      c.params.get("binary"))
    return json_response({"services": [hosts.service_view(c.svc, v, c.version) for v in views]})


_SERVICE_UPDATE = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["enabled", "disabled"]},
    "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
    "forced_down": schemas.BOOLEAN,
}, "additionalProperties": False}


async def update_service(request: Request) -> Response:
    c = await call(request)
    c.require("2.53")
    data = await body(request, _SERVICE_UPDATE)
    if not data:
        raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be "
                         "specified.")
    if "forced_down" in data:
        data["forced_down"] = schemas.is_true(data["forced_down"])
    view = await run(hosts.update_service, c.svc, c.ctx, request.path_params["sid"], data)
    return json_response({"service": hosts.service_view(c.svc, view, c.version)})


async def delete_service(request: Request) -> Response:
    c = await call(request)
    await run(hosts.delete_service, c.svc, c.ctx, request.path_params["sid"])
    return empty(204)


H = "/v2.1/os-hypervisors"

routes = [
    Route(H, list_hypervisors, methods=["GET"]),
    Route(H + "/detail", list_detail, methods=["GET"]),
    Route(H + "/statistics", statistics, methods=["GET"]),
    Route(H + "/{pattern}/search", search, methods=["GET"]),
    Route(H + "/{pattern}/servers", servers, methods=["GET"]),
    Route(H + "/{hid}/uptime", uptime, methods=["GET"]),
    Route(H + "/{hid}", show_hypervisor, methods=["GET"]),
    Route("/v2.1/os-services", list_services, methods=["GET"]),
    Route("/v2.1/os-services/{sid}", update_service, methods=["PUT"]),
    Route("/v2.1/os-services/{sid}", delete_service, methods=["DELETE"]),
]
