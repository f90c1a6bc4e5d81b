"""``/servers/{id}/metadata``, ``/tags`` and ``/os-instance-actions``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest
from onestack.common.pagination import nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import body, call
from onestack.compute.service import instance_actions, server_data

_METADATA_BODY = {"type": "object", "properties": {"metadata": schemas.METADATA},
                  "required": ["metadata"], "additionalProperties": False}
_META_ITEM_BODY = {"type": "object", "properties": {"meta": {
    **schemas.METADATA, "minProperties": 1, "maxProperties": 1}},
    "required": ["meta"], "additionalProperties": False}
_TAGS_BODY = {"type": "object", "properties": {"tags": {
    "type": "array", "items": schemas.TAG, "maxItems": server_data.MAX_TAGS}},
    "required": ["tags"], "additionalProperties": False}


async def list_metadata(request: Request) -> Response:
    c = await call(request)
    meta = await run(server_data.metadata, c.svc, c.ctx, request.path_params["server_id"])
    return json_response({"metadata": meta})


async def show_metadata(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    value = await run(server_data.metadata_item, c.svc, c.ctx, p["server_id"], p["key"])
    return json_response({"meta": {p["key"]: value}})


async def create_metadata(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _METADATA_BODY)
    meta = await run(server_data.set_metadata, c.svc, c.ctx, request.path_params["server_id"],
                     data["metadata"], replace=False, rule="create", method="update_metadata")
    return json_response({"metadata": meta})


async def replace_metadata(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _METADATA_BODY)
    meta = await run(server_data.set_metadata, c.svc, c.ctx, request.path_params["server_id"],
                     data["metadata"], replace=True, rule="update_all",
                     method="update_metadata")
    return json_response({"metadata": meta})


async def update_metadata_item(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _META_ITEM_BODY)
    p = request.path_params
    if p["key"] not in data["meta"]:
        raise BadRequest("Request body and URI mismatch")
    await run(server_data.set_metadata, c.svc, c.ctx, p["server_id"], data["meta"],
              replace=False, rule="update", method="update_metadata")
    return json_response({"meta": data["meta"]})


async def delete_metadata_item(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    await run(server_data.delete_metadata_item, c.svc, c.ctx, p["server_id"], p["key"])
    return empty(204)


async def list_tags(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    return json_response({"tags": await run(server_data.tags, c.svc, c.ctx,
                                            request.path_params["server_id"])})


async def show_tag(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    p = request.path_params
    await run(server_data.has_tag, c.svc, c.ctx, p["server_id"], p["tag"])
    return empty(204)


async def add_tag(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    p = request.path_params
    created = await run(server_data.add_tag, c.svc, c.ctx, p["server_id"], p["tag"])
    if not created:
        return empty(204)
    return empty(201, headers={"Location": c.url(f"/servers/{p['server_id']}/tags/{p['tag']}")})


async def replace_tags(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    data = await body(request, _TAGS_BODY)
    tags = await run(server_data.replace_tags, c.svc, c.ctx, request.path_params["server_id"],
                     data["tags"])
    return json_response({"tags": tags})


async def delete_tag(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    p = request.path_params
    await run(server_data.delete_tag, c.svc, c.ctx, p["server_id"], p["tag"])
    return empty(204)


async def delete_tags(request: Request) -> Response:
    c = await call(request)
    c.require("2.26")
    await run(server_data.delete_tags, c.svc, c.ctx, request.path_params["server_id"])
    return empty(204)


async def list_actions(request: Request) -> Response:
    c = await call(request)
    sid = request.path_params["server_id"]
    actions, limit = await run(instance_actions.list_actions, c.svc, c.ctx, sid, c.params,
                               c.version)
    out: dict[str, Any] = {"instanceActions": actions}
    if c.at_least("2.58"):
        links = nova_links(c.url(f"/servers/{sid}/os-instance-actions"), c.params,
                           "instanceActions", actions, limit, id_key="request_id")
        if links:
            out["links"] = links["instanceActions_links"]
    return json_response(out)


async def show_action(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    action = await run(instance_actions.show_action, c.svc, c.ctx, p["server_id"],
                       p["request_id"], c.version)
    return json_response({"instanceAction": action})


S = "/v2.1/servers/{server_id}"

routes = [
    Route(S + "/metadata", list_metadata, methods=["GET"]),
    Route(S + "/metadata", create_metadata, methods=["POST"]),
    Route(S + "/metadata", replace_metadata, methods=["PUT"]),
    Route(S + "/metadata/{key}", show_metadata, methods=["GET"]),
    Route(S + "/metadata/{key}", update_metadata_item, methods=["PUT"]),
    Route(S + "/metadata/{key}", delete_metadata_item, methods=["DELETE"]),
    Route(S + "/tags", list_tags, methods=["GET"]),
    Route(S + "/tags", replace_tags, methods=["PUT"]),
    Route(S + "/tags", delete_tags, methods=["DELETE"]),
    Route(S + "/tags/{tag}", show_tag, methods=["GET"]),
    Route(S + "/tags/{tag}", add_tag, methods=["PUT"]),
    Route(S + "/tags/{tag}", delete_tag, methods=["DELETE"]),
    Route(S + "/os-instance-actions", list_actions, methods=["GET"]),
    Route(S + "/os-instance-actions/{request_id}", show_action, methods=["GET"]),
]
