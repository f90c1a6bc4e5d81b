"""Authentication: ``POST /v3/auth/tokens`` and the token-owner views.

Method plugins
--------------
``AUTH_METHODS`` maps a method name (as listed in ``auth.identity.methods``)
to a callable::

    def method(identity, body: dict, request: AuthRequest) -> AuthResult

``body`` is ``auth.identity[<method name>]`` (always a dict here). The
callable raises ``Unauthorized``/``BadRequest``/... for bad credentials and
otherwise returns an ``AuthResult``: the authenticated user id, plus, for
methods that fix the token's scope (application credentials, OAuth1 access
tokens), the project and the role ids the token is limited to. It opens its own
``identity.db.read()``/``write()`` sessions (keep slow work such as password
hashing outside ``write()``). Built in: ``password``, ``token``,
``application_credential``; identity-ext registers ``oauth1``::

    from onestack.identity.service.auth import AUTH_METHODS, AuthResult
    AUTH_METHODS["oauth1"] = my_oauth1_method

Every method listed must succeed and all must name the same user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from onestack.common.ids import utcnow
from onestack.identity.effective import user_domain_ids, user_project_ids
from onestack.identity.models import ApplicationCredential, Project, Trust, User
from onestack.identity.passwords import check_password, check_secret, current_password
from onestack.identity.service._resources import expecting
from onestack.identity.service.auth_request import AUTH_REQUIRED, AuthRequest, parse_auth
from onestack.identity.tokens import TokenData, TokenNotFound, ValidatedToken

if TYPE_CHECKING:
    from onestack.identity.core import Identity

log = logging.getLogger(__name__)


POLICIES = {
    "admin_required": "role:admin or is_admin:1",
    "service_role": "role:service",
    "service_or_admin": "rule:admin_required or rule:service_role",
    "token_subject": "user_id:%(target.token.user_id)s",
    "identity:validate_token": "rule:service_or_admin or rule:token_subject or (role:reader and system_scope:all)",
    "identity:check_token": "rule:service_or_admin or rule:token_subject or (role:reader and system_scope:all)",
    "identity:revoke_token": "rule:service_or_admin or rule:token_subject",
    "identity:get_auth_projects": "",
    "identity:get_auth_domains": "",
    "identity:get_auth_system": "",
    "identity:get_auth_catalog": "",
}


@dataclass
class AuthResult:
    user_id: str
    # Methods to report besides the one that ran (the token method adds the old token's).
    methods: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    parent_audit_ids: tuple[str, ...] = ()
    # Scope fixed by the credential itself:
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    fixed_scope: bool = False
    app_cred_id: str | None = None
    access_token_id: str | None = None
    # The token method carries the old token's scope if no new one is asked for.
    inherited_scope: TokenData | None = None


AuthMethod = Callable[["Identity", dict[str, Any], AuthRequest], AuthResult]
AUTH_METHODS: dict[str, AuthMethod] = {}


# --- user lookups ---------------------------------------------------------------


def find_domain(s: Any, ref: Any) -> Project:
    """A domain by ``{"id"}`` or ``{"name"}``; 401 if absent (as Keystone)."""
    if not isinstance(ref, dict):
        raise BadRequest(f"Invalid input for field 'domain': {ref!r} is not of type 'object'")
    if "id" in ref:
        dom = s.get(Project, str(ref["id"]))
    elif "name" in ref:
        dom = s.scalars(
            select(Project).where(Project.is_domain.is_(True), Project.name == str(ref["name"]))
        ).first()
    else:
        raise expecting("id or name", "domain")
    if dom is None or not dom.is_domain:
        raise Unauthorized(AUTH_REQUIRED)
    return dom


def find_user(s: Any, ref: Any, method: str) -> User:
    """A user by ``{"id"}`` or ``{"name", "domain"}``; 401 if unknown."""
    if not isinstance(ref, dict):
        raise BadRequest(f"Invalid input for field 'identity/{method}/user': {ref!r} is not of type 'object'")
    # Keystone tests truthiness: an empty or null id is no id (then a name needs a domain).
    if ref.get("id"):
        user = s.get(User, str(ref["id"]))
    elif "domain" not in ref:
        raise expecting("domain", "user")
    elif ref.get("name"):
        dom = find_domain(s, ref["domain"])
        user = s.scalars(select(User).where(User.domain_id == dom.id, User.name == str(ref["name"]))).first()
    else:
        raise expecting("id or name", "user")
    if user is None:
        raise Unauthorized(AUTH_REQUIRED)
    return user


def check_user_enabled(s: Any, identity: Identity, user: User) -> None:
    dom = s.get(Project, user.domain_id)
    if not user.enabled or dom is None or not dom.enabled:
        raise Unauthorized(f"The account is disabled for user: {user.id}.")
    days = identity.settings.identity.disable_user_account_days_inactive
    if days > 0 and user.last_active_at is not None and user.last_active_at + timedelta(days=days) < utcnow():
        raise Unauthorized(f"The account is disabled for user: {user.id}.")


# --- built-in methods -------------------------------------------------------------


def password_method(identity: Identity, body: dict[str, Any], req: AuthRequest) -> AuthResult:
    if "user" not in body:
        raise expecting("user", "password")
    settings = identity.settings.identity
    with identity.db.read() as s:
        user = find_user(s, body["user"], "password")
        # As Keystone: locked first, then the password, then disabled, then expired
        # (a disabled account is only revealed to someone who knows its password).
        disabled: Unauthorized | None = None
        try:
            check_user_enabled(s, identity, user)
        except Unauthorized as exc:
            disabled = exc
        pw = current_password(s, user.id)
        user_id, options = user.id, dict(user.options or {})
        failed_count, failed_at = user.failed_auth_count or 0, user.failed_auth_at
        pw_hash = pw.password_hash if pw else None
        pw_expires = pw.expires_at if pw else None
    now = utcnow()
    lockout = settings.lockout_failure_attempts > 0 and not options.get("ignore_lockout_failure_attempts")
    if lockout and failed_count >= settings.lockout_failure_attempts:
        if failed_at is None or failed_at + timedelta(seconds=settings.lockout_duration) > now:
            raise Unauthorized(f"The account is locked for user: {user_id}.")
    plain = body["user"].get("password")
    if not check_password(pw_hash, plain, cache_seconds=settings.password_check_cache_seconds):
        if lockout:
            with identity.db.write() as s:
                u = s.get(User, user_id)
                if u is not None:
                    if (u.failed_auth_count or 0) >= settings.lockout_failure_attempts:
                        u.failed_auth_count = 0  # the previous lockout ran out
                    u.failed_auth_count = (u.failed_auth_count or 0) + 1
                    u.failed_auth_at = now
        raise Unauthorized(AUTH_REQUIRED)
    if disabled is not None:
        raise disabled
    if pw_expires is not None and pw_expires <= now:
        raise Unauthorized(f"The password is expired and needs to be changed for user: {user_id}.")
    if (lockout and failed_count) or settings.disable_user_account_days_inactive > 0:
        with identity.db.write() as s:
            u = s.get(User, user_id)
            if u is not None:
                u.failed_auth_count = 0
                u.failed_auth_at = None
                if settings.disable_user_account_days_inactive > 0:
                    u.last_active_at = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return AuthResult(user_id=user_id)


def token_method(identity: Identity, body: dict[str, Any], req: AuthRequest) -> AuthResult:
    token = body.get("id")
    if not isinstance(token, str) or not token:
        raise expecting("id", "token")
    # An invalid token is a 404 "Could not find token" here, as in Keystone.
    vt = identity.tokens.validate(token)
    d = vt.data
    if d.trust_id:
        raise Forbidden("You are not authorized to perform the requested action: rescope a trust token.")
    if d.access_token_id:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "Cannot use an OAuth-scoped token to create another token.")
    if d.app_cred_id:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "Using an application credential token to create another token.")
    return AuthResult(
        user_id=d.user_id,
        methods=list(d.methods),
        expires_at=d.expires_at,
        parent_audit_ids=d.audit_ids,
        inherited_scope=d,
    )


def application_credential_method(identity: Identity, body: dict[str, Any], req: AuthRequest) -> AuthResult:
    with identity.db.read() as s:
        if body.get("id"):
            ac = s.get(ApplicationCredential, str(body["id"]))
        elif body.get("name"):
            if not body.get("user"):
                raise expecting("user", "application credential")
            user = find_user(s, body["user"], "application_credential")
            ac = s.scalars(
                select(ApplicationCredential).where(
                    ApplicationCredential.user_id == user.id, ApplicationCredential.name == str(body["name"])
                )
            ).first()
        else:
            raise expecting("name or ID", "application credential")
        if ac is None:
            raise Unauthorized(AUTH_REQUIRED)
        owner = s.get(User, ac.user_id)
        if owner is None:
            raise Unauthorized(AUTH_REQUIRED)
        disabled: Unauthorized | None = None
        try:
            check_user_enabled(s, identity, owner)
        except Unauthorized as exc:
            disabled = exc
        ac_id, user_id, project_id, system = ac.id, ac.user_id, ac.project_id, ac.system
        expires_at, secret_hash = ac.expires_at, ac.secret_hash
    secret = body.get("secret")
    if not isinstance(secret, str) or not check_secret(secret_hash, secret):
        raise Unauthorized(AUTH_REQUIRED)
    if disabled is not None:
        raise disabled
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthorized(AUTH_REQUIRED)
    return AuthResult(
        user_id=user_id,
        project_id=project_id,
        system=bool(system) and not project_id,
        fixed_scope=True,
        app_cred_id=ac_id,
        expires_at=expires_at,
    )


AUTH_METHODS.update(
    {
        "password": password_method,
        "token": token_method,
        "application_credential": application_credential_method,
    }
)


# --- scope -----------------------------------------------------------------------


@dataclass
class Scope:
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    trust_id: str | None = None


def parse_scope(s: Any, scope: Any) -> Scope:
    """Resolve ``auth.scope`` (its shape checked by ``auth_request``) to ids: 401 for unknown
    targets, as Keystone."""
    if scope is None or isinstance(scope, str) or "unscoped" in scope:
        return Scope()
    if "system" in scope:
        if scope["system"] != {"all": True}:
            raise BadRequest("Invalid input for field 'system': only {\"all\": true} is supported.")
        return Scope(system=True)
    if "OS-TRUST:trust" in scope:
        return Scope(trust_id=scope["OS-TRUST:trust"]["id"])
    if "domain" in scope:
        return Scope(domain_id=find_domain(s, scope["domain"]).id)
    ref = scope["project"]
    if ref.get("name"):
        dom = find_domain(s, ref["domain"])
        proj = s.scalars(
            select(Project).where(Project.domain_id == dom.id, Project.name == ref["name"],
                                  Project.is_domain.is_(False))
        ).first()
    else:
        proj = s.get(Project, ref.get("id") or "")
    if proj is None or proj.is_domain:
        raise Unauthorized(AUTH_REQUIRED)
    return Scope(project_id=proj.id)


def _check_scope(identity: Identity, s: Any, user_id: str, scope: Scope) -> None:
    """401 unless the user may scope there (enabled target, at least one role)."""
    tokens = identity.tokens
    if scope.project_id:
        proj = tokens.project_info(s, scope.project_id)
        if proj is None or not proj["_enabled"]:
            raise Unauthorized(AUTH_REQUIRED)
        if not tokens.effective_roles(s, user_id, project_id=scope.project_id):
            raise Unauthorized(AUTH_REQUIRED)
    elif scope.domain_id:
        dom = tokens.domain_info(s, scope.domain_id)
        if dom is None or not dom["_enabled"]:
            raise Unauthorized(AUTH_REQUIRED)
        if not tokens.effective_roles(s, user_id, domain_id=scope.domain_id):
            raise Unauthorized(AUTH_REQUIRED)
    elif scope.system:
        if not tokens.effective_roles(s, user_id, system=True):
            raise Unauthorized(AUTH_REQUIRED)


def _use_trust(identity: Identity, trust_id: str, user_id: str) -> Trust:
    """Check the trust for its trustee and count one use (403/404 as Keystone)."""
    with identity.db.write() as s:
        trust = s.get(Trust, trust_id)
        now = utcnow()
        if trust is None or trust.deleted_at is not None or (
            trust.expires_at is not None and trust.expires_at <= now
        ):
            raise NotFound(f"Could not find trust: {trust_id}.")
        if trust.trustee_user_id != user_id:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "User is not a trustee.")
        if trust.remaining_uses is not None:
            if trust.remaining_uses <= 0:
                raise Forbidden(f"No remaining uses for trust: {trust_id}.")
            trust.remaining_uses -= 1
        s.flush()
        s.expunge(trust)
        return trust


# --- the token request ---------------------------------------------------------------


def issue_token(identity: Identity, body: Any, http: Any = None) -> ValidatedToken:
    """Authenticate ``{"auth": ...}`` and return the new, validated token."""
    identity.enforcer  # noqa: B018 - imports every service module, so plugins are registered
    req = parse_auth(body, AUTH_METHODS)
    req.http = http
    results = [AUTH_METHODS[name](identity, req.body["identity"][name], req) for name in req.methods]
    user_ids = {r.user_id for r in results}
    if len(user_ids) != 1:
        raise Unauthorized(AUTH_REQUIRED)
    user_id = user_ids.pop()
    methods: list[str] = []
    for name, r in zip(req.methods, results, strict=True):
        methods.append(name)
        methods.extend(r.methods)
    expires = [r.expires_at for r in results if r.expires_at is not None]
    parent = next((r for r in results if r.parent_audit_ids), None)
    fixed = next((r for r in results if r.fixed_scope), None)

    with identity.tokens.read() as s:
        user = s.get(User, user_id)
        if user is None:
            raise Unauthorized(AUTH_REQUIRED)
        check_user_enabled(s, identity, user)
        if fixed is not None:
            scope = Scope(project_id=fixed.project_id, domain_id=fixed.domain_id, system=fixed.system)
        elif req.scope is not None:
            scope = parse_scope(s, req.scope)
        else:
            # No scope asked for: the user's default project, if usable (as Keystone).
            scope = Scope()
            default = user.default_project_id
            if default:
                proj = identity.tokens.project_info(s, default)
                if proj is not None and proj["_enabled"] and identity.tokens.effective_roles(
                    s, user_id, project_id=default
                ):
                    scope = Scope(project_id=default)
        if not scope.trust_id and (fixed is None or fixed.access_token_id is None):
            _check_scope(identity, s, user_id, scope)

    token_user = user_id
    if scope.trust_id:
        trust = _use_trust(identity, scope.trust_id, user_id)
        if trust.impersonation:
            token_user = trust.trustor_user_id
        if trust.expires_at is not None:
            expires.append(trust.expires_at)
        scope = Scope(project_id=trust.project_id, trust_id=trust.id)

    token, data = identity.tokens.issue(
        token_user,
        methods,
        project_id=scope.project_id,
        domain_id=scope.domain_id,
        system=scope.system,
        expires_at=min(expires) if expires else None,
        parent_audit_ids=parent.parent_audit_ids if parent else (),
        trust_id=scope.trust_id,
        app_cred_id=fixed.app_cred_id if fixed else None,
        access_token_id=fixed.access_token_id if fixed else None,
    )
    with identity.tokens.read() as s:
        try:
            return identity.tokens.resolve(s, token, data)
        except TokenNotFound:
            if scope.trust_id:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "the trustor no longer holds the delegated roles.") from None
            raise Unauthorized(AUTH_REQUIRED) from None


# --- token operations for GET/HEAD/DELETE /v3/auth/tokens -------------------------------


def authorize_subject(identity: Identity, rule: str, ctx: AuthContext, vt: ValidatedToken) -> None:
    identity.enforcer.authorize(rule, ctx, {"target": {"token": {"user_id": vt.data.user_id}}})


def subject_token(identity: Identity, ctx: AuthContext, subject: str, rule: str,
                  *, allow_expired: bool = False) -> ValidatedToken:
    vt = identity.tokens.validate(subject, allow_expired=allow_expired)
    authorize_subject(identity, rule, ctx, vt)
    return vt


def revoke_subject(identity: Identity, ctx: AuthContext, subject: str) -> None:
    vt = identity.tokens.validate(subject)
    authorize_subject(identity, "identity:revoke_token", ctx, vt)
    identity.tokens.revoke(vt)


# --- /v3/auth/projects, /domains, /system -----------------------------------------------


def _project_ref(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description or "",
        "enabled": bool(p.enabled),
        "parent_id": p.parent_id,
        "is_domain": bool(p.is_domain),
        "options": dict(p.options or {}),
        "tags": [],
    }


def auth_projects(identity: Identity, ctx: AuthContext) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:get_auth_projects", ctx, {})
    with identity.db.read() as s:
        ids = user_project_ids(s, ctx.user_id)
        if not ids:
            return []
        rows = s.scalars(select(Project).where(Project.id.in_(ids), Project.enabled.is_(True)))
        out = []
        for p in rows:
            info = identity.tokens.project_info(s, p.id)
            if info is not None and info["_enabled"]:
                out.append(_project_ref(p))
        return sorted(out, key=lambda p: p["name"])


def auth_domains(identity: Identity, ctx: AuthContext) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:get_auth_domains", ctx, {})
    with identity.db.read() as s:
        ids = user_domain_ids(s, ctx.user_id)
        if not ids:
            return []
        rows = s.scalars(select(Project).where(Project.id.in_(ids), Project.is_domain.is_(True),
                                               Project.enabled.is_(True)))
        return sorted(
            ({"id": d.id, "name": d.name, "description": d.description or "", "enabled": True,
              "tags": [], "options": dict(d.options or {})} for d in rows),
            key=lambda d: d["name"],
        )


def auth_system(identity: Identity, ctx: AuthContext) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:get_auth_system", ctx, {})
    with identity.db.read() as s:
        if identity.tokens.effective_roles(s, ctx.user_id, system=True):
            return [{"all": True}]
    return []


def auth_catalog(identity: Identity, ctx: AuthContext) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:get_auth_catalog", ctx, {})
    if not (ctx.project_id or ctx.domain_id or ctx.system_scope):
        raise Forbidden("A project-scoped token is required to produce a service catalog.")
    vt = identity.tokens.validate(ctx.token)
    return identity.tokens.catalog_for(vt)  # type: ignore[no-any-return]
