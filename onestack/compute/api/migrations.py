"""``/os-migrations``, ``/servers/{id}/migrations``, the ``migrate`` and
``os-migrateLive`` actions, and ``/servers/{id}/diagnostics``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.pagination import nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, call
from onestack.compute.service import migrations, server_misc
from onestack.compute.validation import validate

_HOST = {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
         "pattern": "^[a-zA-Z0-9-._]*$"}


async def list_migrations(request: Request) -> Response:
    c = await call(request)
    rows, limit = await run(migrations.list_migrations, c.svc, c.ctx, c.params, c.version)
    out: dict[str, Any] = {"migrations": rows}
    if c.at_least("2.59"):
        out.update(nova_links(c.url("/os-migrations"), c.params, "migrations", rows, limit,
                              id_key="uuid"))
    return json_response(out)


async def server_migrations(request: Request) -> Response:
    c = await call(request)
    c.require("2.23")
    found = await run(migrations.server_migrations, c.svc, c.ctx,
                      request.path_params["server_id"])
    return json_response({"migrations": found})


def _one(rule: str, minimum: str) -> Any:
    async def handler(request: Request) -> Response:
        c = await call(request)
        c.require(minimum)
        p = request.path_params
        await run(migrations.server_migration, c.svc, c.ctx, p["server_id"], p["mid"], rule)
        raise AssertionError  # unreachable: no live migration is ever in progress

    return handler


async def diagnostics(request: Request) -> Response:
    """The guest's counters, read from the driver of the server's host (this
    process's compute agent)."""
    from onestack.compute.api.consoles import local_agent
    from onestack.compute.virt.base import InstanceNotFound, InvalidInstanceState

    c = await call(request)
    server = await run(server_misc.diagnostics_target, c.svc, c.ctx,
                       request.path_params["server_id"])
    agent = local_agent(c, server.host, "diagnostics")
    try:
        found = await agent.diagnostics(server.id)
    except (InvalidInstanceState, InstanceNotFound):
        raise server_misc.not_running(server) from None
    return json_response(server_misc.diagnostics_view(server, found, c.at_least("2.48")))


# --- actions ---------------------------------------------------------------------------


async def migrate_action(c: Call, sid: str, data: dict[str, Any]) -> Response:
    host = None
    if c.at_least("2.56"):
        validate({"type": "object", "properties": {"migrate": {
            "type": ["object", "null"], "properties": {"host": _HOST},
            "additionalProperties": False}}, "required": ["migrate"],
            "additionalProperties": False}, data)
        host = (data["migrate"] or {}).get("host")
    await run(migrations.migrate, c.svc, c.ctx, sid, host)
    return empty(202)


async def live_migrate_action(c: Call, sid: str, data: dict[str, Any]) -> Response:
    props: dict[str, Any] = {"host": _HOST}
    required = ["block_migration", "host"]
    if c.at_least("2.25"):
        props["block_migration"] = {"oneOf": [schemas.BOOLEAN,
                                              {"type": "string", "enum": ["auto"]}]}
    else:
        props["block_migration"] = schemas.BOOLEAN
        props["disk_over_commit"] = schemas.BOOLEAN
        required.append("disk_over_commit")
    if c.at_least("2.30") and not c.at_least("2.68"):
        props["force"] = schemas.BOOLEAN
    validate({"type": "object", "properties": {"os-migrateLive": {
        "type": "object", "properties": props, "required": required,
        "additionalProperties": False}}, "required": ["os-migrateLive"],
        "additionalProperties": False}, data)
    await run(migrations.live_migrate, c.svc, c.ctx, sid, data["os-migrateLive"].get("host"))
    return empty(202)


S = "/v2.1/servers/{server_id}"

routes = [
    Route("/v2.1/os-migrations", list_migrations, methods=["GET"]),
    Route(S + "/migrations", server_migrations, methods=["GET"]),
    Route(S + "/migrations/{mid}", _one("show", "2.23"), methods=["GET"]),
    Route(S + "/migrations/{mid}", _one("delete", "2.24"), methods=["DELETE"]),
    Route(S + "/migrations/{mid}/action", _one("force_complete", "2.22"), methods=["POST"]),
    Route(S + "/diagnostics", diagnostics, methods=["GET"]),
]
