"""The small HTTP toolkit every service API uses.

* ``json_response`` / ``empty`` build responses (orjson, exact status codes).
* ``read_json`` parses a request body or raises a 400 in the service's shape.
* ``run`` runs blocking service logic (database, hashing) in the thread pool,
  as one retryable unit of work: when the database says a write unit lost a
  race (``db.RetryUnit``), the call is run again (``db.retrying``).
* ``service_app`` builds a service's Starlette sub-application with its error
  renderer, so every ``ApiError`` - and every unexpected exception - comes out
  in that service's own error format.

No NUL character gets past the edge: not in a path, a query string or a JSON
body. No resource can hold one (PostgreSQL text cannot store it at all), so a
request carrying one is answered 400 on every database alike.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from onestack.common.db import RetryUnit, retrying
from onestack.common.errors import (
    ApiError,
    AuthenticationRequired,
    BadRequest,
    Conflict,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)

log = logging.getLogger("onestack.web")

T = TypeVar("T")
ErrorRenderer = Callable[[ApiError], Response]


def dumps(body: Any) -> bytes:
    """Every JSON body of the API. orjson's ``OPT_NON_STR_KEYS`` (a dict with int
    keys, rare) makes it nearly twice as slow for everything (80 ms of a list of
    10,000 ports): without it first, with it only for a body that needs it."""
    try:
        return orjson.dumps(body, default=_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def json_response(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    return Response(dumps(body), status_code=status, headers=headers, media_type=media_type)


def empty(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)


async def read_json(
    request: Request,
    *,
    required: bool = True,
    content_types: Sequence[str] = ("application/json",),
) -> Any:
    """The request's JSON body.

    Missing body with ``required`` -> 400; malformed JSON -> 400; a declared
    content type not in ``content_types`` -> 415.
    """
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        raw = await request.body()
    except ClientDisconnect:  # nobody is left to answer; not a server error
        raise BadRequest("The client closed the connection before the request body was read.") from None
    if not raw.strip():
        if required:
            raise BadRequest("The request body is required and must be a JSON object.")
        return None
    if ctype and ctype not in content_types and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content type {ctype} is not supported.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None
    # JSON can only carry a NUL as the escape \u0000: a cheap scan first.
    if b"\\u0000" in raw and _holds_nul(body):
        raise BadRequest(NUL_IN_BODY)
    return body


NUL_IN_BODY = "Malformed request body: a string holds a NUL character (\\u0000)."
NUL_IN_URL = "The request URL holds a NUL character (%00)."


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking service logic in the worker thread pool, again if a write
    unit in it lost a race (see ``common/db``)."""
    if kwargs:
        fn = functools.partial(fn, **kwargs)
    return await anyio.to_thread.run_sync(_unit_of_work, fn, *args)


def _unit_of_work(fn: Callable[..., T], *args: Any) -> T:
    try:
        return retrying(fn, *args)
    except RetryUnit as exc:
        # Out of attempts (or a unit had already committed): the service's own
        # answer if it gave one, else a 409 - never a 500 for a lost race.
        if isinstance(exc.cause, ApiError):
            raise exc.cause from None
        log.warning("gave up on a write that kept losing races: %s", exc.reason)
        raise Conflict("The request conflicted with concurrent changes to the same resources; "
                       "please retry it.") from None


def query_flag(request: Request, name: str) -> bool | None:
    """A boolean query parameter: ``?x``, ``?x=true`` -> True; ``?x=false`` -> False."""
    if name not in request.query_params:
        return None
    value = request.query_params[name].strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"Invalid value {value!r} for boolean query parameter {name}.")


def service_app(
    routes: Sequence[BaseRoute],
    render_error: ErrorRenderer,
    *,
    state: dict[str, Any] | None = None,
) -> Starlette:
    """A service's sub-application: its routes plus its error format.

    ``state`` goes onto ``app.state``; every service gives ``validator`` (the
    token validator), ``service_type`` (its catalog type, which application
    credential access rules name) and ``auth_uri`` (Identity's public URL,
    for the ``WWW-Authenticate`` header of a 401).
    """

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if isinstance(exc, AuthenticationRequired):
            # keystonemiddleware's answer, in front of every service
            uri = getattr(request.app.state, "auth_uri", None)
            if uri:
                exc.headers.setdefault("WWW-Authenticate", f'Keystone uri="{uri}"')
            return keystone_error(exc)
        return render_error(exc)

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        err: ApiError
        if exc.status_code == 404:
            err = NotFound("The resource could not be found.")
        elif exc.status_code == 405:
            err = MethodNotAllowed("The method is not allowed for the requested URL.")
        else:
            err = ApiError(str(exc.detail), status=exc.status_code)
        if exc.headers:
            err.headers.update(exc.headers)
        return render_error(err)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render_error(ApiError("An unexpected error prevented the server from fulfilling your request."))

    app = Starlette(
        routes=list(routes),
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
    )
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    app.add_middleware(_RejectNul, render_error=render_error)
    return app


class _RejectNul:
    """400 in the service's error format for a NUL in the path or the query string."""

    def __init__(self, app: ASGIApp, render_error: ErrorRenderer) -> None:
        self.app = app
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            await self.render_error(BadRequest(NUL_IN_URL))(scope, receive, send)
            return
        await self.app(scope, receive, send)


# --- error renderers for the wire formats the services use -------------------


def keystone_error(exc: ApiError) -> Response:
    body = {"error": {"code": exc.status, "title": exc.title, "message": exc.message}}
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return json_response(body, exc.status, headers)


def nova_error(exc: ApiError) -> Response:
    """Nova and Cinder: ``{"itemNotFound": {"code": 404, "message": ...}}``."""
    return json_response({exc.fault: {"code": exc.status, "message": exc.message}}, exc.status, exc.headers)


def glance_error(exc: ApiError) -> Response:
    """Glance (webob): ``{"message", "code": "404 Not Found", "title"}``."""
    body = {"message": exc.message, "code": f"{exc.status} {exc.title}", "title": exc.title}
    return json_response(body, exc.status, exc.headers)


def neutron_error(exc: ApiError) -> Response:
    kind = type(exc).__name__
    body = {"NeutronError": {"type": kind, "message": exc.message, "detail": ""}}
    return json_response(body, exc.status, exc.headers)
