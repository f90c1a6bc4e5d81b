"""Image data over HTTP: upload, stage, import and download (with ranges)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from onestack.common.auth import authenticate
from onestack.common.errors import (
    BadRequest,
    NotFound,
    RangeNotSatisfiable,
    UnsupportedMediaType,
)
from onestack.common.web import empty, read_json, run
from onestack.image.api._common import IMG, image_service
from onestack.image.service import imports, upload

READ_CHUNK = 1 << 20


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


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body; a client gone before its end is Glance's 400."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BadRequest("The client closed the connection before the upload completed.") from None


async def upload_file(request: Request) -> Response:
    ctx = await authenticate(request)
    length = _octet_stream(request)
    await upload.upload_image_data(
        image_service(request), ctx, request.path_params["image_id"], _body(request), size=length
    )
    return empty(204)


async def stage_file(request: Request) -> Response:
    ctx = await authenticate(request)
    length = _octet_stream(request)
    await upload.stage_image_data(
        image_service(request), ctx, request.path_params["image_id"], _body(request), size=length
    )
    return empty(204)


async def import_image(request: Request) -> Response:
    ctx = await authenticate(request)
    body = await read_json(request)
    svc = image_service(request)
    image_id = request.path_params["image_id"]
    request_id = request.scope.get("state", {}).get("request_id")
    await run(imports.begin_import, svc, ctx, image_id, body, request_id)
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
    svc = image_service(request)
    got = await run(upload.begin_download, svc, ctx, request.path_params["image_id"])
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


routes = [
    Route(IMG + "/file", upload_file, methods=["PUT"]),
    Route(IMG + "/file", download_file, methods=["GET"]),
    Route(IMG + "/stage", stage_file, methods=["PUT"]),
    Route(IMG + "/import", import_image, methods=["POST"]),
]
