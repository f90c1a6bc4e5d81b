"""OS-OAUTH1: delegated authentication with OAuth 1.0a (RFC 5849), as Keystone.

1. An admin creates a *consumer* (id + secret; the secret is shown once).
2. The consumer asks for a *request token* for a project, signing the request
   with HMAC-SHA1 and its secret (``POST /v3/OS-OAUTH1/request_token``).
3. A user holding roles on that project *authorizes* the request token for
   some of them and gets a *verifier* (``PUT /v3/OS-OAUTH1/authorize/{id}``).
4. The consumer trades request token + verifier for an *access token*
   (``POST /v3/OS-OAUTH1/access_token``), signing with both secrets.
5. The consumer gets Keystone tokens with the ``oauth1`` auth method, signing
   ``POST /v3/auth/tokens`` with its secret and the access token's secret; the
   token is scoped to the project with the delegated roles only.

Deleting an access token or a consumer revokes the tokens issued from it.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import Forbidden, NotFound, Unauthorized, ValidationError
from onestack.common.ids import isotime, new_id, utcnow
from onestack.identity import revoke
from onestack.identity.models import (
    NULL_DOMAIN,
    OAuthAccessToken,
    OAuthConsumer,
    OAuthRequestToken,
    Project,
    Role,
)
from onestack.identity.service._resources import (
    authorize_action,
    expecting,
    get_row,
    merge_extra,
    require_matching_id,
)

if TYPE_CHECKING:
    from onestack.identity.core import Identity
    from onestack.identity.service.auth import AuthResult
    from onestack.identity.service.auth_request import AuthRequest

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:get_consumer": ADMIN_OR_SYSTEM_READER,
    "identity:list_consumers": ADMIN_OR_SYSTEM_READER,
    "identity:create_consumer": ADMIN,
    "identity:update_consumer": ADMIN,
    "identity:delete_consumer": ADMIN,
    # Keystone's defaults for these are admin-only too.
    "identity:authorize_request_token": ADMIN,
    "identity:list_access_tokens": ADMIN,
    "identity:get_access_token": ADMIN,
    "identity:list_access_token_roles": ADMIN,
    "identity:get_access_token_role": ADMIN,
    "identity:delete_access_token": ADMIN,
}

# Keystone's [oauth1] defaults (seconds).
REQUEST_TOKEN_DURATION = 28800
ACCESS_TOKEN_DURATION = 86400
# oauthlib's window for oauth_timestamp.
TIMESTAMP_LIFETIME = 600
VERIFIER_CHARS = string.ascii_letters + string.digits
SIGNATURE_METHOD = "HMAC-SHA1"


class HttpRequest(Protocol):
    """What signature checks need of an HTTP request (a Starlette Request fits)."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> Any: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


# --- signatures ---------------------------------------------------------------------


def oauth_params(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``OAuth ...`` Authorization header's parameters ({} if there is none)."""
    value = headers.get("authorization") or headers.get("Authorization") or ""
    if not value.lower().startswith("oauth "):
        return {}
    # oauthlib only when OAuth1 is used: it is not needed to start the cloud.
    from oauthlib.oauth1.rfc5849 import utils as oauth_utils

    try:
        pairs = oauth_utils.parse_authorization_header(value)
        return {k: oauth_utils.unescape(v) for k, v in pairs if k != "realm"}
    except (ValueError, TypeError):
        raise Unauthorized("Invalid OAuth Authorization header.") from None


def _candidate_urls(identity: Identity, request: HttpRequest) -> list[str]:
    """The request's URL as received, and as seen through the public URL."""
    url = str(request.url)
    parts = urlsplit(url)
    path = parts.path
    urls = [f"{parts.scheme}://{parts.netloc}{path}"]
    public = identity.public_url.rstrip("/")
    marker = urlsplit(public).path or ""
    if marker and marker in path:
        urls.append(public + path.split(marker, 1)[1])
    elif not marker:
        urls.append(public + path)
    return list(dict.fromkeys(urls))


def verify_signature(identity: Identity, request: HttpRequest, consumer_secret: str,
                     token_secret: str | None) -> bool:
    """Check the request's HMAC-SHA1 signature (RFC 5849 section 3.4)."""
    from oauthlib.oauth1.rfc5849 import signature as oauth_sig

    headers = {"Authorization": request.headers.get("authorization", "")}
    params = oauth_params(request.headers)
    provided = params.get("oauth_signature")
    if not provided or params.get("oauth_signature_method") != SIGNATURE_METHOD:
        return False
    try:
        stamp = int(params.get("oauth_timestamp", ""))
    except ValueError:
        return False
    if abs(time.time() - stamp) > TIMESTAMP_LIFETIME or not params.get("oauth_nonce"):
        return False
    query = urlsplit(str(request.url)).query
    try:
        collected = oauth_sig.collect_parameters(
            uri_query=query, headers=headers, exclude_oauth_signature=True, with_realm=False
        )
        normalized = oauth_sig.normalize_parameters(collected)
    except (ValueError, TypeError):
        return False
    for url in _candidate_urls(identity, request):
        base = oauth_sig.signature_base_string(request.method.upper(), oauth_sig.base_string_uri(url), normalized)
        expected = oauth_sig.sign_hmac_sha1(base, consumer_secret, token_secret or "")
        if oauth_sig.safe_string_equals(expected, provided):
            return True
    return False


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise expecting(name, "request")
    return value


# --- wire shapes ----------------------------------------------------------------------


def consumer_dict(c: OAuthConsumer, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = dict(c.extra or {})
    body.update(id=c.id, description=c.description)
    if with_secret:
        body["secret"] = c.secret
    return body


def access_token_dict(t: OAuthAccessToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "consumer_id": t.consumer_id,
        "project_id": t.project_id,
        "authorizing_user_id": t.authorizing_user_id,
        "expires_at": isotime(t.expires_at, subsecond=True),
    }


def _role_dict(r: Role) -> dict[str, Any]:
    body: dict[str, Any] = {"id": r.id, "name": r.name}
    if r.domain_id != NULL_DOMAIN:
        body["domain_id"] = r.domain_id
    return body




def _delegated(ctx: AuthContext) -> bool:
    return "oauth1" in ctx.methods or ctx.trust_id is not None


# --- consumers --------------------------------------------------------------------------


def _consumer(session: Session, consumer_id: str) -> OAuthConsumer:
    return get_row(session, OAuthConsumer, consumer_id, "consumer")


def _check_consumer(body: Any, *, create: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Invalid input for field 'consumer': it must be an object.")
    if "secret" in body:
        raise ValidationError("Cannot change consumer secret." if not create else
                              "Additional properties are not allowed ('secret' was unexpected).")
    if "links" in body:
        raise ValidationError("Additional properties are not allowed ('links' was unexpected).")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise ValidationError("Invalid input for field 'description': it must be a string or null.")
    if isinstance(description, str) and len(description) > 64:
        raise ValidationError("Invalid input for field 'description': it is too long (64 characters at most).")
    return body


def create_consumer(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "create_consumer")
    fields = _check_consumer(body, create=True)
    extra = {k: v for k, v in fields.items() if k not in ("id", "description")}
    with identity.db.write() as s:
        c = OAuthConsumer(id=new_id(), description=fields.get("description"), secret=new_id(), extra=extra)
        s.add(c)
        s.flush()
        return consumer_dict(c, with_secret=True)


def get_consumer(identity: Identity, ctx: AuthContext, consumer_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_consumer")
    with identity.db.read() as s:
        return consumer_dict(_consumer(s, consumer_id))


def list_consumers(identity: Identity, ctx: AuthContext) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_consumers")
    with identity.db.read() as s:
        return [consumer_dict(c) for c in s.scalars(select(OAuthConsumer).order_by(OAuthConsumer.id))]


def update_consumer(identity: Identity, ctx: AuthContext, consumer_id: str, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "update_consumer")
    fields = _check_consumer(body, create=False)
    require_matching_id(fields, consumer_id)
    with identity.db.write() as s:
        c = _consumer(s, consumer_id)
        if "description" in fields:
            c.description = fields["description"]
        merge_extra(c, fields, ("id", "description"))
        s.flush()
        return consumer_dict(c)


def delete_consumer(identity: Identity, ctx: AuthContext, consumer_id: str) -> None:
    """The consumer, its request and access tokens, and every token issued through it."""
    authorize_action(identity, ctx, "delete_consumer")
    with identity.db.write() as s:
        c = _consumer(s, consumer_id)
        for model in (OAuthRequestToken, OAuthAccessToken):
            for row in s.scalars(select(model).where(model.consumer_id == consumer_id)):
                s.delete(row)
        s.delete(c)
        revoke.revoke(s, consumer_id=consumer_id)
    identity.touch()


# --- request tokens ---------------------------------------------------------------------


def create_request_token(identity: Identity, request: HttpRequest) -> dict[str, str]:
    """``POST /v3/OS-OAUTH1/request_token`` (unauthenticated, OAuth-signed)."""
    params = oauth_params(request.headers)
    consumer_id = _required(params, "oauth_consumer_key")
    project_id = request.headers.get("requested-project-id")
    if not project_id:
        _required({}, "Requested-Project-Id")
    with identity.db.write() as s:
        project = s.get(Project, project_id)
        if project is None or project.is_domain:
            raise NotFound(f"Could not find project: {project_id}.")
        consumer = _consumer(s, consumer_id)
        if not verify_signature(identity, request, consumer.secret, None):
            raise Unauthorized("Invalid signature")
        token = OAuthRequestToken(
            id=new_id(),
            request_secret=new_id(),
            requested_project_id=str(project_id),
            consumer_id=consumer_id,
            role_ids=[],
            expires_at=utcnow() + timedelta(seconds=REQUEST_TOKEN_DURATION),
        )
        s.add(token)
        s.flush()
        return {
            "oauth_token": token.id,
            "oauth_token_secret": token.request_secret,
            "oauth_expires_at": isotime(token.expires_at, subsecond=True) or "",
        }


def _check_roles(roles: Any) -> list[dict[str, Any]]:
    if not isinstance(roles, list) or not roles:
        raise ValidationError("Invalid input for field 'roles': a non-empty list of roles is required.")
    for role in roles:
        if not isinstance(role, dict) or not (
            isinstance(role.get("id"), str) or isinstance(role.get("name"), str)
        ):
            raise ValidationError("Invalid input for field 'roles': each role needs an 'id' or a 'name'.")
    return roles


def _role_ids(session: Session, roles: list[dict[str, Any]]) -> set[str]:
    ids: set[str] = set()
    for ref in roles:
        if ref.get("id"):
            ids.add(str(ref["id"]))
            continue
        found = list(session.scalars(select(Role).where(Role.name == ref["name"], Role.domain_id == NULL_DOMAIN)))
        if not found:
            raise NotFound(f"Could not find role: {ref['name']}.")
        ids.add(found[0].id)
    return ids


def authorize_request_token(identity: Identity, ctx: AuthContext, request_token_id: str,
                            body: Any) -> dict[str, str]:
    """The calling user delegates some of their roles on the requested project."""
    authorize_action(identity, ctx, "authorize_request_token")
    roles = _check_roles(body.get("roles") if isinstance(body, dict) else None)
    if _delegated(ctx):
        raise Forbidden("Cannot authorize a request token with a token issued via delegation.")
    with identity.db.write() as s:
        token = s.get(OAuthRequestToken, request_token_id)
        if token is None:
            raise NotFound(f"Could not find request token: {request_token_id}.")
        if token.expires_at is not None and utcnow() > token.expires_at:
            raise Unauthorized("Request token is expired")
        wanted = _role_ids(s, roles)
        held = set(identity.tokens.effective_roles(s, ctx.user_id, project_id=token.requested_project_id))
        if not wanted <= held:
            raise Unauthorized("authorizing user does not have role required")
        token.authorizing_user_id = ctx.user_id
        token.role_ids = sorted(wanted)
        token.verifier = "".join(secrets.choice(VERIFIER_CHARS) for _ in range(8))
        return {"oauth_verifier": token.verifier}


# --- access tokens ------------------------------------------------------------------------


def create_access_token(identity: Identity, request: HttpRequest) -> dict[str, str]:
    """``POST /v3/OS-OAUTH1/access_token``: request token + verifier -> access token."""
    params = oauth_params(request.headers)
    consumer_id = _required(params, "oauth_consumer_key")
    request_token_id = _required(params, "oauth_token")
    verifier = _required(params, "oauth_verifier")
    with identity.db.write() as s:
        req = s.get(OAuthRequestToken, request_token_id)
        if req is None:
            raise NotFound(f"Could not find request token: {request_token_id}.")
        if req.expires_at is not None and utcnow() > req.expires_at:
            raise Unauthorized("Request token is expired")
        consumer = s.get(OAuthConsumer, consumer_id)
        if consumer is None:
            raise Unauthorized("Provided consumer does not exist.")
        if req.consumer_id != consumer_id:
            raise Unauthorized("Provided consumer key does not match stored consumer key.")
        if not verify_signature(identity, request, consumer.secret, req.request_secret):
            raise Unauthorized("Invalid signature")
        if req.verifier is None or not secrets.compare_digest(req.verifier, verifier):
            raise Unauthorized("Provided verifier does not match stored verifier")
        if not req.authorizing_user_id:
            raise Unauthorized("Request Token does not have an authorizing user id.")
        token = OAuthAccessToken(
            id=new_id(),
            access_secret=new_id(),
            authorizing_user_id=req.authorizing_user_id,
            project_id=req.requested_project_id,
            role_ids=list(req.role_ids or []),
            consumer_id=consumer_id,
            expires_at=utcnow() + timedelta(seconds=ACCESS_TOKEN_DURATION),
        )
        s.add(token)
        s.delete(req)
        s.flush()
        return {
            "oauth_token": token.id,
            "oauth_token_secret": token.access_secret,
            "oauth_expires_at": isotime(token.expires_at, subsecond=True) or "",
        }


def form(values: dict[str, str]) -> str:
    """The ``application/x-www-form-urlencoded`` body, written as Keystone does.

    Keystone does not percent-encode the values (ids and ISO times), and
    clients such as Tempest split the body on ``&`` and ``=`` without decoding.
    """
    return "&".join(f"{k}={v}" for k, v in values.items())


def _user_token(session: Session, user_id: str, access_token_id: str) -> OAuthAccessToken:
    token = session.get(OAuthAccessToken, access_token_id)
    if token is None or token.authorizing_user_id != user_id:
        raise NotFound(f"Could not find access token: {access_token_id}.")
    return token


def _user_target(user_id: str) -> dict[str, Any]:
    return {"target": {"user": {"id": user_id}}, "user_id": user_id}


def list_access_tokens(identity: Identity, ctx: AuthContext, user_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_access_tokens", _user_target(user_id))
    if _delegated(ctx):
        raise Forbidden("Cannot list request tokens with a token issued via delegation.")
    with identity.db.read() as s:
        rows = s.scalars(
            select(OAuthAccessToken).where(OAuthAccessToken.authorizing_user_id == user_id).order_by(OAuthAccessToken.id)
        )
        return [access_token_dict(t) for t in rows]


def get_access_token(identity: Identity, ctx: AuthContext, user_id: str, access_token_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_access_token", _user_target(user_id))
    with identity.db.read() as s:
        return access_token_dict(_user_token(s, user_id, access_token_id))


def list_access_token_roles(identity: Identity, ctx: AuthContext, user_id: str,
                            access_token_id: str) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_access_token_roles", _user_target(user_id))
    with identity.db.read() as s:
        token = _user_token(s, user_id, access_token_id)
        roles = [s.get(Role, rid) for rid in token.role_ids or []]
        return [_role_dict(r) for r in roles if r is not None]


def get_access_token_role(identity: Identity, ctx: AuthContext, user_id: str, access_token_id: str,
                          role_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_access_token_role", _user_target(user_id))
    with identity.db.read() as s:
        token = _user_token(s, user_id, access_token_id)
        role = s.get(Role, role_id) if role_id in (token.role_ids or []) else None
        if role is None:
            raise NotFound(f"Could not find role: {role_id}.")
        return _role_dict(role)


def delete_access_token(identity: Identity, ctx: AuthContext, user_id: str, access_token_id: str) -> None:
    """Delete the access token and revoke the tokens issued with it."""
    authorize_action(identity, ctx, "delete_access_token", _user_target(user_id))
    with identity.db.write() as s:
        token = _user_token(s, user_id, access_token_id)
        s.delete(token)
        revoke.revoke(s, access_token_id=access_token_id)
    identity.touch()


# --- the "oauth1" auth method ---------------------------------------------------------------


def oauth1_method(identity: Identity, body: dict[str, Any], req: AuthRequest) -> AuthResult:
    """``POST /v3/auth/tokens`` with ``"methods": ["oauth1"]``, signed with the access token.

    Needs the HTTP request (Authorization header, method, URL): ``req.http``
    must be an object with ``method``, ``url`` and ``headers`` (a Starlette
    Request will do).
    """
    from onestack.identity.service.auth import AuthResult

    request: HttpRequest | None = getattr(req, "http", None)
    if request is None:
        raise Unauthorized("The oauth1 method needs the OAuth-signed HTTP request.")
    params = oauth_params(request.headers)
    access_token_id = _required(params, "oauth_token")
    with identity.db.read() as s:
        token = s.get(OAuthAccessToken, access_token_id)
        if token is None:
            raise Unauthorized("Could not validate the access token")
        if token.expires_at is not None and utcnow() > token.expires_at:
            raise Unauthorized("Access token is expired")
        consumer = s.get(OAuthConsumer, token.consumer_id)
        if consumer is None or params.get("oauth_consumer_key") != consumer.id:
            raise Unauthorized("Could not validate the access token")
        if not verify_signature(identity, request, consumer.secret, token.access_secret):
            raise Unauthorized("Could not validate the access token")
        return AuthResult(
            user_id=token.authorizing_user_id,
            project_id=token.project_id,
            fixed_scope=True,
            access_token_id=token.id,
            expires_at=token.expires_at,
        )


def register() -> None:
    """Plug ``oauth1`` into ``POST /v3/auth/tokens``."""
    try:
        from onestack.identity.service.auth import AUTH_METHODS
    except ImportError:  # pragma: no cover - the auth area is always present
        return
    AUTH_METHODS.setdefault("oauth1", oauth1_method)


register()
