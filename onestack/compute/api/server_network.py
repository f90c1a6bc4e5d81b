"""``/servers/{id}/os-interface``, ``/os-security-groups``, the security
group actions, ``/os-server-password``, ``/os-volume_attachments`` and
``/os-server-external-events``."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import ApiError, NotFound
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.models import VolumeAttachment
from onestack.compute.service import interfaces, proxy_network, server_misc
from onestack.compute.validation import validate

S = "/v2.1/servers/{server_id}"


async def list_interfaces(request: Request) -> Response:
    c = await call(request)
    items = await run(interfaces.list_interfaces, c.svc, c.ctx,
                      request.path_params["server_id"], c.at_least("2.70"))
    return json_response({"interfaceAttachments": items})


async def show_interface(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    item = await run(interfaces.show_interface, c.svc, c.ctx, p["server_id"], p["port_id"],
                     c.at_least("2.70"))
    return json_response({"interfaceAttachment": item})


def _attach_schema(c: Call) -> dict[str, Any]:
    props: dict[str, Any] = {
        "net_id": schemas.UUID, "port_id": schemas.UUID,
        "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "properties": {"ip_address": schemas.IP_ADDRESS},
            "required": ["ip_address"], "additionalProperties": False}},
    }
    if c.at_least("2.49"):
        props["tag"] = schemas.TAG
    return {"type": "object", "properties": {"interfaceAttachment": {
        "type": "object", "properties": props, "additionalProperties": False}},
        "additionalProperties": False}


async def wait_task(c: Call, task_id: str, timeout: float = 60.0) -> None:
    """Wait for a host task the API answers only once done (an attach)."""
    from onestack.common.models import FINISHED, SUCCEEDED

    deadline = asyncio.get_running_loop().time() + timeout
    queue = c.svc.cloud.tasks
    while True:
        task = await run(queue.get, task_id)
        if task is None or task.state in FINISHED:
            if task is not None and task.state != SUCCEEDED:
                raise ApiError(f"Failed to attach network adapter device: {task.reason}")
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ApiError("Failed to attach network adapter device: timed out")
        await asyncio.sleep(0.02)


async def attach_interface(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _attach_schema(c)) or {}
    params = data.get("interfaceAttachment") or {}
    sid = request.path_params["server_id"]
    fixed = (params.get("fixed_ips") or [{}])[0].get("ip_address")
    port_id, task_id = await run(interfaces.attach, c.svc, c.ctx, sid,
                                 port_id=params.get("port_id"), network_id=params.get("net_id"),
                                 fixed_ip=fixed, tag=params.get("tag"))
    await wait_task(c, task_id)
    item = await run(interfaces.show_interface, c.svc, c.ctx, sid, port_id, c.at_least("2.70"))
    return json_response({"interfaceAttachment": item})


async def detach_interface(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    await run(interfaces.detach, c.svc, c.ctx, p["server_id"], p["port_id"])
    return empty(202)


async def server_security_groups(request: Request) -> Response:
    c = await call(request)
    groups = await run(proxy_network.server_groups, c.svc, c.ctx,
                       request.path_params["server_id"])
    return json_response({"security_groups": groups})


async def security_group_action(c: Call, sid: str, data: dict[str, Any]) -> Response:
    name = "addSecurityGroup" if "addSecurityGroup" in data else "removeSecurityGroup"
    validate({"type": "object", "properties": {name: {
        "type": "object", "properties": {"name": schemas.NAME}, "required": ["name"],
        "additionalProperties": False}}, "required": [name], "additionalProperties": False},
        data)
    await run(interfaces.change_security_group, c.svc, c.ctx, sid, data[name]["name"],
              name == "addSecurityGroup")
    return empty(202)


async def show_password(request: Request) -> Response:
    c = await call(request)
    value = await run(server_misc.password, c.svc, c.ctx, request.path_params["server_id"])
    return json_response({"password": value})


async def clear_password(request: Request) -> Response:
    c = await call(request)
    await run(server_misc.clear_password, c.svc, c.ctx, request.path_params["server_id"])
    return empty(204)


def _attachment(c: Call, row: VolumeAttachment) -> dict[str, Any]:
    out: dict[str, Any] = {"device": row.device, "serverId": row.server_id,
                           "volumeId": row.volume_id}
    if not c.at_least("2.89"):
        out["id"] = row.volume_id
    if c.at_least("2.70"):
        out["tag"] = row.tag
    if c.at_least("2.79"):
        out["delete_on_termination"] = row.delete_on_termination
    if c.at_least("2.89"):
        out["attachment_id"] = row.attachment_id
        out["bdm_uuid"] = row.id
    return out


async def list_volume_attachments(request: Request) -> Response:
    c = await call(request)
    rows = await run(server_misc.volume_attachments, c.svc, c.ctx,
                     request.path_params["server_id"])
    return json_response({"volumeAttachments": [_attachment(c, r) for r in rows]})


async def show_volume_attachment(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    row = await run(server_misc.volume_attachment, c.svc, c.ctx, p["server_id"], p["volume_id"])
    return json_response({"volumeAttachment": _attachment(c, row)})


async def attach_volume(request: Request) -> Response:
    c = await call(request)
    props: dict[str, Any] = {"volumeId": schemas.UUID, "device": {
        "type": ["string", "null"], "pattern": "(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$"}}
    if c.at_least("2.49"):
        props["tag"] = schemas.TAG
    if c.at_least("2.79"):
        props["delete_on_termination"] = schemas.BOOLEAN
    data = await body(request, {"type": "object", "properties": {"volumeAttachment": {
        "type": "object", "properties": props, "required": ["volumeId"],
        "additionalProperties": False}}, "required": ["volumeAttachment"],
        "additionalProperties": False})
    await run(server_misc.attach_volume, c.svc, c.ctx, request.path_params["server_id"],
              data["volumeAttachment"]["volumeId"])
    raise NotFound("unreachable")


async def change_volume_attachment(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    await run(server_misc.volume_attachment, c.svc, c.ctx, p["server_id"], p["volume_id"],
              "update")
    raise NotFound(f"volume_id not found: {p['volume_id']}")


async def detach_volume(request: Request) -> Response:
    c = await call(request)
    p = request.path_params
    await run(server_misc.volume_attachment, c.svc, c.ctx, p["server_id"], p["volume_id"],
              "delete")
    return empty(202)


_EVENTS = {"type": "object", "properties": {"events": {"type": "array", "minItems": 1, "items": {
    "type": "object",
    "properties": {
        "server_uuid": schemas.UUID,
        "name": {"type": "string", "enum": [
            "network-changed", "network-vif-plugged", "network-vif-unplugged",
            "network-vif-deleted", "volume-extended", "power-update",
            "accelerator-request-bound", "volume-reimaged"]},
        "status": {"type": "string", "enum": ["failed", "completed", "in-progress"]},
        "tag": {"type": "string", "maxLength": 255},
    },
    "required": ["server_uuid", "name"], "additionalProperties": False}}},
    "required": ["events"], "additionalProperties": False}


async def external_events(request: Request) -> Response:
    c = await call(request)
    data = await body(request, _EVENTS)
    events, found = await run(server_misc.external_events, c.svc, c.ctx, data["events"])
    if not found:
        raise NotFound("No instances found for any event")
    partial = any(e["code"] != 200 for e in events)
    return json_response({"events": events}, 207 if partial else 200)


routes = [
    Route(S + "/os-interface", list_interfaces, methods=["GET"]),
    Route(S + "/os-interface", attach_interface, methods=["POST"]),
    Route(S + "/os-interface/{port_id}", show_interface, methods=["GET"]),
    Route(S + "/os-interface/{port_id}", detach_interface, methods=["DELETE"]),
    Route(S + "/os-security-groups", server_security_groups, methods=["GET"]),
    Route(S + "/os-server-password", show_password, methods=["GET"]),
    Route(S + "/os-server-password", clear_password, methods=["DELETE"]),
    Route(S + "/os-volume_attachments", list_volume_attachments, methods=["GET"]),
    Route(S + "/os-volume_attachments", attach_volume, methods=["POST"]),
    Route(S + "/os-volume_attachments/{volume_id}", show_volume_attachment, methods=["GET"]),
    Route(S + "/os-volume_attachments/{volume_id}", change_volume_attachment,
          methods=["PUT"]),
    Route(S + "/os-volume_attachments/{volume_id}", detach_volume, methods=["DELETE"]),
    Route("/v2.1/os-server-external-events", external_events, methods=["POST"]),
]
