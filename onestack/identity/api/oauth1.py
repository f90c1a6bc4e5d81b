"""OS-OAUTH1: consumers, request/access tokens, and a user's access tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, run
from onestack.identity import wire
from onestack.identity.api._resources import call, call_with_root, read_json
from onestack.identity.service import oauth1 as svc

OA = "/v3/OS-OAUTH1"
FORM = "application/x-www-form-urlencoded"




def _consumer(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"OS-OAUTH1/consumers/{body['id']}")}


def _access_token(request: Request, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    base = wire.self_link(request, f"users/{user_id}/OS-OAUTH1/access_tokens/{body['id']}")["self"]
    return {**body, "links": {"self": base, "roles": f"{base}/roles"}}


def _role(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"roles/{body['id']}")}


# --- consumers -------------------------------------------------------------------------


async def consumers(request: Request) -> Response:
    if request.method == "POST":
        consumer = await call_with_root(request, "consumer", svc.create_consumer)
        return json_response({"consumer": _consumer(request, consumer)}, status=201)
    items = await call(request, svc.list_consumers)
    return json_response(wire.collection(request, "consumers", [_consumer(request, c) for c in items]))


async def consumer(request: Request) -> Response:
    consumer_id = request.path_params["consumer_id"]
    if request.method == "PATCH":
        body = await call_with_root(request, "consumer", svc.update_consumer, consumer_id)
        return json_response({"consumer": _consumer(request, body)})
    if request.method == "DELETE":
        await call(request, svc.delete_consumer, consumer_id)
        return empty(204)
    body = await call(request, svc.get_consumer, consumer_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"consumer": _consumer(request, body)})


# --- the OAuth dance ---------------------------------------------------------------------


async def request_token(request: Request) -> Response:
    values = await run(svc.create_request_token, request.app.state.identity, request)
    return Response(svc.form(values), status_code=201, media_type=FORM)


async def access_token(request: Request) -> Response:
    values = await run(svc.create_access_token, request.app.state.identity, request)
    return Response(svc.form(values), status_code=201, media_type=FORM)


async def authorize(request: Request) -> Response:
    body = await read_json(request)
    result = await call(request, svc.authorize_request_token, request.path_params["request_token_id"], body)
    return json_response({"token": result})


# --- a user's access tokens ----------------------------------------------------------------


async def user_access_tokens(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    items = await call(request, svc.list_access_tokens, user_id)
    return json_response(
        wire.collection(request, "access_tokens", [_access_token(request, user_id, t) for t in items])
    )


async def user_access_token(request: Request) -> Response:
    user_id, token_id = request.path_params["user_id"], request.path_params["access_token_id"]
    if request.method == "DELETE":
        await call(request, svc.delete_access_token, user_id, token_id)
        return empty(204)
    body = await call(request, svc.get_access_token, user_id, token_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"access_token": _access_token(request, user_id, body)})


async def access_token_roles(request: Request) -> Response:
    user_id, token_id = request.path_params["user_id"], request.path_params["access_token_id"]
    items = await call(request, svc.list_access_token_roles, user_id, token_id)
    return json_response(wire.collection(request, "roles", [_role(request, r) for r in items]))


async def access_token_role(request: Request) -> Response:
    params = request.path_params
    body = await call(request, svc.get_access_token_role, params["user_id"], params["access_token_id"],
                       params["role_id"])
    if request.method == "HEAD":
        return empty(200)
    return json_response({"role": _role(request, body)})


_UAT = "/v3/users/{user_id}/OS-OAUTH1/access_tokens"

routes = [
    Route(f"{OA}/consumers", consumers, methods=["GET", "HEAD", "POST"]),
    Route(f"{OA}/consumers/{{consumer_id}}", consumer, methods=["GET", "HEAD", "PATCH", "DELETE"]),
    Route(f"{OA}/request_token", request_token, methods=["POST"]),
    Route(f"{OA}/access_token", access_token, methods=["POST"]),
    Route(f"{OA}/authorize/{{request_token_id}}", authorize, methods=["PUT"]),
    Route(_UAT, user_access_tokens, methods=["GET", "HEAD"]),
    Route(f"{_UAT}/{{access_token_id}}", user_access_token, methods=["GET", "HEAD", "DELETE"]),
    Route(f"{_UAT}/{{access_token_id}}/roles", access_token_roles, methods=["GET", "HEAD"]),
    Route(f"{_UAT}/{{access_token_id}}/roles/{{role_id}}", access_token_role, methods=["GET", "HEAD"]),
]
