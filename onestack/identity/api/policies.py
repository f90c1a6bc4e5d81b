"""``/v3/policies`` and OS-ENDPOINT-POLICY."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response
from onestack.identity import wire
from onestack.identity.api._resources import call, call_with_root
from onestack.identity.service import policies as svc

EPP = "OS-ENDPOINT-POLICY"




def _policy(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"policies/{body['id']}")}


async def policies(request: Request) -> Response:
    if request.method == "POST":
        policy = await call_with_root(request, "policy", svc.create_policy)
        return json_response({"policy": _policy(request, policy)}, status=201)
    items = await call(request, svc.list_policies, request.query_params.get("type"))
    return json_response(wire.collection(request, "policies", [_policy(request, p) for p in items]))


async def policy(request: Request) -> Response:
    policy_id = request.path_params["policy_id"]
    if request.method == "PATCH":
        body = await call_with_root(request, "policy", svc.update_policy, policy_id)
        return json_response({"policy": _policy(request, body)})
    if request.method == "DELETE":
        await call(request, svc.delete_policy, policy_id)
        return empty(204)
    body = await call(request, svc.get_policy, policy_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"policy": _policy(request, body)})


async def association(request: Request) -> Response:
    params = request.path_params
    target = {
        "endpoint_id": params.get("endpoint_id"),
        "service_id": params.get("service_id"),
        "region_id": params.get("region_id"),
    }
    fn = {"PUT": svc.create_association, "DELETE": svc.delete_association}.get(
        request.method, svc.check_association
    )
    await call(request, fn, params["policy_id"], **target)
    return empty(204)


async def policy_endpoints(request: Request) -> Response:
    items = await call(request, svc.list_endpoints_for_policy, request.path_params["policy_id"])
    links = [{**e, "links": wire.self_link(request, f"endpoints/{e['id']}")} for e in items]
    return json_response(wire.collection(request, "endpoints", links))


async def endpoint_policy(request: Request) -> Response:
    body = await call(request, svc.get_policy_for_endpoint, request.path_params["endpoint_id"])
    if request.method == "HEAD":
        return empty(200)
    return json_response({"policy": _policy(request, body)})


_ASSOC = ["PUT", "GET", "HEAD", "DELETE"]

routes = [
    Route("/v3/policies", policies, methods=["GET", "HEAD", "POST"]),
    Route("/v3/policies/{policy_id}", policy, methods=["GET", "HEAD", "PATCH", "DELETE"]),
    Route(f"/v3/policies/{{policy_id}}/{EPP}/endpoints/{{endpoint_id}}", association, methods=_ASSOC),
    Route(f"/v3/policies/{{policy_id}}/{EPP}/services/{{service_id}}", association, methods=_ASSOC),
    Route(f"/v3/policies/{{policy_id}}/{EPP}/services/{{service_id}}/regions/{{region_id}}", association,
          methods=_ASSOC),
    Route(f"/v3/policies/{{policy_id}}/{EPP}/endpoints", policy_endpoints, methods=["GET", "HEAD"]),
    Route(f"/v3/endpoints/{{endpoint_id}}/{EPP}/policy", endpoint_policy, methods=["GET", "HEAD"]),
]
