"""``/os-hosts``, ``/os-networks``, ``/os-tenant-networks``,
``/os-instance_usage_audit_log``, ``/extensions`` and ``/os-quota-class-sets``:
Nova's older resources, at the microversions Nova still serves them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest, Gone
from onestack.common.web import json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.service import legacy

# --- os-hosts (removed at 2.43) -------------------------------------------------------

_ENABLE = {"type": "string", "enum": ["enable", "disable", "Enable", "Disable", "ENABLE",
                                       "DISABLE"]}
_HOST_UPDATE = {"type": "object", "properties": {"status": _ENABLE,
                                                 "maintenance_mode": _ENABLE},
                "additionalProperties": False}


async def list_hosts(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.42")
    hosts = await run(legacy.list_hosts, c.svc, c.ctx, c.params.get("zone") or None)
    return json_response({"hosts": hosts})


async def show_host(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.42")
    return json_response({"host": await run(legacy.show_host, c.svc, c.ctx,
                                            request.path_params["host"])})


async def update_host(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.42")
    data = await body(request, _HOST_UPDATE)
    if not data:
        raise BadRequest("'status' or 'maintenance_mode' is required.")
    changes = {k: str(v).lower() for k, v in data.items()}
    return json_response(await run(legacy.update_host, c.svc, c.ctx,
                                   request.path_params["host"], changes))


def _power(action: str) -> Any:
    async def handler(request: Request) -> Response:
        c = await call(request)
        c.require("2.1", "2.42")
        await run(legacy.host_power_action, c.svc, c.ctx, request.path_params["host"], action)
        return json_response({"host": request.path_params["host"], "power_action": action})

    return handler


# --- os-networks, os-tenant-networks (removed at 2.36) --------------------------------


def _gone_networks(c: Call) -> None:
    c.require("2.1", "2.35")
    raise Gone("Network operations other than listing and showing are gone: nova-network "
               "was removed; use the Networking API.")


async def list_networks(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.35")
    nets = await run(legacy.list_networks, c.svc, c.ctx, "os_compute_api:os-networks:list")
    admin = c.svc.is_admin(c.ctx)
    return json_response({"networks": [legacy.network_view(n, admin) for n in nets]})


async def show_network(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.35")
    net = await run(legacy.get_network, c.svc, c.ctx, request.path_params["nid"],
                    "os_compute_api:os-networks:show")
    return json_response({"network": legacy.network_view(net, c.svc.is_admin(c.ctx))})


async def networks_gone(request: Request) -> Response:
    _gone_networks(await call(request))
    raise AssertionError  # unreachable


def _tenant_network(net: dict[str, Any]) -> dict[str, Any]:
    # Nova's view of a Neutron network here: its cidr is not known ("None").
    return {"id": net["id"], "cidr": "None", "label": net.get("name")}


async def list_tenant_networks(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.35")
    nets = await run(legacy.list_networks, c.svc, c.ctx,
                     "os_compute_api:os-tenant-networks:list")
    return json_response({"networks": [_tenant_network(n) for n in nets]})


async def show_tenant_network(request: Request) -> Response:
    c = await call(request)
    c.require("2.1", "2.35")
    net = await run(legacy.get_network, c.svc, c.ctx, request.path_params["nid"],
                    "os_compute_api:os-tenant-networks:show")
    return json_response({"network": _tenant_network(net)})


# --- os-instance_usage_audit_log -------------------------------------------------------


async def audit_logs(request: Request) -> Response:
    c = await call(request)
    log = await run(legacy.audit_log, c.svc, c.ctx, "list")
    return json_response({"instance_usage_audit_logs": log})


async def audit_log(request: Request) -> Response:
    c = await call(request)
    before = legacy.parse_audit_date(request.path_params["before"])
    log = await run(legacy.audit_log, c.svc, c.ctx, "show", before)
    return json_response({"instance_usage_audit_log": log})


# --- /extensions ----------------------------------------------------------------------


async def list_extensions(request: Request) -> Response:
    c = await call(request)
    return json_response({"extensions": legacy.extensions(c.svc, c.ctx)})


async def show_extension(request: Request) -> Response:
    c = await call(request)
    return json_response({"extension": legacy.get_extension(c.svc, c.ctx,
                                                            request.path_params["alias"])})


# --- os-quota-class-sets --------------------------------------------------------------


def _class_names(c: Call) -> list[str]:
    return legacy.class_resources(c.at_least("2.50"), c.at_least("2.57"))


async def show_quota_class(request: Request) -> Response:
    c = await call(request)
    name = request.path_params["name"]
    values = await run(legacy.quota_class, c.svc, c.ctx, name, _class_names(c))
    return json_response({"quota_class_set": {"id": name, **values}})


async def update_quota_class(request: Request) -> Response:
    c = await call(request)
    name = request.path_params["name"]
    if len(name) > 255:
        raise BadRequest("quota_class_name has more than 255 characters.")
    names = _class_names(c)
    data = await body(request, {"type": "object", "properties": {"quota_class_set": {
        "type": "object", "properties": {n: schemas.QUOTA_LIMIT for n in names},
        "additionalProperties": False}}, "required": ["quota_class_set"],
        "additionalProperties": False})
    values = await run(legacy.update_quota_class, c.svc, c.ctx, name,
                       dict(data["quota_class_set"]), names)
    return json_response({"quota_class_set": values})


V = "/v2.1"

routes = [
    Route(V + "/os-hosts", list_hosts, methods=["GET"]),
    Route(V + "/os-hosts/{host}", show_host, methods=["GET"]),
    Route(V + "/os-hosts/{host}", update_host, methods=["PUT"]),
    Route(V + "/os-hosts/{host}/startup", _power("startup"), methods=["GET"]),
    Route(V + "/os-hosts/{host}/shutdown", _power("shutdown"), methods=["GET"]),
    Route(V + "/os-hosts/{host}/reboot", _power("reboot"), methods=["GET"]),
    Route(V + "/os-networks", list_networks, methods=["GET"]),
    Route(V + "/os-networks", networks_gone, methods=["POST"]),
    Route(V + "/os-networks/add", networks_gone, methods=["POST"]),
    Route(V + "/os-networks/{nid}", show_network, methods=["GET"]),
    Route(V + "/os-networks/{nid}", networks_gone, methods=["DELETE"]),
    Route(V + "/os-networks/{nid}/action", networks_gone, methods=["POST"]),
    Route(V + "/os-tenant-networks", list_tenant_networks, methods=["GET"]),
    Route(V + "/os-tenant-networks", networks_gone, methods=["POST"]),
    Route(V + "/os-tenant-networks/{nid}", show_tenant_network, methods=["GET"]),
    Route(V + "/os-tenant-networks/{nid}", networks_gone, methods=["DELETE"]),
    Route(V + "/os-instance_usage_audit_log", audit_logs, methods=["GET"]),
    Route(V + "/os-instance_usage_audit_log/{before:path}", audit_log, methods=["GET"]),
    Route(V + "/extensions", list_extensions, methods=["GET"]),
    Route(V + "/extensions/{alias}", show_extension, methods=["GET"]),
    Route(V + "/os-quota-class-sets/{name}", show_quota_class, methods=["GET"]),
    Route(V + "/os-quota-class-sets/{name}", update_quota_class, methods=["PUT"]),
]
