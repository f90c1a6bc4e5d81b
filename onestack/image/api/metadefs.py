"""HTTP routes of the metadata definitions catalog (``/v2/metadefs``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.errors import NotFound
from onestack.common.web import empty, json_response, read_json, run
from onestack.image import metadef_schemas
from onestack.image.api._common import image_service
from onestack.image.core import ImageService
from onestack.image.service.metadefs import contents
from onestack.image.service.metadefs import namespaces as ns_service


def _svc(request: Request) -> ImageService:
    return image_service(request)


async def resource_types(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(ns_service.list_resource_types, _svc(request), ctx))


async def namespaces(request: Request) -> Response:
    ctx = await authenticate(request)
    if request.method == "POST":
        body = await read_json(request)
        return json_response(await run(ns_service.create_namespace, _svc(request), ctx, body), status=201)
    params = dict(request.query_params)
    return json_response(await run(ns_service.list_namespaces, _svc(request), ctx, params))


async def namespace(request: Request) -> Response:
    ctx = await authenticate(request)
    name = request.path_params["ns"]
    svc = _svc(request)
    if request.method == "GET":
        return json_response(await run(ns_service.show_namespace, svc, ctx, name))
    if request.method == "PUT":
        body = await read_json(request)
        return json_response(await run(ns_service.update_namespace, svc, ctx, name, body))
    await run(ns_service.delete_namespace, svc, ctx, name)
    return empty(204)


Handler = Callable[[Request], Awaitable[Response]]


def _collection(list_fn: Callable[..., Any], create_fn: Callable[..., Any],
                delete_fn: Callable[..., Any]) -> Handler:
    """A namespace's sub-collection: GET lists, POST creates (201), DELETE empties it."""

    async def handler(request: Request) -> Response:
        ctx = await authenticate(request)
        name = request.path_params["ns"]
        svc = _svc(request)
        if request.method == "GET":
            return json_response(await run(list_fn, svc, ctx, name))
        if request.method == "POST":
            body = await read_json(request)
            return json_response(await run(create_fn, svc, ctx, name, body), status=201)
        await run(delete_fn, svc, ctx, name)
        return empty(204)

    return handler


def _member(show_fn: Callable[..., Any], update_fn: Callable[..., Any],
            delete_fn: Callable[..., Any]) -> Handler:
    """One item of a namespace's sub-collection: GET, PUT (replace), DELETE."""

    async def handler(request: Request) -> Response:
        ctx = await authenticate(request)
        name, item = request.path_params["ns"], request.path_params["name"]
        svc = _svc(request)
        if request.method == "GET":
            return json_response(await run(show_fn, svc, ctx, name, item))
        if request.method == "PUT":
            body = await read_json(request)
            return json_response(await run(update_fn, svc, ctx, name, item, body))
        await run(delete_fn, svc, ctx, name, item)
        return empty(204)

    return handler


objects = _collection(contents.list_objects, contents.create_object, contents.delete_objects)
one_object = _member(contents.show_object, contents.update_object, contents.delete_object)
properties = _collection(contents.list_properties, contents.create_property,
                         contents.delete_properties)
one_property = _member(contents.show_property, contents.update_property, contents.delete_property)


async def tags(request: Request) -> Response:
    ctx = await authenticate(request)
    name = request.path_params["ns"]
    svc = _svc(request)
    if request.method == "GET":
        return json_response(await run(contents.list_tags, svc, ctx, name))
    if request.method == "POST":
        body = await read_json(request)
        append = request.headers.get("x-openstack-append", "").lower() == "true"
        return json_response(await run(contents.create_tags, svc, ctx, name, body, append), status=201)
    await run(contents.delete_tags, svc, ctx, name)
    return empty(204)


async def one_tag(request: Request) -> Response:
    ctx = await authenticate(request)
    name, tag = request.path_params["ns"], request.path_params["name"]
    svc = _svc(request)
    if request.method == "GET":
        return json_response(await run(contents.show_tag, svc, ctx, name, tag))
    if request.method == "POST":
        return json_response(await run(contents.create_tag, svc, ctx, name, tag), status=201)
    if request.method == "PUT":
        body = await read_json(request)
        return json_response(await run(contents.update_tag, svc, ctx, name, tag, body))
    await run(contents.delete_tag, svc, ctx, name, tag)
    return empty(204)


async def associations(request: Request) -> Response:
    ctx = await authenticate(request)
    name = request.path_params["ns"]
    svc = _svc(request)
    if request.method == "GET":
        return json_response(await run(contents.list_associations, svc, ctx, name))
    body = await read_json(request)
    return json_response(await run(contents.create_association, svc, ctx, name, body), status=201)


async def one_association(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(contents.delete_association, _svc(request), ctx, p["ns"], p["name"])
    return empty(204)


async def schema(request: Request) -> Response:
    await authenticate(request)
    name = request.path_params["name"]
    if name not in metadef_schemas.SCHEMAS:
        raise NotFound("The resource could not be found.")
    return json_response(metadef_schemas.SCHEMAS[name])


NS = "/v2/metadefs/namespaces/{ns}"

routes = [
    Route("/v2/metadefs/resource_types", resource_types, methods=["GET"]),
    Route("/v2/metadefs/namespaces", namespaces, methods=["GET", "POST"]),
    Route(NS, namespace, methods=["GET", "PUT", "DELETE"]),
    Route(NS + "/objects", objects, methods=["GET", "POST", "DELETE"]),
    Route(NS + "/objects/{name}", one_object, methods=["GET", "PUT", "DELETE"]),
    Route(NS + "/properties", properties, methods=["GET", "POST", "DELETE"]),
    Route(NS + "/properties/{name}", one_property, methods=["GET", "PUT", "DELETE"]),
    Route(NS + "/tags", tags, methods=["GET", "POST", "DELETE"]),
    Route(NS + "/tags/{name}", one_tag, methods=["GET", "POST", "PUT", "DELETE"]),
    Route(NS + "/resource_types", associations, methods=["GET", "POST"]),
    Route(NS + "/resource_types/{name}", one_association, methods=["DELETE"]),
    Route("/v2/schemas/metadefs/{name}", schema, methods=["GET"]),
]
