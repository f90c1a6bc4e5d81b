"""/v3/roles, implied roles (/v3/roles/{prior}/implies/...) and /v3/role_inferences."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import (
    call,
    call_with_json,
    filters,
    identity_and_caller,
    with_link,
)
from onestack.identity.service import roles as svc


async def create_role(request: Request) -> Response:
    ref = await call_with_json(request, svc.create_role)
    return json_response({"role": with_link(request, ref, f"roles/{ref['id']}")}, 201)


async def list_roles(request: Request) -> Response:
    refs = await call(request, svc.list_roles, filters(request, ("name", "domain_id")))
    items = [with_link(request, r, f"roles/{r['id']}") for r in refs]
    return json_response(wire.collection(request, "roles", items))


async def get_role(request: Request) -> Response:
    ref = await call(request, svc.get_role, request.path_params["role_id"])
    return json_response({"role": with_link(request, ref, f"roles/{ref['id']}")})


async def update_role(request: Request) -> Response:
    ref = await call_with_json(request, svc.update_role, request.path_params["role_id"])
    return json_response({"role": with_link(request, ref, f"roles/{ref['id']}")})


async def delete_role(request: Request) -> Response:
    await call(request, svc.delete_role, request.path_params["role_id"])
    return empty()


async def implied_role(request: Request) -> Response:
    identity, ctx = await identity_and_caller(request)
    prior, implied = request.path_params["prior_id"], request.path_params["implied_id"]
    base = wire.base_url(request)
    if request.method == "PUT":
        body = await run(svc.create_implied_role, identity, ctx, prior, implied, base)
        return json_response(body, 201)
    if request.method == "DELETE":
        await run(svc.delete_implied_role, identity, ctx, prior, implied)
        return empty()
    if request.method == "HEAD":
        await run(svc.get_implied_role, identity, ctx, prior, implied, base, check_only=True)
        return empty()
    body = await run(svc.get_implied_role, identity, ctx, prior, implied, base)
    return json_response(body)


async def list_implied_roles(request: Request) -> Response:
    identity, ctx = await identity_and_caller(request)
    body = await run(
        svc.list_implied_roles,
        identity,
        ctx,
        request.path_params["prior_id"],
        wire.base_url(request),
    )
    return json_response(body)


async def list_role_inferences(request: Request) -> Response:
    identity, ctx = await identity_and_caller(request)
    return json_response(await run(svc.list_role_inferences, identity, ctx, wire.base_url(request)))


routes = [
    Route("/v3/roles", list_roles, methods=["GET", "HEAD"]),
    Route("/v3/roles", create_role, methods=["POST"]),
    Route("/v3/roles/{role_id}", get_role, methods=["GET", "HEAD"]),
    Route("/v3/roles/{role_id}", update_role, methods=["PATCH"]),
    Route("/v3/roles/{role_id}", delete_role, methods=["DELETE"]),
    Route("/v3/roles/{prior_id}/implies", list_implied_roles, methods=["GET", "HEAD"]),
    Route(
        "/v3/roles/{prior_id}/implies/{implied_id}",
        implied_role,
        methods=["GET", "HEAD", "PUT", "DELETE"],
    ),
    Route("/v3/role_inferences", list_role_inferences, methods=["GET", "HEAD"]),
]
