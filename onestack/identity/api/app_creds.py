"""``/v3/users/{user_id}/application_credentials`` and ``/access_rules``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import identity_of, root_of
from onestack.identity.api.auth import caller
from onestack.identity.service import app_creds as svc


def _linked(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    item["links"] = wire.self_link(
        request, f"users/{item['user_id']}/application_credentials/{item['id']}"
    )
    return item


async def create(request: Request) -> Response:
    ctx = await caller(request)
    ref = await root_of(request, "application_credential")
    item = await run(svc.create, identity_of(request), ctx, request.path_params["user_id"], ref)
    return json_response({"application_credential": _linked(request, item)}, status=201)


async def list_(request: Request) -> Response:
    ctx = await caller(request)
    user_id = request.path_params["user_id"]
    items = await run(svc.list_for_user, identity_of(request), ctx, user_id, request.query_params.get("name"))
    return json_response(
        wire.collection(request, "application_credentials", [_linked(request, i) for i in items])
    )


async def show(request: Request) -> Response:
    ctx = await caller(request)
    p = request.path_params
    item = await run(svc.get, identity_of(request), ctx, p["user_id"], p["app_cred_id"])
    return json_response({"application_credential": _linked(request, item)})


async def delete(request: Request) -> Response:
    ctx = await caller(request)
    p = request.path_params
    await run(svc.delete, identity_of(request), ctx, p["user_id"], p["app_cred_id"])
    return empty(204)


def _rule_linked(request: Request, user_id: str, rule: dict[str, Any]) -> dict[str, Any]:
    rule["links"] = wire.self_link(request, f"users/{user_id}/access_rules/{rule['id']}")
    return rule


async def list_rules(request: Request) -> Response:
    ctx = await caller(request)
    user_id = request.path_params["user_id"]
    filters = {k: v for k, v in request.query_params.items() if k in ("service", "path", "method")}
    items = await run(svc.list_access_rules, identity_of(request), ctx, user_id, filters)
    return json_response(
        wire.collection(request, "access_rules", [_rule_linked(request, user_id, r) for r in items])
    )


async def show_rule(request: Request) -> Response:
    ctx = await caller(request)
    p = request.path_params
    item = await run(svc.get_access_rule, identity_of(request), ctx, p["user_id"], p["rule_id"])
    return json_response({"access_rule": _rule_linked(request, p["user_id"], item)})


async def delete_rule(request: Request) -> Response:
    ctx = await caller(request)
    p = request.path_params
    await run(svc.delete_access_rule, identity_of(request), ctx, p["user_id"], p["rule_id"])
    return empty(204)


routes = [
    Route("/v3/users/{user_id}/application_credentials", list_, methods=["GET", "HEAD"]),
    Route("/v3/users/{user_id}/application_credentials", create, methods=["POST"]),
    Route("/v3/users/{user_id}/application_credentials/{app_cred_id}", show, methods=["GET", "HEAD"]),
    Route("/v3/users/{user_id}/application_credentials/{app_cred_id}", delete, methods=["DELETE"]),
    Route("/v3/users/{user_id}/access_rules", list_rules, methods=["GET", "HEAD"]),
    Route("/v3/users/{user_id}/access_rules/{rule_id}", show_rule, methods=["GET", "HEAD"]),
    Route("/v3/users/{user_id}/access_rules/{rule_id}", delete_rule, methods=["DELETE"]),
]
