"""``/os-keypairs``: import or generate, list, show, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.pagination import nova_links
from onestack.common.web import empty, json_response, run
from onestack.compute import schemas
from onestack.compute.api._common import Call, body, call
from onestack.compute.models import KeyPair
from onestack.compute.service import keypairs
from onestack.compute.views.times import micro


def _user(c: Call) -> str | None:
    if c.at_least("2.10"):
        values = c.request.query_params.getlist("user_id")
        if values:
            return values[0]
    return None


def _view(c: Call, row: KeyPair, fields: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint,
        "user_id": row.user_id, "type": row.type, "id": row.id,
        "created_at": micro(row.created_at),
        "deleted": False, "deleted_at": None, "updated_at": None,
    }
    out = {k: values[k] for k in fields}
    if c.at_least("2.2"):
        out["type"] = row.type
    return out


async def create(request: Request) -> Response:
    c = await call(request)
    data = await body(request, schemas.keypair_create(
        c.at_least("2.2"), c.at_least("2.10"), c.at_least("2.92")))
    params = data["keypair"]
    user_id = params.get("user_id") if c.at_least("2.10") else None
    row, private = await run(keypairs.create, c.svc, c.ctx, params["name"],
                             params.get("public_key"), params.get("type", "ssh"), user_id)
    out = _view(c, row, ("name", "public_key", "fingerprint", "user_id"))
    if private is not None:
        out["private_key"] = private
    return json_response({"keypair": out}, 201 if c.at_least("2.2") else 200)


async def list_keypairs(request: Request) -> Response:
    c = await call(request)
    paged = c.at_least("2.35")
    rows, limit = await run(keypairs.list_keypairs, c.svc, c.ctx, _user(c), c.params, paged)
    out: dict[str, Any] = {"keypairs": [
        {"keypair": _view(c, r, ("name", "public_key", "fingerprint"))} for r in rows]}
    if paged:
        out.update(nova_links(c.url("/os-keypairs"), c.params, "keypairs", rows, limit,
                              id_key="name"))
    return json_response(out)


async def show(request: Request) -> Response:
    c = await call(request)
    row = await run(keypairs.get, c.svc, c.ctx, request.path_params["name"], _user(c))
    fields = ("name", "public_key", "fingerprint", "user_id", "created_at", "deleted",
              "deleted_at", "id", "updated_at")
    return json_response({"keypair": _view(c, row, fields)})


async def delete(request: Request) -> Response:
    c = await call(request)
    await run(keypairs.delete, c.svc, c.ctx, request.path_params["name"], _user(c))
    return empty(204 if c.at_least("2.2") else 202)


routes = [
    Route("/v2.1/os-keypairs", list_keypairs, methods=["GET"]),
    Route("/v2.1/os-keypairs", create, methods=["POST"]),
    Route("/v2.1/os-keypairs/{name}", show, methods=["GET"]),
    Route("/v2.1/os-keypairs/{name}", delete, methods=["DELETE"]),
]
