"""``/flavors``: list, detail, show, create, update, delete; extra specs; access."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest
from onestack.common.pagination import nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.models import Flavor
from onestack.compute.service import flavors
from onestack.compute.validation import validate_query
from onestack.compute.views import flavors as views


def _show(c: Call, flavor: Flavor, specs_allowed: bool | None = None) -> dict[str, Any]:
    specs = None
    if c.at_least("2.61"):
        allowed = specs_allowed if specs_allowed is not None else flavors.can_see_extra_specs(
            c.svc, c.ctx)
        if allowed:
            specs = dict(flavor.extra_specs or {})
    return views.full(flavor, c.version, c.links, specs)


def _query(c: Call) -> None:
    validate_query(c.params, schemas.FLAVOR_QUERY, additional=not c.at_least("2.75"))


async def list_flavors(request: Request) -> Response:
    c = await call(request)
    _query(c)
    rows, limit = await run(flavors.list_flavors, c.svc, c.ctx, c.params)
    out: dict[str, Any] = {"flavors": [views.brief(f, c.version, c.links) for f in rows]}
    out.update(nova_links(c.url("/flavors"), c.params, "flavors", rows, limit,
                          id_key="flavorid"))
    return json_response(out)


async def list_detail(request: Request) -> Response:
    c = await call(request)
    _query(c)
    rows, limit = await run(flavors.list_flavors, c.svc, c.ctx, c.params)
    allowed = flavors.can_see_extra_specs(c.svc, c.ctx)
    out: dict[str, Any] = {"flavors": [_show(c, f, allowed) for f in rows]}
    out.update(nova_links(c.url("/flavors/detail"), c.params, "flavors", rows, limit,
                          id_key="flavorid"))
    return json_response(out)


async def show_flavor(request: Request) -> Response:
    c = await call(request)
    flavor = await run(flavors.get, c.svc, c.ctx, request.path_params["flavor_id"])
    return json_response({"flavor": _show(c, flavor)})


async def create_flavor(request: Request) -> Response:
    c = await call(request)
    schema = schemas.FLAVOR_CREATE_V255 if c.at_least("2.55") else schemas.FLAVOR_CREATE
    data = await body(request, schema)
    values = data["flavor"]
    description = values.get("description") if c.at_least("2.55") else None
    flavor = await run(flavors.create, c.svc, c.ctx, values, description)
    return json_response({"flavor": _show(c, flavor)})


async def update_flavor(request: Request) -> Response:
    c = await call(request)
    c.require("2.55")
    data = await body(request, schemas.FLAVOR_UPDATE)
    flavor = await run(flavors.update_description, c.svc, c.ctx, request.path_params["flavor_id"],
                       data["flavor"]["description"])
    return json_response({"flavor": _show(c, flavor)})


async def delete_flavor(request: Request) -> Response:
    c = await call(request)
    await run(flavors.delete_flavor, c.svc, c.ctx, request.path_params["flavor_id"])
    return empty(202)


async def list_extra_specs(request: Request) -> Response:
    c = await call(request)
    specs = await run(flavors.extra_specs, c.svc, c.ctx, request.path_params["flavor_id"])
    return json_response({"extra_specs": specs})


async def show_extra_spec(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    return json_response(await run(flavors.extra_spec, c.svc, c.ctx, p["flavor_id"], p["key"]))


async def create_extra_specs(request: Request) -> Response:
    c = await call(request)
    data = await body(request, schemas.EXTRA_SPECS_CREATE)
    specs = await run(flavors.set_extra_specs, c.svc, c.ctx, request.path_params["flavor_id"],
                      data["extra_specs"])
    return json_response({"extra_specs": specs})


async def update_extra_spec(request: Request) -> Response:
    c = await call(request)
    data = await body(request, schemas.EXTRA_SPECS_UPDATE)
    p = request.path_params
    if p["key"] not in data:
        raise BadRequest("Request body and URI mismatch")
    specs = await run(flavors.set_extra_specs, c.svc, c.ctx, p["flavor_id"], data, rule="update")
    return json_response(specs)


async def delete_extra_spec(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    await run(flavors.delete_extra_spec, c.svc, c.ctx, p["flavor_id"], p["key"])
    return empty(200)


async def list_access(request: Request) -> Response:
    c = await call(request)
    rows = await run(flavors.access_list, c.svc, c.ctx, request.path_params["flavor_id"])
    return json_response({"flavor_access": rows})


async def flavor_action(request: Request) -> Response:
    c = await call(request)
    data = await body(request)
    flavorid = request.path_params["flavor_id"]
    if isinstance(data, dict) and "addTenantAccess" in data:
        from onestack.compute.validation import validate

        validate(schemas.FLAVOR_ACCESS_ADD, data)
        rows = await run(flavors.add_access, c.svc, c.ctx, flavorid,
                         data["addTenantAccess"]["tenant"], refuse_public=c.at_least("2.7"))
    elif isinstance(data, dict) and "removeTenantAccess" in data:
        from onestack.compute.validation import validate

        validate(schemas.FLAVOR_ACCESS_REMOVE, data)
        rows = await run(flavors.remove_access, c.svc, c.ctx, flavorid,
                         data["removeTenantAccess"]["tenant"])
    else:
        raise BadRequest("There is no such action: " + _action_name(data))
    return json_response({"flavor_access": rows})


def _action_name(data: Any) -> str:
    if isinstance(data, dict) and data:
        return str(next(iter(data)))
    return "None"


F = "/v2.1/flavors/{flavor_id}"

routes = [
    Route("/v2.1/flavors", list_flavors, methods=["GET"]),
    Route("/v2.1/flavors", create_flavor, methods=["POST"]),
    Route("/v2.1/flavors/detail", list_detail, methods=["GET"]),
    Route(F, show_flavor, methods=["GET"]),
    Route(F, update_flavor, methods=["PUT"]),
    Route(F, delete_flavor, methods=["DELETE"]),
    Route(F + "/action", flavor_action, methods=["POST"]),
    Route(F + "/os-flavor-access", list_access, methods=["GET"]),
    Route(F + "/os-extra_specs", list_extra_specs, methods=["GET"]),
    Route(F + "/os-extra_specs", create_extra_specs, methods=["POST"]),
    Route(F + "/os-extra_specs/{key}", show_extra_spec, methods=["GET"]),
    Route(F + "/os-extra_specs/{key}", update_extra_spec, methods=["PUT"]),
    Route(F + "/os-extra_specs/{key}", delete_extra_spec, methods=["DELETE"]),
]
