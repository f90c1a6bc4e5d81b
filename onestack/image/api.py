"""Image v2 HTTP API: parse, call the service, serialize (Glance's wire format)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.errors import (
    ApiError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    UnsupportedMediaType,
)
from onestack.common.web import empty, json_response, read_json, run
from onestack.image import metadefs_api, schemas, service
from onestack.image.data import DataSink, Received, TooLarge, pump
from onestack.image.formats import FormatError, Inspector

if TYPE_CHECKING:
    from onestack.image.core import ImageService

READ_CHUNK = 1 << 20
CURRENT = 16  # v2.16


def _svc(request: Request) -> ImageService:
    svc: ImageService = request.app.state.image
    return svc


def _versions(request: Request) -> dict[str, Any]:
    href = _svc(request).public_url + "/v2/"
    versions = []
    for minor in range(CURRENT, -1, -1):
        versions.append(
            {
                "id": f"v2.{minor}",
                "status": "CURRENT" if minor == CURRENT else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
        )
    return {"versions": versions}


async def versions_multiple(request: Request) -> Response:
    return json_response(_versions(request), status=300)


async def versions_list(request: Request) -> Response:
    return json_response(_versions(request))


# --------------------------------------------------------------------------- images


async def create_image(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    svc = _svc(request)
    image = await run(service.create_image, svc, ctx, body)
    headers = {
        "Location": f"{svc.public_url}/v2/images/{image['id']}",
        # how clients learn that interoperable import is offered (as Glance says it)
        "OpenStack-image-import-methods": ",".join(schemas.IMPORT_METHODS),
    }
    return json_response(image, status=201, headers=headers)


async def list_images(request: Request) -> Response:
    ctx = await authenticate(request)
    params = list(request.query_params.multi_items())
    return json_response(await run(service.list_images, _svc(request), ctx, params))


async def show_image(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.get_image, _svc(request), ctx, request.path_params["image_id"]))


async def update_image(request: Request) -> Response:
    ctx = await authenticate(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in service.PATCH_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type: {ctype or 'none'}. Use one of: "
            + ", ".join(service.PATCH_CONTENT_TYPES),
            headers={"Accept-Patch": ", ".join(service.PATCH_CONTENT_TYPES)},
        )
    body = await read_json(request, content_types=service.PATCH_CONTENT_TYPES)
    changes = service.parse_changes(body, v21=ctype == service.PATCH_CONTENT_TYPES[0])
    image = await run(service.update_image, _svc(request), ctx, request.path_params["image_id"], changes)
    return json_response(image)


async def delete_image(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(service.delete_image, _svc(request), ctx, request.path_params["image_id"])
    return empty(204)


async def add_tag(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(service.add_tag, _svc(request), ctx, p["image_id"], p["tag"])
    return empty(204)


async def delete_tag(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(service.delete_tag, _svc(request), ctx, p["image_id"], p["tag"])
    return empty(204)


async def deactivate(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(service.deactivate, _svc(request), ctx, request.path_params["image_id"])
    return empty(204)


async def reactivate(request: Request) -> Response:
    ctx = await authenticate(request)
    await run(service.reactivate, _svc(request), ctx, request.path_params["image_id"])
    return empty(204)


# --------------------------------------------------------------------------- data


def _octet_stream(request: Request) -> int | None:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/octet-stream":
        raise UnsupportedMediaType(f"Content-Type must be application/octet-stream, not {ctype or 'none'}.")
    length = request.headers.get("content-length")
    if length is None:
        return None
    try:
        value = int(length)
    except ValueError:
        raise BadRequest("Invalid Content-Length header.") from None
    if value < 0:
        raise BadRequest("Invalid Content-Length header.")
    return value


async def _receive(request: Request, sink: DataSink, up: service.Upload) -> Received:
    try:
        await pump(request.stream(), sink.write)
        return await run(sink.finish)
    except TooLarge:
        raise PayloadTooLarge(up.limit_message) from None
    except FormatError as exc:  # Glance: InvalidImageData -> 415
        raise UnsupportedMediaType(str(exc)) from None
    except ClientDisconnect:
        raise BadRequest("The client closed the connection before the upload completed.") from None
    except OSError as exc:
        raise ApiError(f"Error storing the image data: {exc.strerror or exc}", status=500) from None


async def upload_file(request: Request) -> Response:
    ctx = await authenticate(request)
    svc = _svc(request)
    image_id = request.path_params["image_id"]
    length = _octet_stream(request)
    up = await run(service.begin_upload, svc, ctx, image_id, length)
    sink: DataSink | None = None
    try:
        writer = await run(svc.store.writer, up.image_id)
        sink = DataSink(writer, Inspector(up.disk_format, up.container_format), up.limit)
        got = await _receive(request, sink, up)
        location = await run(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if sink is not None:
                await run(sink.abort)
            await run(service.fail_upload, svc, up)
        raise
    await run(service.finish_upload, svc, up, location, got.size, got.checksum, got.os_hash_value, got.virtual_size)
    return empty(204)


async def stage_file(request: Request) -> Response:
    ctx = await authenticate(request)
    svc = _svc(request)
    image_id = request.path_params["image_id"]
    length = _octet_stream(request)
    up = await run(service.begin_upload, svc, ctx, image_id, length, stage=True)
    sink: DataSink | None = None
    try:
        writer = await run(svc.staging.writer, up.image_id)
        sink = DataSink(writer, None, up.limit)
        await _receive(request, sink, up)
        location = await run(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if sink is not None:
                await run(sink.abort)
            await run(service.fail_upload, svc, up, stage=True)
        raise
    await run(service.finish_stage, svc, up, location)
    return empty(204)


async def import_image(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    svc = _svc(request)
    image_id = request.path_params["image_id"]
    request_id = request.scope.get("state", {}).get("request_id")
    staged, task_id = await run(service.begin_import, svc, ctx, image_id, body, request_id)
    svc.spawn(run(service.run_import, svc, image_id, staged, task_id))
    return empty(202)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """A single ``bytes=`` range as (start, end inclusive); 416 if unsatisfiable."""
    m = _RANGE.match(header.strip())
    bad = RangeNotSatisfiable(
        "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )
    if not m or (not m.group(1) and not m.group(2)):
        raise bad
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        suffix = int(m.group(2))
        if suffix == 0:
            raise bad
        start, end = max(size - suffix, 0), size - 1
    end = min(end, size - 1)
    if start > end or start >= size:
        raise bad
    return start, end


async def download_file(request: Request) -> Response:
    ctx = await authenticate(request)
    svc = _svc(request)
    got = await run(service.begin_download, svc, ctx, request.path_params["image_id"])
    if got.location is None:
        return empty(204)
    status, start, end = 200, 0, got.size - 1
    headers = {"Content-Type": "application/octet-stream"}
    range_header = request.headers.get("range")
    if range_header:
        start, end = _parse_range(range_header, got.size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{got.size}"
    elif got.checksum:
        headers["Content-MD5"] = got.checksum
    headers["Content-Length"] = str(max(end - start + 1, 0))
    try:
        fh = await run(svc.store.open, got.location)
    except FileNotFoundError:
        raise NotFound("Image data not found in the store.") from None

    async def body() -> AsyncIterator[bytes]:
        try:
            if start:
                await run(fh.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await run(fh.read, min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await run(fh.close)

    return StreamingResponse(body(), status_code=status, headers=headers)


# --------------------------------------------------------------------------- members


async def add_member(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    return json_response(await run(service.add_member, _svc(request), ctx, request.path_params["image_id"], body))


async def list_members(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.list_members, _svc(request), ctx, request.path_params["image_id"]))


async def show_member(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    return json_response(await run(service.get_member, _svc(request), ctx, p["image_id"], p["member_id"]))


async def update_member(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    p = request.path_params
    return json_response(
        await run(service.update_member, _svc(request), ctx, p["image_id"], p["member_id"], body)
    )


async def delete_member(request: Request) -> Response:
    ctx = await authenticate(request)
    p = request.path_params
    await run(service.delete_member, _svc(request), ctx, p["image_id"], p["member_id"])
    return empty(204)


# --------------------------------------------------------------------------- schemas, info


async def show_schema(request: Request) -> Response:
    await authenticate(request)
    name = request.path_params["name"]
    if name not in schemas.SCHEMAS:
        raise NotFound("The resource could not be found.")
    return json_response(schemas.SCHEMAS[name])


async def info_import(request: Request) -> Response:
    await authenticate(request)
    return json_response(service.import_info())


async def info_stores(request: Request) -> Response:
    await authenticate(request)
    return json_response(service.stores_info(_svc(request)))


async def info_usage(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.usage, _svc(request), ctx))


async def image_tasks(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.image_tasks, _svc(request), ctx, request.path_params["image_id"]))


async def list_tasks(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.list_tasks, _svc(request), ctx))


async def show_task(request: Request) -> Response:
    ctx = await authenticate(request)
    return json_response(await run(service.get_task, _svc(request), ctx, request.path_params["task_id"]))


async def create_task(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    return json_response(await run(service.create_task, _svc(request), ctx, body), status=201)


async def no_image_id(request: Request) -> Response:
    await authenticate(request)
    raise NotFound("No image found with ID ''")


IMG = "/v2/images/{image_id}"

routes = [
    Route("/", versions_multiple, methods=["GET", "HEAD"]),
    Route("/versions", versions_list, methods=["GET", "HEAD"]),
    Route("/v2", versions_multiple, methods=["GET", "HEAD"]),
    Route("/v2/", versions_multiple, methods=["GET", "HEAD"]),
    Route("/v2/images", list_images, methods=["GET"]),
    Route("/v2/images", create_image, methods=["POST"]),
    Route("/v2/images/", no_image_id, methods=["GET", "PATCH", "DELETE", "PUT", "POST"]),
    Route(IMG, show_image, methods=["GET"]),
    Route(IMG, update_image, methods=["PATCH"]),
    Route(IMG, delete_image, methods=["DELETE"]),
    Route(IMG + "/file", upload_file, methods=["PUT"]),
    Route(IMG + "/file", download_file, methods=["GET"]),
    Route(IMG + "/stage", stage_file, methods=["PUT"]),
    Route(IMG + "/import", import_image, methods=["POST"]),
    Route(IMG + "/actions/deactivate", deactivate, methods=["POST"]),
    Route(IMG + "/actions/reactivate", reactivate, methods=["POST"]),
    Route(IMG + "/tags/{tag}", add_tag, methods=["PUT"]),
    Route(IMG + "/tags/{tag}", delete_tag, methods=["DELETE"]),
    Route(IMG + "/tasks", image_tasks, methods=["GET"]),
    Route("/v2/tasks", list_tasks, methods=["GET"]),
    Route("/v2/tasks", create_task, methods=["POST"]),
    Route("/v2/tasks/{task_id}", show_task, methods=["GET"]),
    Route(IMG + "/members", list_members, methods=["GET"]),
    Route(IMG + "/members", add_member, methods=["POST"]),
    Route(IMG + "/members/{member_id}", show_member, methods=["GET"]),
    Route(IMG + "/members/{member_id}", update_member, methods=["PUT"]),
    Route(IMG + "/members/{member_id}", delete_member, methods=["DELETE"]),
    Route("/v2/schemas/{name}", show_schema, methods=["GET"]),
    Route("/v2/info/import", info_import, methods=["GET"]),
    Route("/v2/info/stores", info_stores, methods=["GET"]),
    Route("/v2/info/usage", info_usage, methods=["GET"]),
    *metadefs_api.routes,
]
