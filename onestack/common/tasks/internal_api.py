"""The internal task API: how an agent on another host claims, heartbeats and
reports tasks without database credentials (mounted at ``/internal``).

Every request carries ``Authorization: Bearer <agent credential>``
(:mod:`.credentials`); without a valid one the answer is 401 and nothing
else - not even whether a route exists. A credential is bound to its host:
claims are for that host, an owner name is prefixed with it, and a report
names a task by id, claim token and owner, so an agent can touch only the
tasks it holds. Claims long-poll: with nothing to do the server waits for a
wake-up (in-process or LISTEN/NOTIFY) up to ``wait`` seconds, so a remote
agent reacts as fast as a local one.

    POST /internal/v1/tasks/claim            {owner, host, kinds, lease_seconds, wait}
    POST /internal/v1/tasks/{id}/heartbeat   {owner, claim_token, lease_seconds}
    POST /internal/v1/tasks/{id}/progress    {owner, claim_token, progress}
    POST /internal/v1/tasks/{id}/complete    {owner, claim_token, result}
    POST /internal/v1/tasks/{id}/fail        {owner, claim_token, error, retry}
    POST /internal/v1/tasks/{id}/release     {owner, claim_token}
    POST /internal/v1/claims/interrupt       {owner}
    PUT  /internal/v1/services/{binary}      {host, topic, agent_type, ... started}

Errors: ``{"error": {"code", "title", "message"}}``; 409 when the lease is
not held (nothing was written).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
)
from onestack.common.tasks import credentials
from onestack.common.web import json_response, run

if TYPE_CHECKING:
    from onestack.common.db import Database
    from onestack.common.tasks.broker import LocalBroker
    from onestack.common.tasks.hosts import HostRegistry
    from onestack.common.tasks.queue import TaskQueue
    from onestack.config import Settings


class TasksService(Protocol):
    """What the internal API needs of the cloud's tasks service (``core``)."""

    settings: Settings
    closing: bool

    @property
    def db(self) -> Database: ...

    @property
    def queue(self) -> TaskQueue: ...

    @property
    def hosts(self) -> HostRegistry: ...

    @property
    def broker(self) -> LocalBroker: ...

LOG = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # a task's result or progress is small; bigger bodies are refused
MAX_OWNER = 255
UNAUTHORIZED = "The request you have made requires authentication."


def internal_error(exc: ApiError) -> Response:
    body = {"error": {"code": exc.status, "title": exc.title, "message": exc.message}}
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="onestack-internal"')
    return json_response(body, exc.status, headers)


# ------------------------------------------------------------------ request parsing


async def _authenticate(request: Request) -> str:
    """The calling agent's host, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(UNAUTHORIZED)
    svc: TasksService = request.app.state.tasks
    host = await run(credentials.verify, svc.db, value.strip())
    if host is None:
        raise Unauthorized(UNAUTHORIZED)
    return host


async def _body(request: Request) -> dict[str, Any]:
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"The request body is larger than {MAX_BODY} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _string(body: Mapping[str, Any], name: str, *, limit: int = 255,
            required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise BadRequest(f"'{name}' must be a string of 1 to {limit} characters.")
    return value


def _number(body: Mapping[str, Any], name: str, low: float, high: float,
            default: float | None = None) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be a number from {low:g} to {high:g}.")
    return float(value)


def _token(body: Mapping[str, Any]) -> int:
    value = body.get("claim_token")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise BadRequest("'claim_token' must be a positive integer.")
    return value


def _owner(body: Mapping[str, Any], host: str, *, full: bool) -> str:
    """The owner name: the agent's own (``full=False``; prefixed here with
    its host) or the full name a claim returned, which must be this host's."""
    owner = _string(body, "owner", limit=MAX_OWNER)
    assert owner is not None
    if not full:
        owner = f"{host}/{owner}"
        if len(owner) > MAX_OWNER:
            raise BadRequest(f"'owner' is too long for host {host}.")
    elif not owner.startswith(f"{host}/"):
        raise Forbidden("This task is not held by an agent of this host.")
    return owner


def _mapping(body: Mapping[str, Any], name: str, *, nullable: bool) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be a JSON object{' or null' if nullable else ''}.")
    return value


def _lease_lost(task_id: str) -> Conflict:
    return Conflict(f"Task {task_id} is not held under this claim token.")


# ------------------------------------------------------------------ handlers


async def claim(request: Request) -> Response:
    host = await _authenticate(request)
    svc: TasksService = request.app.state.tasks
    body = await _body(request)
    asked = _string(body, "host")
    if asked != host:
        raise Forbidden(f"This credential is for host {host}, not {asked}.")
    owner = _owner(body, host, full=False)
    kinds = body.get("kinds")
    if (not isinstance(kinds, list) or not 0 < len(kinds) <= 256
            or not all(isinstance(k, str) and 0 < len(k) <= 64 for k in kinds)):
        raise BadRequest("'kinds' must be a list of 1 to 256 task kinds.")
    kinds_rules = svc.queue.kinds
    local = sorted(k for k in kinds if not kinds_rules.rule(k).agents)
    if local:
        raise Forbidden(f"Tasks of kind {local[0]} are not run by agents on other hosts.")
    lease = _number(body, "lease_seconds", 1, 86400)
    wait = _number(body, "wait", 0, 3600, default=0)
    wait = min(wait, svc.settings.tasks.long_poll_seconds)
    if svc.closing:
        wait = 0
    broker = svc.broker
    claiming = asyncio.ensure_future(broker.claim(owner, host, kinds, lease, wait))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({claiming, gone}, return_when=asyncio.FIRST_COMPLETED)
        if claiming not in done:  # the agent hung up: do not hand a task to nobody
            await broker.interrupt(owner)
            lost = await claiming
            if lost is not None:
                await broker.release(lost)
            return Response(status_code=204)
    finally:
        gone.cancel()
    found = claiming.result()
    return json_response({"task": found.to_json() if found is not None else None})


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _held_call(
    call: Callable[[Any, dict[str, Any], str, int, str], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        host = await _authenticate(request)
        body = await _body(request)
        task_id = request.path_params["task_id"]
        owner = _owner(body, host, full=True)
        token = _token(body)
        return await call(request.app.state.tasks, body, task_id, token, owner)

    return endpoint


async def _heartbeat(svc: Any, body: dict[str, Any], task_id: str, token: int,
                     owner: str) -> Response:
    from onestack.common.tasks.errors import LeaseLost

    lease = _number(body, "lease_seconds", 1, 86400)
    try:
        stop = await run(svc.queue.heartbeat, task_id, token, lease, owner)
    except LeaseLost:
        raise _lease_lost(task_id) from None
    return json_response({"cancel_requested": stop})


async def _progress(svc: Any, body: dict[str, Any], task_id: str, token: int,
                    owner: str) -> Response:
    from onestack.common.tasks.errors import LeaseLost

    progress = _mapping(body, "progress", nullable=False)
    try:
        stop = await run(svc.queue.progress, task_id, token, progress, owner)
    except LeaseLost:
        raise _lease_lost(task_id) from None
    return json_response({"cancel_requested": stop})


async def _complete(svc: Any, body: dict[str, Any], task_id: str, token: int,
                    owner: str) -> Response:
    result = _mapping(body, "result", nullable=True)
    if not await run(svc.queue.complete, task_id, token, result, owner):
        raise _lease_lost(task_id)
    return json_response({"recorded": True})


async def _fail(svc: Any, body: dict[str, Any], task_id: str, token: int,
                owner: str) -> Response:
    error = _string(body, "error", limit=65536)
    retry = body.get("retry")
    if retry is not None and not isinstance(retry, bool):
        raise BadRequest("'retry' must be true, false or null.")
    if not await run(svc.queue.fail, task_id, token, error, retry, owner):
        raise _lease_lost(task_id)
    return json_response({"recorded": True})


async def _release(svc: Any, body: dict[str, Any], task_id: str, token: int,
                   owner: str) -> Response:
    if not await run(svc.queue.release, task_id, token, owner):
        raise _lease_lost(task_id)
    return json_response({"recorded": True})


async def interrupt(request: Request) -> Response:
    host = await _authenticate(request)
    body = await _body(request)
    owner = _owner(body, host, full=False)
    svc: TasksService = request.app.state.tasks
    await svc.broker.interrupt(owner)
    return Response(status_code=204)


async def service_heartbeat(request: Request) -> Response:
    host = await _authenticate(request)
    body = await _body(request)
    binary = request.path_params["binary"]
    if not 0 < len(binary) <= 255:
        raise BadRequest("The binary name must be 1 to 255 characters.")
    asked = _string(body, "host")
    if asked != host:
        raise Forbidden(f"This credential is for host {host}, not {asked}.")
    info: dict[str, Any] = {}
    for name in ("topic", "agent_type", "availability_zone"):
        info[name] = _string(body, name, required=False)
    info["version"] = _string(body, "version", limit=64, required=False)
    info["configuration"] = _mapping(body, "configuration", nullable=True)
    started = body.get("started", False)
    if not isinstance(started, bool):
        raise BadRequest("'started' must be true or false.")
    svc: TasksService = request.app.state.tasks
    await run(lambda: svc.hosts.heartbeat(host, binary, started=started, **info))
    return Response(status_code=204)


def build(svc: TasksService) -> Starlette:
    """The internal API's ASGI app (mounted at ``/internal``)."""

    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return internal_error(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        try:  # unknown routes too: without a credential, nothing is revealed
            await _authenticate(request)
        except ApiError as err:
            return internal_error(err)
        message = ("The resource could not be found." if exc.status_code == 404
                   else "The method is not allowed for the requested URL.")
        return internal_error(ApiError(message, status=exc.status_code))

    async def on_crash(request: Request, exc: Exception) -> Response:
        LOG.exception("internal API: unhandled error on %s %s", request.method, request.url.path)
        return internal_error(ApiError(
            "An unexpected error prevented the server from fulfilling your request."))

    held = "/v1/tasks/{task_id:str}/"
    routes = [
        Route("/v1/tasks/claim", claim, methods=["POST"]),
        Route(held + "heartbeat", _held_call(_heartbeat), methods=["POST"]),
        Route(held + "progress", _held_call(_progress), methods=["POST"]),
        Route(held + "complete", _held_call(_complete), methods=["POST"]),
        Route(held + "fail", _held_call(_fail), methods=["POST"]),
        Route(held + "release", _held_call(_release), methods=["POST"]),
        Route("/v1/claims/interrupt", interrupt, methods=["POST"]),
        Route("/v1/services/{binary:str}", service_heartbeat, methods=["PUT"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash,
    })
    app.state.tasks = svc
    return app

