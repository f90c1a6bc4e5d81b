"""Who is calling: the authentication context every service API works with.

Identity validates tokens; every other service asks it through a
``TokenValidator`` (in-process in all-in-one mode) wrapped in a short-lived
cache, so a busy API does not re-validate the same token on every request.

``authenticate`` is what keystonemiddleware's ``auth_token`` is in front of an
OpenStack service, Identity's own API included: besides validating the token
it enforces an application credential's *access rules* - the request's
service type, method and path (relative to the service's endpoint, e.g.
``/v2/images/{id}``) must match one of them, or the answer is 401.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from starlette.requests import Request

from onestack.common.errors import AuthenticationRequired, Unauthorized

AUTH_REQUIRED = "The request you have made requires authentication."


@dataclass(frozen=True)
class AuthContext:
    """A validated token's facts (the fields oslo.policy credentials carry)."""

    token: str
    user_id: str
    user_name: str = ""
    user_domain_id: str = ""
    user_domain_name: str = ""
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None  # domain-scoped token
    domain_name: str | None = None
    system_scope: bool = False  # system-scoped token ("system": {"all": true})
    roles: tuple[str, ...] = ()  # role names, implied roles expanded
    role_ids: tuple[str, ...] = ()
    is_admin_project: bool = False
    expires_at: datetime | None = None
    issued_at: datetime | None = None
    audit_ids: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    trust_id: str | None = None
    app_cred_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # An application credential's access rules ({service, method, path}), or
    # None when the token is not limited by any; and then the service types of
    # the token's catalog (keystonemiddleware checks the service is in it).
    access_rules: tuple[Mapping[str, str], ...] | None = None
    catalog_types: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        """System admin, or admin on the admin project (cloud-wide admin)."""
        return "admin" in self.roles and (self.system_scope or self.is_admin_project)

    def has_role(self, name: str) -> bool:
        return name in self.roles

    def policy_credentials(self) -> dict[str, Any]:
        """The credentials dict policy rules are checked against."""
        return {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project_domain_id,
            "domain_id": self.domain_id,
            "system_scope": "all" if self.system_scope else None,
            "roles": list(self.roles),
            "is_admin_project": self.is_admin_project,
            "trust_id": self.trust_id,
            "application_credential_id": self.app_cred_id,
        }


class TokenValidator(Protocol):
    def validate(self, token: str) -> AuthContext:
        """Return the token's context; raise ``Unauthorized``/``NotFound`` if invalid."""
        ...


class CachingValidator:
    """Wraps a validator with a bounded time-to-live cache.

    Identity's own API never uses this (revocation there must be immediate);
    other services accept that a revoked token keeps working for at most
    ``ttl`` seconds, as with keystonemiddleware's token cache.
    """

    def __init__(self, inner: TokenValidator, ttl: float = 5.0, size: int = 4096) -> None:
        self.inner = inner
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, AuthContext]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, token: str) -> AuthContext | None:
        """The context of a token validated less than ``ttl`` ago, else None.

        Cheap and non-blocking: callers on the event loop use it before
        sending a full validation to a worker thread.
        """
        with self._lock:
            hit = self._entries.get(token)
            if hit is not None and hit[0] > time.monotonic():
                self._entries.move_to_end(token)
                return hit[1]
        return None

    def validate(self, token: str) -> AuthContext:
        now = time.monotonic()
        hit = self.cached(token)
        if hit is not None:
            return hit
        ctx = self.inner.validate(token)
        if self.ttl > 0:
            expires = now + self.ttl
            if ctx.expires_at is not None:
                exp = ctx.expires_at
                if exp.tzinfo is None:  # naive times are UTC here, not local time
                    exp = exp.replace(tzinfo=UTC)
                remaining = exp.timestamp() - time.time()
                expires = min(expires, now + max(remaining, 0))
            with self._lock:
                self._entries[token] = (expires, ctx)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return ctx

    def forget(self, token: str | None = None) -> None:
        with self._lock:
            if token is None:
                self._entries.clear()
            else:
                self._entries.pop(token, None)


def token_from(request: Request) -> str:
    token = request.headers.get("x-auth-token")
    if not token:
        raise AuthenticationRequired(AUTH_REQUIRED)
    return token


async def authenticate(request: Request) -> AuthContext:
    """The caller's context, using the validator on the app's state; 401 if
    the token is missing or invalid, or its access rules do not allow this
    request.

    Each service sub-app puts its validator at ``app.state.validator`` and its
    catalog service type at ``app.state.service_type``.
    """
    from onestack.common.web import run

    token = token_from(request)
    validator: TokenValidator = request.app.state.validator
    ctx: AuthContext | None = None
    if isinstance(validator, CachingValidator):
        ctx = validator.cached(token)
    if ctx is None:
        try:
            ctx = await run(validator.validate, token)
        except AuthenticationRequired:
            raise
        except Unauthorized as exc:
            raise AuthenticationRequired(exc.message) from None
    if ctx.access_rules is not None:
        enforce_access_rules(ctx, getattr(request.app.state, "service_type", None),
                             request.method, service_path(request.scope))
    return ctx


# --- application credential access rules (keystonemiddleware's semantics) ------------


def service_path(scope: Mapping[str, Any]) -> str:
    """The request path below the service's mount point (``/v2/images``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"


@lru_cache(maxsize=1024)
def _path_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``{name}`` match one path segment, ``**`` any rest (slashes
    included); everything else matches itself."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]+")
            i += 1
        elif pattern[i] == "{" and (end := pattern.find("}", i)) > 0:
            out.append("[^/]+")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def path_matches(path: str, pattern: str) -> bool:
    return _path_regex(pattern).fullmatch(path) is not None


def access_allowed(
    rules: Sequence[Mapping[str, str]], catalog_types: frozenset[str],
    service_type: str | None, method: str, path: str,
) -> bool:
    """Would keystonemiddleware let a token with these access rules make this request?"""
    if not service_type:
        return False  # a service that does not say what it is cannot check the rules
    # A token may always be validated, whatever its rules.
    if service_type == "identity" and method == "GET" and path.endswith("/v3/auth/tokens"):
        return True
    if service_type not in catalog_types:
        return False
    return any(
        rule.get("method") == method and rule.get("service") == service_type
        and isinstance(rule.get("path"), str) and path_matches(path, rule["path"])
        for rule in rules
    )


def enforce_access_rules(ctx: AuthContext, service_type: str | None, method: str, path: str) -> None:
    """401 unless the caller's access rules (if any) allow the request."""
    if ctx.access_rules is None:
        return
    if not access_allowed(ctx.access_rules, ctx.catalog_types, service_type, method, path):
        raise AuthenticationRequired(AUTH_REQUIRED)
