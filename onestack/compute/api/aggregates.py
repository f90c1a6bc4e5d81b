"""``/os-aggregates``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.models import Aggregate
from onestack.compute.service import aggregates
from onestack.compute.validation import validate
from onestack.compute.views.times import micro

_ZONE = {"oneOf": [schemas.AZ_NAME, {"type": "null"}]}


def _view(c: Call, row: Aggregate, brief: bool = False) -> dict[str, Any]:
    out = aggregates.view(row, with_uuid=c.at_least("2.41"), brief=brief)
    for key in ("created_at", "updated_at"):
        out[key] = micro(out[key])
    return {"aggregate": out}


async def list_aggregates(request: Request) -> Response:
    c = await call(request)
    rows = await run(aggregates.list_aggregates, c.svc, c.ctx)
    return json_response({"aggregates": [_view(c, r)["aggregate"] for r in rows]})


async def create(request: Request) -> Response:
    c = await call(request)
    data = await body(request, {"type": "object", "properties": {"aggregate": {
        "type": "object", "properties": {"name": schemas.NAME, "availability_zone": _ZONE},
        "required": ["name"], "additionalProperties": False}},
        "required": ["aggregate"], "additionalProperties": False})
    vals = data["aggregate"]
    zone = vals.get("availability_zone")
    row = await run(aggregates.create, c.svc, c.ctx, vals["name"].strip(),
                    zone.strip() if zone else None)
    return json_response(_view(c, row, brief=True))


async def show(request: Request) -> Response:
    c = await call(request)
    row = await run(aggregates.get, c.svc, c.ctx, request.path_params["aid"])
    return json_response(_view(c, row))


async def update(request: Request) -> Response:
    c = await call(request)
    data = await body(request, {"type": "object", "properties": {"aggregate": {
        "type": "object", "properties": {"name": schemas.NAME_WITH_SPACES,
                                         "availability_zone": _ZONE},
        "additionalProperties": False}}, "required": ["aggregate"],
        "additionalProperties": False})
    changes = dict(data["aggregate"])
    if not changes:
        raise BadRequest("Invalid input for field/attribute aggregate. Value: {}. {} is not "
                         "valid under any of the given schemas")
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    row = await run(aggregates.update, c.svc, c.ctx, request.path_params["aid"], changes)
    return json_response(_view(c, row))


async def delete(request: Request) -> Response:
    c = await call(request)
    await run(aggregates.delete, c.svc, c.ctx, request.path_params["aid"])
    return empty(200)


def _host_action(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {
        "type": "object", "properties": {"host": schemas.FQDN}, "required": ["host"],
        "additionalProperties": False}}, "required": [name], "additionalProperties": False}


async def action(request: Request) -> Response:
    c = await call(request)
    data = await body(request)
    aid = request.path_params["aid"]
    if isinstance(data, dict) and "add_host" in data:
        validate(_host_action("add_host"), data)
        row = await run(aggregates.add_host, c.svc, c.ctx, aid, data["add_host"]["host"])
    elif isinstance(data, dict) and "remove_host" in data:
        validate(_host_action("remove_host"), data)
        row = await run(aggregates.remove_host, c.svc, c.ctx, aid, data["remove_host"]["host"])
    elif isinstance(data, dict) and "set_metadata" in data:
        validate({"type": "object", "properties": {"set_metadata": {
            "type": "object", "properties": {"metadata": {
                "type": "object",
                "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {
                    "type": ["string", "null"], "maxLength": 255}},
                "additionalProperties": False}},
            "required": ["metadata"], "additionalProperties": False}},
            "required": ["set_metadata"], "additionalProperties": False}, data)
        row = await run(aggregates.set_metadata, c.svc, c.ctx, aid,
                        data["set_metadata"]["metadata"])
    else:
        name = next(iter(data)) if isinstance(data, dict) and data else "None"
        raise BadRequest(f"There is no such action: {name}")
    return json_response(_view(c, row))


A = "/v2.1/os-aggregates/{aid}"

routes = [
    Route("/v2.1/os-aggregates", list_aggregates, methods=["GET"]),
    Route("/v2.1/os-aggregates", create, methods=["POST"]),
    Route(A, show, methods=["GET"]),
    Route(A, update, methods=["PUT"]),
    Route(A, delete, methods=["DELETE"]),
    Route(A + "/action", action, methods=["POST"]),
]
