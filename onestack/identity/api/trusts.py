"""``/v3/OS-TRUST/trusts``: create, list, show, delete trusts and read their roles."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import identity_of, root_of
from onestack.identity.api.auth import caller
from onestack.identity.service import trusts as svc


def _role_linked(request: Request, role: dict[str, Any]) -> dict[str, Any]:
    role["links"] = wire.self_link(request, f"roles/{role['id']}")
    return role


def _linked(request: Request, trust: dict[str, Any]) -> dict[str, Any]:
    trust["links"] = wire.self_link(request, f"OS-TRUST/trusts/{trust['id']}")
    trust["roles"] = [_role_linked(request, r) for r in trust["roles"]]
    trust["roles_links"] = {"self": None, "previous": None, "next": None}
    return trust


async def create(request: Request) -> Response:
    ctx = await caller(request)
    ref = await root_of(request, "trust")
    item = await run(svc.create, identity_of(request), ctx, ref)
    return json_response({"trust": _linked(request, item)}, status=201)


async def list_(request: Request) -> Response:
    ctx = await caller(request)
    filters = {k: v for k, v in request.query_params.items() if k in ("trustor_user_id", "trustee_user_id")}
    items = await run(svc.list_trusts, identity_of(request), ctx, filters)
    return json_response(wire.collection(request, "trusts", [_linked(request, t) for t in items]))


async def show(request: Request) -> Response:
    ctx = await caller(request)
    item = await run(svc.get, identity_of(request), ctx, request.path_params["trust_id"])
    return json_response({"trust": _linked(request, item)})


async def delete(request: Request) -> Response:
    ctx = await caller(request)
    await run(svc.delete, identity_of(request), ctx, request.path_params["trust_id"])
    return empty(204)


async def roles(request: Request) -> Response:
    ctx = await caller(request)
    items = await run(svc.list_roles, identity_of(request), ctx, request.path_params["trust_id"])
    return json_response(wire.collection(request, "roles", [_role_linked(request, r) for r in items]))


async def role(request: Request) -> Response:
    ctx = await caller(request)
    p = request.path_params
    item = await run(svc.get_role, identity_of(request), ctx, p["trust_id"], p["role_id"])
    if request.method == "HEAD":
        return empty(200)
    return json_response({"role": _role_linked(request, item)})


routes = [
    Route("/v3/OS-TRUST/trusts", list_, methods=["GET", "HEAD"]),
    Route("/v3/OS-TRUST/trusts", create, methods=["POST"]),
    Route("/v3/OS-TRUST/trusts/{trust_id}", show, methods=["GET", "HEAD"]),
    Route("/v3/OS-TRUST/trusts/{trust_id}", delete, methods=["DELETE"]),
    Route("/v3/OS-TRUST/trusts/{trust_id}/roles", roles, methods=["GET", "HEAD"]),
    Route("/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", role, methods=["GET", "HEAD"]),
]
