"""``/v3/auth/*``: issue, validate, check and revoke tokens; the token owner's views.

GET/HEAD ``/v3/auth/tokens`` have a fast path: when both the caller's and the
subject token were validated before and nothing changed since (no identity
write, no new revocation event, revocations checked within the last second),
the answer is built from memory on the event loop without a thread hop.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from onestack.common.auth import AuthContext, enforce_access_rules, service_path
from onestack.common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from onestack.common.web import json_response, query_flag, run
from onestack.identity import wire
from onestack.identity.api._resources import identity_of, read_json
from onestack.identity.service import auth as svc
from onestack.identity.tokens import TokenNotFound, ValidatedToken

JSON = "application/json"


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
    """The caller's context (X-Auth-Token); 401 if missing or invalid, or if
    its access rules do not allow this request."""
    identity = identity_of(request)
    vt = _caller_fast(identity, request)
    if vt is None:
        vt = await run(_caller_slow, identity, request.headers["x-auth-token"])
    ctx: AuthContext = identity.tokens.context(vt)
    enforce_access_rules(ctx, "identity", request.method, service_path(request.scope))
    return ctx


# Keystone's ACCESS_RULES_MIN_VERSION: a validator that does not send
# ``OpenStack-Identity-Access-Rules`` of at least this version cannot enforce
# access rules, so a token that has some is not valid for it.
ACCESS_RULES_HEADER = "openstack-identity-access-rules"
ACCESS_RULES_MIN_VERSION = 1.0


def _has_access_rules(vt: ValidatedToken) -> bool:
    return bool((vt.app_cred or {}).get("access_rules"))


def _check_subject_rules(request: Request, svt: ValidatedToken) -> None:
    """404 for a subject token with access rules, unless the validator says it
    enforces them (as Keystone: an old middleware would let everything through)."""
    if not _has_access_rules(svt):
        return
    try:
        version = float(request.headers.get(ACCESS_RULES_HEADER, "") or 0)
    except ValueError:
        version = 0.0
    if version < ACCESS_RULES_MIN_VERSION:
        raise NotFound("Failed to validate token")


def _check_caller_rules(identity: Any, request: Request, cvt: ValidatedToken) -> None:
    if _has_access_rules(cvt):
        enforce_access_rules(identity.tokens.context(cvt), "identity", request.method,
                             service_path(request.scope))


def authorize_cached(identity: Any, rule: str, cvt: ValidatedToken, svt: ValidatedToken) -> None:
    """Policy check for the caller on the subject token, remembered on the caller."""
    key = (rule, svt.data.user_id)
    allowed = cvt.decisions.get(key)
    if allowed is None or _policy_changed(identity):
        allowed = identity.enforcer.check(rule, identity.tokens.context(cvt), {"target": {"token": {"user_id": key[1]}}})
        cvt.decisions[key] = allowed
    if not allowed:
        raise Forbidden(f"You are not authorized to perform the requested action: {rule}.")


_policy_seen: dict[int, tuple[float, int]] = {}


def _policy_changed(identity: Any) -> bool:
    """True when the policy file changed since last asked (checked at most once a second)."""
    enforcer = identity.enforcer
    now = time.monotonic()
    seen = _policy_seen.get(id(enforcer))
    if seen is not None and now - seen[0] < 1.0:
        return False
    enforcer.rules  # noqa: B018 - re-reads the override file if it changed
    rules_id = id(getattr(enforcer, "_compiled", enforcer))
    _policy_seen[id(enforcer)] = (now, rules_id)
    return seen is not None and seen[1] != rules_id


def _subject(request: Request) -> str:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise BadRequest("Expecting to find X-Subject-Token in the request headers.")
    return subject


# --- /v3/auth/tokens ----------------------------------------------------------------


async def create_token(request: Request) -> Response:
    identity = identity_of(request)
    body = await read_json(request)
    nocatalog = bool(query_flag(request, "nocatalog"))

    def work() -> tuple[str, bytes]:
        vt = svc.issue_token(identity, body, request)
        return vt.token, identity.tokens.body_bytes(vt, nocatalog=nocatalog)

    token, payload = await run(work)
    return Response(payload, status_code=201, headers={"X-Subject-Token": token}, media_type=JSON)


async def _validate(request: Request, rule: str) -> tuple[ValidatedToken, bytes | None]:
    identity = identity_of(request)
    tokens = identity.tokens
    subject = _subject(request)
    nocatalog = bool(query_flag(request, "nocatalog"))
    allow_expired = bool(query_flag(request, "allow_expired"))
    want_body = request.method == "GET"
    if not allow_expired:
        cvt = _caller_fast(identity, request)
        svt = tokens.lookup_fast(subject) if cvt is not None else None
        if cvt is not None and svt is not None and (not want_body or nocatalog in svt.bodies):
            _check_caller_rules(identity, request, cvt)
            _check_subject_rules(request, svt)
            authorize_cached(identity, rule, cvt, svt)
            return svt, svt.bodies.get(nocatalog) if want_body else None
    caller_token = request.headers["x-auth-token"]

    def work() -> tuple[ValidatedToken, bytes | None]:
        cvt = _caller_slow(identity, caller_token)
        _check_caller_rules(identity, request, cvt)
        vt = tokens.validate(subject, allow_expired=allow_expired)
        _check_subject_rules(request, vt)
        authorize_cached(identity, rule, cvt, vt)
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
        identity = identity_of(request)
        ctx = await caller(request)
        subject = _subject(request)
        await run(svc.revoke_subject, identity, ctx, subject)
        return Response(b"", status_code=204)
    return await get_token(request)


# --- the token owner's views -------------------------------------------------------------


async def catalog(request: Request) -> Response:
    ctx = await caller(request)
    entries = await run(svc.auth_catalog, identity_of(request), ctx)
    return json_response({"catalog": entries, "links": {"self": wire.base_url(request) + "/v3/auth/catalog"}})


async def _scopes(request: Request, key: str, lister: Any) -> Response:
    """``/v3/auth/projects`` and ``/v3/auth/domains``: what the caller can scope to."""
    ctx = await caller(request)
    items = await run(lister, identity_of(request), ctx)
    for item in items:
        item["links"] = wire.self_link(request, f"{key}/{item['id']}")
    return json_response(wire.collection(request, key, items))


async def projects(request: Request) -> Response:
    return await _scopes(request, "projects", svc.auth_projects)


async def domains(request: Request) -> Response:
    return await _scopes(request, "domains", svc.auth_domains)


async def system(request: Request) -> Response:
    ctx = await caller(request)
    items = await run(svc.auth_system, identity_of(request), ctx)
    return json_response({"system": items, "links": {"self": wire.base_url(request) + "/v3/auth/system"}})


routes = [
    Route("/v3/auth/tokens", token_endpoint, methods=["GET", "HEAD", "POST", "DELETE"]),
    Route("/v3/auth/catalog", catalog, methods=["GET", "HEAD"]),
    Route("/v3/auth/projects", projects, methods=["GET", "HEAD"]),
    Route("/v3/auth/domains", domains, methods=["GET", "HEAD"]),
    Route("/v3/auth/system", system, methods=["GET", "HEAD"]),
]


# --- the raw fast path for GET/HEAD /v3/auth/tokens ----------------------------------------

_NOCATALOG = {b"": False, b"nocatalog": True, b"nocatalog=": True, b"nocatalog=true": True,
              b"nocatalog=True": True, b"nocatalog=1": True, b"nocatalog=false": False}


class FastTokenValidation:
    """ASGI wrapper answering repeated token validations straight from memory.

    Only GET/HEAD ``/v3/auth/tokens`` whose caller and subject tokens are both in
    the provider's validated-token cache (and still fresh) are answered here,
    with exactly the bytes and headers the full handler sends; everything else
    goes to the identity application.
    """

    def __init__(self, identity: Any, app: ASGIApp) -> None:
        self.identity = identity
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            if path == "/v3/auth/tokens":
                answer = self._answer(scope)
                if answer is not None:
                    status, headers, body = answer
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        nocatalog = _NOCATALOG.get(scope.get("query_string", b""))
        if nocatalog is None:
            return None
        caller_token = subject = None
        for name, value in scope["headers"]:
            if name == b"x-auth-token":
                caller_token = value
            elif name == b"x-subject-token":
                subject = value
        if not caller_token or not subject:
            return None
        tokens = self.identity.tokens
        try:
            cvt = tokens.lookup_fast(caller_token.decode("ascii"))
            svt = tokens.lookup_fast(subject.decode("ascii")) if cvt is not None else None
        except UnicodeDecodeError:
            return None
        if cvt is None or svt is None or _has_access_rules(cvt) or _has_access_rules(svt):
            return None  # the full handler checks access rules
        get = scope["method"] == "GET"
        rule = "identity:validate_token" if get else "identity:check_token"
        if cvt.decisions.get((rule, svt.data.user_id)) is not True or _policy_changed(self.identity):
            return None
        body = svt.bodies.get(nocatalog) if get else b""
        if body is None:
            return None
        headers = [(b"x-subject-token", subject)]
        if get:
            headers += [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        else:
            headers.append((b"content-length", b"0"))
        return 200, headers, body
