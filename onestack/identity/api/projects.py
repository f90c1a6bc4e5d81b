"""Keystone v3 projects: /v3/projects, hierarchy query flags, project tags."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.web import empty, json_response, query_flag, run
from onestack.identity.api._resources import (
    call,
    call_with_object,
    caller,
    identity_of,
    linked,
    query,
    root_of,
)
from onestack.identity.service import projects as svc
from onestack.identity.wire import base_url, collection


def _flag(request: Request, name: str) -> bool:
    return bool(query_flag(request, name))


def _project(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    out = linked(request, "projects", item)
    for key in ("parents", "subtree"):
        value = out.get(key)
        if isinstance(value, list):  # *_as_list: [{"project": {...}}] (free attributes left alone)
            out[key] = [
                {"project": linked(request, "projects", p["project"])}
                if isinstance(p, dict) and isinstance(p.get("project"), dict) and "id" in p["project"]
                else p
                for p in value
            ]
    return out


async def list_projects(request: Request) -> Response:
    items = await call(request, svc.list_projects, query(request))
    return json_response(collection(request, "projects", [_project(request, p) for p in items]))


async def create_project(request: Request) -> Response:
    item = await call_with_object(request, "project", svc.create_project)
    return json_response({"project": _project(request, item)}, status=201)


async def get_project(request: Request) -> Response:
    ctx = await caller(request)
    item = await run(
        svc.get_project,
        identity_of(request),
        ctx,
        request.path_params["project_id"],
        parents_as_list=_flag(request, "parents_as_list"),
        parents_as_ids=_flag(request, "parents_as_ids"),
        subtree_as_list=_flag(request, "subtree_as_list"),
        subtree_as_ids=_flag(request, "subtree_as_ids"),
    )
    return json_response({"project": _project(request, item)})


async def update_project(request: Request) -> Response:
    item = await call_with_object(request, "project", svc.update_project, request.path_params["project_id"])
    return json_response({"project": _project(request, item)})


async def delete_project(request: Request) -> Response:
    await call(request, svc.delete_project, request.path_params["project_id"])
    return empty(204)


# --- tags -------------------------------------------------------------------------


async def list_tags(request: Request) -> Response:
    tags = await call(request, svc.list_tags, request.path_params["project_id"])
    return json_response({"tags": tags})


async def replace_tags(request: Request) -> Response:
    ctx = await caller(request)
    tags = await run(svc.replace_tags, identity_of(request), ctx, request.path_params["project_id"],
                     await root_of(request, "tags"))
    return json_response({"tags": tags})


async def delete_tags(request: Request) -> Response:
    await call(request, svc.delete_all_tags, request.path_params["project_id"])
    return empty(204)


async def check_tag(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.has_tag, p["project_id"], p["tag"])
    return empty(204)


async def add_tag(request: Request) -> Response:
    p = request.path_params
    tag = await call(request, svc.add_tag, p["project_id"], p["tag"])
    # A tag may hold any character but "," and "/": percent-encoded, as a URL path must be.
    location = f"{base_url(request)}/v3/projects/{quote(p['project_id'], safe='')}/tags/{quote(tag, safe='')}"
    return empty(201, headers={"Location": location})


async def delete_tag(request: Request) -> Response:
    p = request.path_params
    await call(request, svc.delete_tag, p["project_id"], p["tag"])
    return empty(204)


routes = [
    Route("/v3/projects", list_projects, methods=["GET"]),
    Route("/v3/projects", create_project, methods=["POST"]),
    Route("/v3/projects/{project_id}", get_project, methods=["GET"]),
    Route("/v3/projects/{project_id}", update_project, methods=["PATCH"]),
    Route("/v3/projects/{project_id}", delete_project, methods=["DELETE"]),
    Route("/v3/projects/{project_id}/tags", list_tags, methods=["GET"]),
    Route("/v3/projects/{project_id}/tags", replace_tags, methods=["PUT"]),
    Route("/v3/projects/{project_id}/tags", delete_tags, methods=["DELETE"]),
    Route("/v3/projects/{project_id}/tags/{tag}", check_tag, methods=["GET"]),
    Route("/v3/projects/{project_id}/tags/{tag}", add_tag, methods=["PUT"]),
    Route("/v3/projects/{project_id}/tags/{tag}", delete_tag, methods=["DELETE"]),
]
