"""OS-EP-FILTER: project/endpoint associations and endpoint groups."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response
from onestack.identity import wire
from onestack.identity.api._resources import call, call_with_root
from onestack.identity.service import endpoint_filter as svc

EP = "/v3/OS-EP-FILTER"




def _endpoint(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"endpoints/{body['id']}")}


def _project(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"projects/{body['id']}")}


def _group(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "links": wire.self_link(request, f"OS-EP-FILTER/endpoint_groups/{body['id']}")}


def _p(request: Request, name: str) -> str:
    return str(request.path_params[name])


# --- projects <-> endpoints -------------------------------------------------------


async def project_endpoint(request: Request) -> Response:
    project_id, endpoint_id = _p(request, "project_id"), _p(request, "endpoint_id")
    if request.method == "PUT":
        await call(request, svc.add_endpoint_to_project, project_id, endpoint_id)
    elif request.method == "DELETE":
        await call(request, svc.remove_endpoint_from_project, project_id, endpoint_id)
    else:
        await call(request, svc.check_endpoint_in_project, project_id, endpoint_id)
    return empty(204)


async def project_endpoints(request: Request) -> Response:
    items = await call(request, svc.list_endpoints_for_project, _p(request, "project_id"))
    return json_response(wire.collection(request, "endpoints", [_endpoint(request, e) for e in items]))


async def endpoint_projects(request: Request) -> Response:
    items = await call(request, svc.list_projects_for_endpoint, _p(request, "endpoint_id"))
    return json_response(wire.collection(request, "projects", [_project(request, p) for p in items]))


# --- endpoint groups ---------------------------------------------------------------


async def endpoint_groups(request: Request) -> Response:
    if request.method == "POST":
        group = await call_with_root(request, "endpoint_group", svc.create_endpoint_group)
        return json_response({"endpoint_group": _group(request, group)}, status=201)
    items = await call(request, svc.list_endpoint_groups, request.query_params.get("name"))
    return json_response(wire.collection(request, "endpoint_groups", [_group(request, g) for g in items]))


async def endpoint_group(request: Request) -> Response:
    group_id = _p(request, "group_id")
    if request.method == "PATCH":
        group = await call_with_root(request, "endpoint_group", svc.update_endpoint_group, group_id)
        return json_response({"endpoint_group": _group(request, group)})
    if request.method == "DELETE":
        await call(request, svc.delete_endpoint_group, group_id)
        return empty(204)
    group = await call(request, svc.get_endpoint_group, group_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"endpoint_group": _group(request, group)})


async def group_project(request: Request) -> Response:
    group_id, project_id = _p(request, "group_id"), _p(request, "project_id")
    if request.method == "PUT":
        await call(request, svc.add_group_to_project, group_id, project_id)
        return empty(204)
    if request.method == "DELETE":
        await call(request, svc.remove_group_from_project, group_id, project_id)
        return empty(204)
    project = await call(request, svc.get_group_in_project, group_id, project_id)
    if request.method == "HEAD":
        return empty(200)
    return json_response({"project": _project(request, project)})


async def group_projects(request: Request) -> Response:
    items = await call(request, svc.list_projects_for_group, _p(request, "group_id"))
    return json_response(wire.collection(request, "projects", [_project(request, p) for p in items]))


async def group_endpoints(request: Request) -> Response:
    items = await call(request, svc.list_endpoints_for_group, _p(request, "group_id"))
    return json_response(wire.collection(request, "endpoints", [_endpoint(request, e) for e in items]))


async def project_groups(request: Request) -> Response:
    items = await call(request, svc.list_groups_for_project, _p(request, "project_id"))
    return json_response(wire.collection(request, "endpoint_groups", [_group(request, g) for g in items]))


routes = [
    Route(f"{EP}/projects/{{project_id}}/endpoints/{{endpoint_id}}", project_endpoint,
          methods=["PUT", "GET", "HEAD", "DELETE"]),
    Route(f"{EP}/projects/{{project_id}}/endpoints", project_endpoints, methods=["GET", "HEAD"]),
    Route(f"{EP}/endpoints/{{endpoint_id}}/projects", endpoint_projects, methods=["GET", "HEAD"]),
    Route(f"{EP}/endpoint_groups", endpoint_groups, methods=["GET", "HEAD", "POST"]),
    Route(f"{EP}/endpoint_groups/{{group_id}}", endpoint_group, methods=["GET", "HEAD", "PATCH", "DELETE"]),
    Route(f"{EP}/endpoint_groups/{{group_id}}/projects/{{project_id}}", group_project,
          methods=["PUT", "GET", "HEAD", "DELETE"]),
    Route(f"{EP}/endpoint_groups/{{group_id}}/projects", group_projects, methods=["GET", "HEAD"]),
    Route(f"{EP}/endpoint_groups/{{group_id}}/endpoints", group_endpoints, methods=["GET", "HEAD"]),
    Route(f"{EP}/projects/{{project_id}}/endpoint_groups", project_groups, methods=["GET", "HEAD"]),
]
