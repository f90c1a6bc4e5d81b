"""``/os-server-groups``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.pagination import parse_int_param
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.service import groups
from onestack.compute.validation import validate_query

_POLICIES = ["anti-affinity", "affinity"]
_SOFT = ["soft-anti-affinity", "soft-affinity"]


def _schema(c: Call) -> dict[str, Any]:
    props: dict[str, Any] = {"name": schemas.NAME}
    if c.at_least("2.64"):
        props["policy"] = {"type": "string", "enum": _POLICIES + _SOFT}
        props["rules"] = {"type": "object",
                          "properties": {"max_server_per_host": schemas.POSITIVE_INTEGER},
                          "additionalProperties": False}
        required = ["name", "policy"]
    else:
        allowed = _POLICIES + (_SOFT if c.at_least("2.15") else [])
        props["policies"] = {"type": "array", "items": {"type": "string", "enum": allowed},
                             "uniqueItems": True, "minItems": 1, "maxItems": 1}
        required = ["name", "policies"]
    return {"type": "object", "properties": {"server_group": {
        "type": "object", "properties": props, "required": required,
        "additionalProperties": False}}, "required": ["server_group"],
        "additionalProperties": False}


def _view(c: Call, group: Any, members: list[str]) -> dict[str, Any]:
    return groups.view(group, members, v264=c.at_least("2.64"), v213=c.at_least("2.13"))


async def create(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _schema(c))
    vals = data["server_group"]
    policy = vals["policy"] if c.at_least("2.64") else vals["policies"][0]
    group = await run(groups.create, c.svc, c.ctx, vals["name"].strip(), policy,
                      dict(vals.get("rules") or {}))
    return json_response({"server_group": _view(c, group, [])})


async def list_groups(request: Request) -> Response:
    c = await call(request)
    validate_query(c.params, {"all_projects": schemas.STRING,
                              "limit": schemas.NON_NEGATIVE_INTEGER,
                              "offset": schemas.NON_NEGATIVE_INTEGER},
                   additional=not c.at_least("2.75"))
    limit = parse_int_param("limit", c.params.get("limit"))
    offset = parse_int_param("offset", c.params.get("offset")) or 0
    found = await run(groups.list_groups, c.svc, c.ctx, "all_projects" in c.params, limit,
                      offset)
    return json_response({"server_groups": [_view(c, g, m) for g, m in found]})


async def show(request: Request) -> Response:
    c = await call(request)
    group, members = await run(groups.get, c.svc, c.ctx, request.path_params["group_id"])
    return json_response({"server_group": _view(c, group, members)})


async def delete(request: Request) -> Response:
    c = await call(request)
    await run(groups.delete_group, c.svc, c.ctx, request.path_params["group_id"])
    return empty(204)


routes = [
    Route("/v2.1/os-server-groups", list_groups, methods=["GET"]),
    Route("/v2.1/os-server-groups", create, methods=["POST"]),
    Route("/v2.1/os-server-groups/{group_id}", show, methods=["GET"]),
    Route("/v2.1/os-server-groups/{group_id}", delete, methods=["DELETE"]),
]
