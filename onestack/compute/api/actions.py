"""``POST /servers/{id}/action``: one body key names the action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import BadRequest, Conflict, NotImplementedYet
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.api.consoles_proxy import legacy_console
from onestack.compute.api.migrations import live_migrate_action, migrate_action
from onestack.compute.api.proxies import (
    add_fixed_ip,
    add_floating_ip,
    inject_network_info,
    remove_fixed_ip,
    remove_floating_ip,
)
from onestack.compute.api.server_network import security_group_action
from onestack.compute.service import actions, actions_image, servers
from onestack.compute.validation import validate

Action = Callable[[Call, str, dict[str, Any]], Awaitable[Response]]


def _null_action(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {}}, "required": [name],
            "additionalProperties": False}


async def _reboot(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"reboot": {
        "type": "object",
        "properties": {"type": {"type": "string",
                                "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
        "required": ["type"], "additionalProperties": False}},
        "required": ["reboot"], "additionalProperties": False}, data)
    await run(actions.reboot, c.svc, c.ctx, sid, data["reboot"]["type"].upper() == "HARD")
    return empty(202)


def _simple(name: str, fn: Callable[..., None], *, schema: dict[str, Any] | None = None,
            minimum: str | None = None, status: int = 202) -> Action:
    async def act(c: Call, sid: str, data: dict[str, Any]) -> Response:
        if minimum:
            c.require(minimum)
        validate(schema or _null_action(name), data)
        await run(fn, c.svc, c.ctx, sid)
        return empty(status)

    return act


async def _lock(c: Call, sid: str, data: dict[str, Any]) -> Response:
    reason = None
    if c.at_least("2.73"):
        validate({"type": "object", "properties": {"lock": {
            "type": ["object", "null"],
            "properties": {"locked_reason": {"type": "string", "minLength": 1,
                                             "maxLength": 255}},
            "additionalProperties": False}}, "required": ["lock"],
            "additionalProperties": False}, data)
        reason = (data["lock"] or {}).get("locked_reason")
    await run(actions.lock, c.svc, c.ctx, sid, reason)
    return empty(202)


async def _reset_state(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"os-resetState": {
        "type": "object", "properties": {"state": {"type": "string",
                                                   "enum": ["active", "error"]}},
        "required": ["state"], "additionalProperties": False}},
        "required": ["os-resetState"], "additionalProperties": False}, data)
    await run(actions.reset_state, c.svc, c.ctx, sid, data["os-resetState"]["state"])
    return empty(202)


async def _force_delete(c: Call, sid: str, data: dict[str, Any]) -> Response:
    await run(servers.delete, c.svc, c.ctx, sid, force=True)
    return empty(202)


async def _restore(c: Call, sid: str, data: dict[str, Any]) -> Response:
    await run(servers.restore, c.svc, c.ctx, sid)
    return empty(202)


async def _rescue(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"rescue": {
        "type": ["object", "null"],
        "properties": {"adminPass": schemas.STRING, "rescue_image_ref": schemas.UUID},
        "additionalProperties": False}}, "required": ["rescue"],
        "additionalProperties": False}, data)
    params = data["rescue"] or {}
    await run(actions.rescue, c.svc, c.ctx, sid, params.get("rescue_image_ref"))
    from onestack.compute.api.servers import _password

    return json_response({"adminPass": params.get("adminPass") or _password()})


async def _console_output(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"os-getConsoleOutput": {
        "type": "object",
        "properties": {"length": {"type": ["integer", "string", "null"],
                                  "pattern": "^-?[0-9]+$", "minimum": -1}},
        "additionalProperties": False}}, "required": ["os-getConsoleOutput"],
        "additionalProperties": False}, data)
    length = data["os-getConsoleOutput"].get("length")
    from onestack.compute.api.consoles import console_output

    return json_response({"output": await console_output(c, sid, length)})


_REBUILD_PROPS: dict[str, Any] = {
    "name": schemas.NAME, "imageRef": schemas.UUID, "adminPass": schemas.STRING,
    "metadata": schemas.METADATA, "preserve_ephemeral": schemas.BOOLEAN,
    "OS-DCF:diskConfig": schemas.DISK_CONFIG, "accessIPv4": schemas.IPV4,
    "accessIPv6": schemas.IPV6,
}


async def _rebuild(c: Call, sid: str, data: dict[str, Any]) -> Response:
    props = dict(_REBUILD_PROPS)
    if not c.at_least("2.57"):
        props["personality"] = schemas.PERSONALITY
    if c.at_least("2.19"):
        props["description"] = schemas.DESCRIPTION
    if c.at_least("2.54"):
        props["key_name"] = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255},
                                       {"type": "null"}]}
    if c.at_least("2.57"):
        props["user_data"] = {"type": ["string", "null"], "format": "base64",
                              "maxLength": 65535}
    if c.at_least("2.63"):
        props["trusted_image_certificates"] = schemas.TRUSTED_CERTS
    if c.at_least("2.90"):
        props["hostname"] = schemas.FQDN if c.at_least("2.94") else schemas.HOSTNAME
    validate({"type": "object", "properties": {"rebuild": {
        "type": "object", "properties": props, "required": ["imageRef"],
        "additionalProperties": False}}, "required": ["rebuild"],
        "additionalProperties": False}, data)
    params = data["rebuild"]
    changes: dict[str, Any] = {}
    for key, field in (("name", "name"), ("description", "description"),
                       ("metadata", "metadata"), ("accessIPv4", "access_ip_v4"),
                       ("accessIPv6", "access_ip_v6"), ("key_name", "key_name"),
                       ("user_data", "user_data"), ("hostname", "hostname"),
                       ("trusted_image_certificates", "trusted_certs")):
        if key in params:
            changes[field] = params[key].strip() if key == "name" else params[key]
    if "personality" in params:
        changes["personality"] = [(str(f.get("path", "")), str(f.get("contents", "")))
                                  for f in params["personality"]]
    if "OS-DCF:diskConfig" in params:
        changes["auto_disk_config"] = params["OS-DCF:diskConfig"] == "AUTO"
    if changes.get("access_ip_v6"):
        from onestack.compute.api.servers import _ipv6

        changes["access_ip_v6"] = _ipv6(changes["access_ip_v6"])
    server = await run(actions_image.rebuild, c.svc, c.ctx, sid, params["imageRef"], changes)
    from onestack.compute.api.servers import _password, _view
    from onestack.compute.views import servers as views

    view = await run(_view, c, [server], groups=True)
    full = c.at_least("2.75")
    out = views.full(server, view, minimal=not full, show_user_data=False)
    if not full and c.at_least("2.54"):
        out["key_name"] = server.key_name
    out["adminPass"] = params.get("adminPass") or _password()
    if c.at_least("2.57"):
        out["user_data"] = server.user_data
    return json_response({"server": out}, 202,
                         headers={"Location": c.url(f"/servers/{server.id}")})


async def _resize(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"resize": {
        "type": "object", "properties": {"flavorRef": {"type": ["string", "integer"],
                                                       "minLength": 1},
                                         "OS-DCF:diskConfig": schemas.DISK_CONFIG},
        "required": ["flavorRef"], "additionalProperties": False}},
        "required": ["resize"], "additionalProperties": False}, data)
    disk_config = data["resize"].get("OS-DCF:diskConfig")
    await run(actions_image.resize, c.svc, c.ctx, sid, data["resize"]["flavorRef"],
              None if disk_config is None else disk_config == "AUTO")
    return empty(202)


async def _create_image(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"createImage": {
        "type": "object", "properties": {"name": schemas.NAME, "metadata": schemas.METADATA},
        "required": ["name"], "additionalProperties": False}},
        "required": ["createImage"], "additionalProperties": False}, data)
    params = data["createImage"]
    image_id = await run(actions_image.create_image, c.svc, c.ctx, sid,
                         params["name"].strip(), dict(params.get("metadata") or {}))
    if c.at_least("2.45"):
        return json_response({"image_id": image_id}, 202)
    return empty(202, headers={"Location": c.svc.settings.base_url + f"/image/v2/images/{image_id}"})


async def _create_backup(c: Call, sid: str, data: dict[str, Any]) -> Response:
    validate({"type": "object", "properties": {"createBackup": {
        "type": "object", "properties": {
            "name": schemas.NAME,
            "backup_type": {"type": "string"},
            "rotation": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0,
                         "minLength": 1},
            "metadata": schemas.METADATA},
        "required": ["name", "backup_type", "rotation"], "additionalProperties": False}},
        "required": ["createBackup"], "additionalProperties": False}, data)
    params = data["createBackup"]
    rotation = int(params["rotation"])
    image_id = await run(actions_image.create_backup, c.svc, c.ctx, sid, params["name"].strip(),
                         params["backup_type"], rotation, dict(params.get("metadata") or {}))
    if c.at_least("2.45"):
        return json_response({"image_id": image_id}, 202)
    headers = ({"Location": c.svc.settings.base_url + f"/image/v2/images/{image_id}"}
               if rotation > 0 else {})
    return empty(202, headers=headers)


async def _unshelve(c: Call, sid: str, data: dict[str, Any]) -> Response:
    zone = host = None
    if c.at_least("2.77"):
        props: dict[str, Any] = {"availability_zone": {"type": ["string", "null"]}}
        if c.at_least("2.91"):
            props["host"] = schemas.FQDN
        validate({"type": "object", "properties": {"unshelve": {
            "type": ["object", "null"], "properties": props,
            "additionalProperties": False}}, "required": ["unshelve"],
            "additionalProperties": False}, data)
        params = data["unshelve"] or {}
        zone = params.get("availability_zone")
        host = params.get("host")
    await run(actions_image.unshelve, c.svc, c.ctx, sid, zone, host)
    return empty(202)


async def _change_password(c: Call, sid: str, data: dict[str, Any]) -> Response:
    """Nova's changePassword: the host's driver sets it through the guest's
    agent while the API waits (an RPC call in Nova), 202 once it is set."""
    from onestack.compute.api.consoles import local_agent
    from onestack.compute.virt.base import (
        GuestAgentNotEnabled,
        GuestAgentUnresponsive,
        InstanceNotFound,
        InvalidInstanceState,
        VirtError,
    )

    validate({"type": "object", "properties": {"changePassword": {
        "type": "object", "properties": {"adminPass": {"type": "string"}},
        "required": ["adminPass"], "additionalProperties": False}},
        "required": ["changePassword"], "additionalProperties": False}, data)
    server_id, host, user = await run(actions.change_password_begin, c.svc, c.ctx, sid)
    failed = f"Failed to set admin password on {server_id} because "
    password = data["changePassword"]["adminPass"]
    done = None
    try:
        agent = local_agent(c, host, "guest agent")
        await agent.set_admin_password(server_id, user, password)
        done = password
    except GuestAgentNotEnabled as exc:
        raise Conflict(str(exc)) from None
    except GuestAgentUnresponsive:
        raise NotImplementedYet("Unable to set password on instance") from None
    except (InvalidInstanceState, InstanceNotFound):
        raise Conflict(failed + f"instance {server_id} is not running") from None
    except VirtError:
        raise Conflict(failed + "error setting admin password") from None
    finally:
        await run(actions.change_password_end, c.svc, server_id, done)
    return empty(202)


ACTIONS: dict[str, Action] = {
    "reboot": _reboot,
    "os-stop": _simple("os-stop", actions.stop),
    "os-start": _simple("os-start", actions.start),
    "pause": _simple("pause", actions.pause),
    "unpause": _simple("unpause", actions.unpause),
    "suspend": _simple("suspend", actions.suspend),
    "resume": _simple("resume", actions.resume),
    "lock": _lock,
    "unlock": _simple("unlock", actions.unlock),
    "os-resetState": _reset_state,
    "forceDelete": _force_delete,
    "restore": _restore,
    "rescue": _rescue,
    "unrescue": _simple("unrescue", actions.unrescue),
    "os-getConsoleOutput": _console_output,
    "rebuild": _rebuild,
    "resize": _resize,
    "confirmResize": _simple("confirmResize", actions_image.confirm_resize, status=204),
    "revertResize": _simple("revertResize", actions_image.revert_resize),
    "createImage": _create_image,
    "createBackup": _create_backup,
    "migrate": migrate_action,
    "os-migrateLive": live_migrate_action,
    "addFloatingIp": add_floating_ip,
    "addFixedIp": add_fixed_ip,
    "removeFixedIp": remove_fixed_ip,
    "removeFloatingIp": remove_floating_ip,
    "injectNetworkInfo": inject_network_info,
    "shelve": _simple("shelve", actions_image.shelve),
    "shelveOffload": _simple("shelveOffload", actions_image.shelve_offload),
    "unshelve": _unshelve,
    "changePassword": _change_password,
    "addSecurityGroup": security_group_action,
    "os-getSerialConsole": legacy_console,
    "os-getVNCConsole": legacy_console,
    "removeSecurityGroup": security_group_action,
}


async def server_action(request: Request) -> Response:
    c = await call(request)
    data = await body(request)
    sid = request.path_params["server_id"]
    if not isinstance(data, dict) or not data:
        raise BadRequest("Malformed request body")
    for name, handler in ACTIONS.items():
        if name in data:
            return await handler(c, sid, data)
    raise BadRequest(f"There is no such action: {next(iter(data))}")


routes = [Route("/v2.1/servers/{server_id}/action", server_action, methods=["POST"])]
