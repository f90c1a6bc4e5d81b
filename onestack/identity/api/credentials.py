"""Keystone v3 credentials: /v3/credentials."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity.api._resources import (
    call,
    call_with_object,
    caller,
    identity_of,
    linked,
    query,
    read_json,
)
from onestack.identity.service import credentials as svc
from onestack.identity.wire import collection, self_link


async def list_credentials(request: Request) -> Response:
    items = await call(request, svc.list_credentials, query(request))
    return json_response(
        collection(request, "credentials", [linked(request, "credentials", c) for c in items])
    )


async def create_credential(request: Request) -> Response:
    item = await call_with_object(request, "credential", svc.create_credential)
    return json_response({"credential": linked(request, "credentials", item)}, status=201)


async def get_credential(request: Request) -> Response:
    item = await call(request, svc.get_credential, request.path_params["credential_id"])
    return json_response({"credential": linked(request, "credentials", item)})


async def update_credential(request: Request) -> Response:
    item = await call_with_object(request, "credential", svc.update_credential, request.path_params["credential_id"])
    return json_response({"credential": linked(request, "credentials", item)})


async def delete_credential(request: Request) -> Response:
    await call(request, svc.delete_credential, request.path_params["credential_id"])
    return empty(204)


# --- OS-EC2 -----------------------------------------------------------------------


def _ec2(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["links"] = self_link(request, f"users/{item['user_id']}/credentials/OS-EC2/{item['access']}")
    return out


async def ec2_list(request: Request) -> Response:
    items = await call(request, svc.ec2_list, request.path_params["user_id"])
    return json_response(collection(request, "credentials", [_ec2(request, c) for c in items]))


async def ec2_create(request: Request) -> Response:
    ctx = await caller(request)
    body = await read_json(request)
    item = await run(svc.ec2_create, identity_of(request), ctx, request.path_params["user_id"], body)
    return json_response({"credential": _ec2(request, item)}, status=201)


async def ec2_get(request: Request) -> Response:
    p = request.path_params
    item = await call(request, svc.ec2_get, p["user_id"], p["access"])
    return json_response({"credential": _ec2(request, item)})


async def ec2_delete(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.ec2_delete, p["user_id"], p["access"])
    return empty(204)


routes = [
    Route("/v3/users/{user_id}/credentials/OS-EC2", ec2_list, methods=["GET"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2", ec2_create, methods=["POST"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2/{access}", ec2_get, methods=["GET"]),
    Route("/v3/users/{user_id}/credentials/OS-EC2/{access}", ec2_delete, methods=["DELETE"]),
    Route("/v3/credentials", list_credentials, methods=["GET"]),
    Route("/v3/credentials", create_credential, methods=["POST"]),
    Route("/v3/credentials/{credential_id}", get_credential, methods=["GET"]),
    Route("/v3/credentials/{credential_id}", update_credential, methods=["PATCH"]),
    Route("/v3/credentials/{credential_id}", delete_credential, methods=["DELETE"]),
]
