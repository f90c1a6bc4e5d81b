"""``/v3/auth/*``: issue, validate, check and revoke tokens; the token owner's views.

GET/HEAD ``/v3/auth/tokens`` have a fast path: when both the caller's and the
subject token were validated before and nothing changed since (no identity
write, no new revocation event, revocations checked within the last second),
the answer is built from memory on the event loop without a thread hop.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Unauthorized
from onestack.common.web import json_response, query_flag, read_json, run
from onestack.identity import wire
from onestack.identity.service import auth as svc
from onestack.identity.tokens import TokenNotFound, ValidatedToken

JSON = "application/json"


def _identity(request: Request) -> Any:
    return request.app.state.identity


def _caller_fast(identity: Any, request: Request) -> ValidatedToken | None:
    token = request.headers.get("x-auth-token")
    if not token:
        raise Unauthorized(svc.AUTH_REQUIRED)
    return identity.tokens.lookup_fast(token)  # type: ignore[no-any-return]


def _caller_slow(identity: Any, token: str) -> ValidatedToken:
    try:
        return identity.tokens.validate(token)  # type: ignore[no-any-return]
    except TokenNotFound:
        raise Unauthorized(svc.AUTH_REQUIRED) from None


async def caller(request: Request) -> AuthContext:
    """The caller's context (X-Auth-Token); 401 if missing or invalid."""
    identity = _identity(request)
    vt = _caller_fast(identity, request)
    if vt is None:
        vt = await run(_caller_slow, identity, request.headers["x-auth-token"])
    return identity.tokens.context(vt)  # type: ignore[no-any-return]


def _subject(request: Request) -> str:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise BadRequest("Expecting to find X-Subject-Token in the request headers.")
    return subject


# --- /v3/auth/tokens ----------------------------------------------------------------


async def create_token(request: Request) -> Response:
    identity = _identity(request)
    body = await read_json(request)
    nocatalog = bool(query_flag(request, "nocatalog"))

    def work() -> tuple[str, bytes]:
        vt = svc.issue_token(identity, body)
        return vt.token, identity.tokens.body_bytes(vt, nocatalog=nocatalog)

    token, payload = await run(work)
    return Response(payload, status_code=201, headers={"X-Subject-Token": token}, media_type=JSON)


async def _validate(request: Request, rule: str) -> tuple[ValidatedToken, bytes | None]:
    identity = _identity(request)
    tokens = identity.tokens
    subject = _subject(request)
    nocatalog = bool(query_flag(request, "nocatalog"))
    allow_expired = bool(query_flag(request, "allow_expired"))
    want_body = request.method == "GET"
    if not allow_expired:
        cvt = _caller_fast(identity, request)
        svt = tokens.lookup_fast(subject) if cvt is not None else None
        if cvt is not None and svt is not None and (not want_body or nocatalog in svt.bodies):
            svc.authorize_subject(identity, rule, tokens.context(cvt), svt)
            return svt, svt.bodies.get(nocatalog) if want_body else None
    caller_token = request.headers["x-auth-token"]

    def work() -> tuple[ValidatedToken, bytes | None]:
        ctx = tokens.context(_caller_slow(identity, caller_token))
        vt = svc.subject_token(identity, ctx, subject, rule, allow_expired=allow_expired)
        return vt, tokens.body_bytes(vt, nocatalog=nocatalog) if want_body else None

    return await run(work)


async def get_token(request: Request) -> Response:
    vt, payload = await _validate(request, "identity:validate_token")
    return Response(payload, status_code=200, headers={"X-Subject-Token": vt.token}, media_type=JSON)


async def check_token(request: Request) -> Response:
    vt, _ = await _validate(request, "identity:check_token")
    return Response(b"", status_code=200, headers={"X-Subject-Token": vt.token})


async def token_endpoint(request: Request) -> Response:
    if request.method == "POST":
        return await create_token(request)
    if request.method == "HEAD":
        return await check_token(request)
    if request.method == "DELETE":
        identity = _identity(request)
        ctx = await caller(request)
        subject = _subject(request)
        await run(svc.revoke_subject, identity, ctx, subject)
        return Response(b"", status_code=204)
    return await get_token(request)


# --- the token owner's views -------------------------------------------------------------


async def catalog(request: Request) -> Response:
    identity = _identity(request)
    ctx = await caller(request)
    identity.enforcer.authorize("identity:get_auth_catalog", ctx, {})
    entries = await run(svc.auth_catalog, identity, ctx)
    return json_response({"catalog": entries, "links": {"self": wire.base_url(request) + "/v3/auth/catalog"}})


async def projects(request: Request) -> Response:
    identity = _identity(request)
    ctx = await caller(request)
    identity.enforcer.authorize("identity:get_auth_projects", ctx, {})
    items = await run(svc.auth_projects, identity, ctx)
    for p in items:
        p["links"] = wire.self_link(request, f"projects/{p['id']}")
    return json_response(wire.collection(request, "projects", items))


async def domains(request: Request) -> Response:
    identity = _identity(request)
    ctx = await caller(request)
    identity.enforcer.authorize("identity:get_auth_domains", ctx, {})
    items = await run(svc.auth_domains, identity, ctx)
    for d in items:
        d["links"] = wire.self_link(request, f"domains/{d['id']}")
    return json_response(wire.collection(request, "domains", items))


async def system(request: Request) -> Response:
    identity = _identity(request)
    ctx = await caller(request)
    identity.enforcer.authorize("identity:get_auth_system", ctx, {})
    items = await run(svc.auth_system, identity, ctx)
    return json_response({"system": items, "links": {"self": wire.base_url(request) + "/v3/auth/system"}})


routes = [
    Route("/v3/auth/tokens", token_endpoint, methods=["GET", "HEAD", "POST", "DELETE"]),
    Route("/v3/auth/catalog", catalog, methods=["GET", "HEAD"]),
    Route("/v3/auth/projects", projects, methods=["GET", "HEAD"]),
    Route("/v3/auth/domains", domains, methods=["GET", "HEAD"]),
    Route("/v3/auth/system", system, methods=["GET", "HEAD"]),
]
