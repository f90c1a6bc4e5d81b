"""What every compute API module needs: the caller, the microversion, the
service object, links, and the body of the request checked against a schema.

The microversion is negotiated once per request by :class:`VersionMiddleware`
(``OpenStack-API-Version: compute 2.x`` or ``X-OpenStack-Nova-API-Version``),
which also answers every ``/v2.1`` response with the version headers and
takes an optional project id out of the path (``/v2.1/{project_id}/servers``,
as Nova's router accepts it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onestack.common.auth import AuthContext, authenticate
from onestack.common.errors import ApiError, BadRequest
from onestack.common.microversions import APIVersion, require
from onestack.common.web import nova_error, read_json
from onestack.compute.core import ComputeService
from onestack.compute.validation import Schema, validate

V21 = "/v2.1"
V20 = "/v2"
# No resource of /v2.1 is named like this: such a first segment is a project id.
_PROJECT_SEGMENT = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F-]{36}$")
_VERSION_KEY = "compute_version"
_PROJECT_KEY = "compute_url_project"


class VersionMiddleware:
    """Negotiates the microversion of ``/v2.1`` requests and adds the headers."""

    def __init__(self, app: ASGIApp, svc: ComputeService) -> None:
        self.app = app
        self.svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        root: str = scope.get("root_path", "")
        full: str = scope["path"]
        path = full[len(root):] if root and full.startswith(root) else full
        legacy = path.startswith(V20 + "/") and len(path) > len(V20) + 1
        if legacy:
            # The v2.0 API is v2.1 at its minimum microversion, without headers.
            scope = dict(scope)
            prefix = full[: len(full) - len(path)]
            path = V21 + path[len(V20):]
            scope["path"] = prefix + path
            full = scope["path"]
        if not (path == V21 or path.startswith(V21 + "/")):
            await self.app(scope, receive, send)
            return
        versions = self.svc.versions
        state = scope.setdefault("state", {})
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            version = versions.min_version if legacy else versions.negotiate(headers)
        except ApiError as exc:
            exc.headers.update(versions.response_headers())
            if scope["type"] == "http":
                await nova_error(exc)(scope, receive, send)
            return
        state[_VERSION_KEY] = version
        rest = path[len(V21):]
        parts = rest.split("/", 2)
        if len(parts) >= 2 and _PROJECT_SEGMENT.match(parts[1]):
            state[_PROJECT_KEY] = parts[1]
            scope = dict(scope)
            scope["path"] = full[: len(full) - len(path)] + V21 + (
                "/" + parts[2] if len(parts) > 2 else "")
        extra = [] if legacy else [(k.lower().encode(), v.encode())
                                   for k, v in versions.response_headers(version).items()]
        request_id = state.get("request_id")
        if request_id:  # Nova answers with its older header too
            extra.append((b"x-compute-request-id", request_id.encode()))

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_version)


def version(request: Request) -> APIVersion:
    found: APIVersion | None = request.scope.get("state", {}).get(_VERSION_KEY)
    if found is None:
        return compute(request).versions.min_version
    return found


def compute(request: Request) -> ComputeService:
    svc: ComputeService = request.app.state.compute
    return svc


@dataclass(frozen=True)
class Call:
    """One API call: who, at which microversion, against which service."""

    svc: ComputeService
    ctx: AuthContext
    version: APIVersion
    request: Request

    def at_least(self, minimum: str) -> bool:
        return self.version.matches(minimum)

    def require(self, minimum: str, maximum: str | None = None) -> None:
        """404 (Nova's VersionNotFoundForMethod) outside ``minimum..maximum``."""
        require(self.version, minimum, maximum)

    @property
    def params(self) -> Any:
        return self.request.query_params

    @cached_property
    def _url_base(self) -> str:
        return self.svc.public_url

    @cached_property
    def _bookmark_base(self) -> str:
        return self.svc.settings.base_url + self.svc.prefix

    def url(self, path: str) -> str:
        """The full URL of ``path`` (``/servers/x``) under ``/v2.1``."""
        return self._url_base + path

    def bookmark(self, path: str) -> str:
        return self._bookmark_base + path

    def links(self, collection: str, item_id: str) -> list[dict[str, str]]:
        # built for every item of a list: the two bases are read once per call
        tail = f"/{collection}/{item_id}"
        return [
            {"rel": "self", "href": self._url_base + tail},
            {"rel": "bookmark", "href": self._bookmark_base + tail},
        ]


async def call(request: Request) -> Call:
    ctx = await authenticate(request)
    url_project = request.scope.get("state", {}).get(_PROJECT_KEY)
    if url_project is not None and url_project != ctx.project_id:
        raise BadRequest(
            f"Malformed request URL: URL's project_id '{url_project}' doesn't match "
            f"Context's project_id '{ctx.project_id}'"
        )
    from onestack.compute.service._common import REQUEST_ID

    REQUEST_ID.set(request.scope.get("state", {}).get("request_id", ""))
    return Call(compute(request), ctx, version(request), request)


async def body(request: Request, schema: Schema | None = None) -> Any:
    """The JSON body (Nova's 400 for a malformed one), checked against ``schema``."""
    try:
        data = await read_json(request, required=False)
    except BadRequest:
        raise BadRequest("Malformed request body") from None
    if schema is not None:
        validate(schema, data)
    return data
