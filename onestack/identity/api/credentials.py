"""Keystone v3 credentials: /v3/credentials."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity.api._resources import body_of, caller, identity_of, linked, query
from onestack.identity.service import credentials as svc
from onestack.identity.wire import collection


async def list_credentials(request: Request) -> Response:
    ctx = await caller(request)
    items = await run(svc.list_credentials, identity_of(request), ctx, query(request))
    return json_response(
        collection(request, "credentials", [linked(request, "credentials", c) for c in items])
    )


async def create_credential(request: Request) -> Response:
    ctx = await caller(request)
    ref = await body_of(request, "credential")
    item = await run(svc.create_credential, identity_of(request), ctx, ref)
    return json_response({"credential": linked(request, "credentials", item)}, status=201)


async def get_credential(request: Request) -> Response:
    ctx = await caller(request)
    item = await run(svc.get_credential, identity_of(request), ctx, request.path_params["credential_id"])
    return json_response({"credential": linked(request, "credentials", item)})


async def update_credential(request: Request) -> Response:
    ctx = await caller(request)
    ref = await body_of(request, "credential")
    item = await run(
        svc.update_credential, identity_of(request), ctx, request.path_params["credential_id"], ref
    )
    return json_response({"credential": linked(request, "credentials", item)})


async def delete_credential(request: Request) -> Response:
    ctx = await caller(request)
    await run(svc.delete_credential, identity_of(request), ctx, request.path_params["credential_id"])
    return empty(204)


routes = [
    Route("/v3/credentials", list_credentials, methods=["GET"]),
    Route("/v3/credentials", create_credential, methods=["POST"]),
    Route("/v3/credentials/{credential_id}", get_credential, methods=["GET"]),
    Route("/v3/credentials/{credential_id}", update_credential, methods=["PATCH"]),
    Route("/v3/credentials/{credential_id}", delete_credential, methods=["DELETE"]),
]
