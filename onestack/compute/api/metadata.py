"""The metadata service (``/compute/metadata/...``): what Networking's
metadata proxy forwards a guest's ``http://169.254.169.254/...`` to, with
the signed instance headers. Answers are plain text (directory listings one
entry a line) or JSON files; errors are webob's plain text, as Nova's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import ApiError
from onestack.common.web import run
from onestack.compute.api._common import compute
from onestack.compute.service import metadata_service

_PASSWORD_PATHS = ("/password",)


def _caller(request: Request) -> metadata_service.Caller:
    h = request.headers
    return metadata_service.Caller(h.get("x-instance-id"), h.get("x-tenant-id"),
                                   h.get("x-instance-id-signature"))


def _error(exc: ApiError) -> Response:
    text = f"{exc.status} {exc.title}\n\n{exc.message}\n\n"
    return Response(text, status_code=exc.status, media_type="text/plain")


async def metadata(request: Request) -> Response:
    svc = compute(request)
    path = "/" + request.path_params.get("path", "")
    try:
        if request.method == "POST":
            if not (path.startswith("/openstack/") and path.rstrip("/").endswith("/password")):
                return _error(ApiError("GET and POST only are supported.", status=400))
            body = await request.body()
            await run(metadata_service.post_password, svc, _caller(request), body)
            return Response(b"", status_code=200, media_type="text/plain")
        found = await run(metadata_service.lookup, svc, _caller(request), path)
    except ApiError as exc:
        return _error(exc)
    if found is None:
        return _error(ApiError("The resource could not be found.", status=404))
    if isinstance(found, list):
        return Response("\n".join(found), media_type="text/plain")
    media = "application/json" if path.endswith(".json") else "text/plain"
    return Response(found, media_type=media)


routes = [
    Route("/metadata/{path:path}", metadata, methods=["GET", "POST"]),
    Route("/metadata", metadata, methods=["GET"]),
]
