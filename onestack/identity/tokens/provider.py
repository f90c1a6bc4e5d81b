"""The token provider: issues tokens, validates them, renders their bodies.

Validation: decrypt, check expiry, check revocation events (kept in memory by
``RevocationList``), then resolve the user, scope, roles, trust and
application credential from the database (``Resolver``, cached per identity
generation). A validated token is remembered, so a repeated validation costs
a dictionary lookup; ``api/auth.py`` answers repeated ``GET``/``HEAD
/v3/auth/tokens`` straight from this memory on the event loop.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.fernet import InvalidToken

from onestack.common.auth import AuthContext
from onestack.common.errors import ServiceUnavailable, Unauthorized
from onestack.common.ids import isotime, utcnow
from onestack.common.masterkey import KeyUnavailable
from onestack.identity import revoke
from onestack.identity.tokens.keys import KeyRepository
from onestack.identity.tokens.payload import (
    ALLOW_EXPIRED_WINDOW,
    TokenData,
    TokenNotFound,
    decode_payload,
    encode_payload,
    new_audit_id,
)
from onestack.identity.tokens.resolve import Resolver
from onestack.identity.tokens.revocation import RevocationList
from onestack.identity.tokens.validated import ValidatedToken

if TYPE_CHECKING:
    from onestack.identity.tokens.owner import Owner

log = logging.getLogger(__name__)


class TokenProvider(Resolver):
    """Issues and validates tokens for one Identity service."""

    def __init__(self, identity: Owner) -> None:
        super().__init__(identity)
        self.keys = KeyRepository(identity)
        self.revocations = RevocationList(identity)
        revoke.listeners.append(self.revocations.on_event)
        self._valid: OrderedDict[str, ValidatedToken] = OrderedDict()
        self._valid_stamp: tuple[int, int] = (-1, -1)
        self.max_cached = 20000

    # --- issuing ---------------------------------------------------------------

    def issue(
        self,
        user_id: str,
        methods: list[str] | tuple[str, ...],
        *,
        project_id: str | None = None,
        domain_id: str | None = None,
        system: bool = False,
        expires_at: datetime | None = None,
        parent_audit_ids: tuple[str, ...] = (),
        trust_id: str | None = None,
        app_cred_id: str | None = None,
        access_token_id: str | None = None,
    ) -> tuple[str, TokenData]:
        """A new token (string, payload); the caller has checked every rule."""
        now = utcnow()
        default_exp = now + timedelta(seconds=self.identity.settings.identity.token_expiration)
        exp = min(expires_at, default_exp) if expires_at is not None else default_exp
        exp = exp.replace(microsecond=0)
        audit_ids = (new_audit_id(), *parent_audit_ids[-1:]) if parent_audit_ids else (new_audit_id(),)
        data = TokenData(
            user_id=user_id,
            methods=tuple(dict.fromkeys(methods)),
            expires_at=exp,
            issued_at=now,
            audit_ids=audit_ids,
            project_id=project_id,
            domain_id=domain_id,
            system=system,
            trust_id=trust_id,
            app_cred_id=app_cred_id,
            access_token_id=access_token_id,
        )
        try:
            fernet = self.keys.fernet
        except KeyUnavailable as exc:  # the master key does not open the token keys
            log.error("cannot issue tokens: the token keys cannot be unwrapped: %s", exc)
            raise ServiceUnavailable("The token keys cannot be read with this cloud's master key.") from None
        raw = fernet.encrypt(encode_payload(data))
        return raw.decode("ascii").rstrip("="), data

    # --- decoding ----------------------------------------------------------------

    def decode(self, token: str) -> TokenData:
        """Decrypt and parse (no expiry or revocation check); TokenNotFound if invalid."""
        if not token or len(token) > 1024 or not token.isascii():
            raise TokenNotFound(token if token and len(token) < 300 else "")
        padded = token + "=" * (-len(token) % 4)
        try:
            try:
                raw = self.keys.fernet.decrypt(padded.encode("ascii"))
            except InvalidToken:
                # Another replica may have rotated the keys: try once with fresh ones.
                if not self.keys.reload():
                    raise TokenNotFound(token) from None
                try:
                    raw = self.keys.fernet.decrypt(padded.encode("ascii"))
                except InvalidToken:
                    raise TokenNotFound(token) from None
        except KeyUnavailable as exc:  # the master key does not open the token keys
            log.error("cannot validate tokens: the token keys cannot be unwrapped: %s", exc)
            raise TokenNotFound(token) from None
        try:
            return decode_payload(raw)
        except ValueError:
            raise TokenNotFound(token) from None

    def _stamp(self) -> tuple[int, int]:
        return (self.identity.generation, self.revocations.version)

    # --- validation ------------------------------------------------------------------

    def lookup_fast(self, token: str) -> ValidatedToken | None:
        """A previously validated, still valid token without any I/O, or None.

        Safe to call on the event loop: it only reads memory.
        """
        if not self.revocations.fresh() or self._valid_stamp != self._stamp():
            return None
        hit = self._valid.get(token)
        if hit is None or hit.recheck_ts <= time.time():
            return None
        return hit

    def validate(self, token: str, *, allow_expired: bool = False) -> ValidatedToken:
        """The validated token; ``TokenNotFound`` (404) if it is not valid."""
        if not allow_expired:
            hit = self.lookup_fast(token)
            if hit is not None:
                return hit
        self.revocations.refresh()
        stamp = self._stamp()
        if not allow_expired:
            hit = self._valid.get(token) if self._valid_stamp == stamp else None
            if hit is not None and hit.recheck_ts > time.time():
                return hit
        data = self.decode(token)
        now = utcnow()
        if data.expires_at <= now and not (allow_expired and data.expires_at + ALLOW_EXPIRED_WINDOW > now):
            raise TokenNotFound(token)
        with self.read() as s:
            vt = self.resolve(s, token, data)
        if self.revocations.is_revoked(vt.revocation_values(), data.issued_at):
            raise TokenNotFound(token)
        if not allow_expired or data.expires_at > now:
            with self._lock:
                if self._valid_stamp != stamp:
                    self._valid.clear()
                    self._valid_stamp = stamp
                self._valid[token] = vt
                if len(self._valid) > self.max_cached:
                    self._valid.popitem(last=False)
        return vt

    def validate_context(self, token: str) -> AuthContext:
        """The cloud's token validator: an AuthContext, or 401 for any invalid token."""
        try:
            vt = self.validate(token)
        except TokenNotFound:
            raise Unauthorized("The request you have made requires authentication.") from None
        return self.context(vt)

    def context(self, vt: ValidatedToken) -> AuthContext:
        if vt.context is None:
            d = vt.data
            project, domain = vt.project, vt.domain
            rules = (vt.app_cred or {}).get("access_rules") or None
            vt.context = AuthContext(
                token=vt.token,
                user_id=vt.user["id"],
                user_name=vt.user["name"],
                user_domain_id=vt.user["domain"]["id"],
                user_domain_name=vt.user["domain"]["name"],
                project_id=project["id"] if project else None,
                project_name=project["name"] if project else None,
                project_domain_id=project["domain"]["id"] if project else None,
                project_domain_name=project["domain"]["name"] if project else None,
                domain_id=domain["id"] if domain else None,
                domain_name=domain["name"] if domain else None,
                system_scope=d.system,
                roles=tuple(r["name"] for r in vt.roles),
                role_ids=tuple(r["id"] for r in vt.roles),
                is_admin_project=vt.is_admin_project,
                expires_at=d.expires_at,
                issued_at=d.issued_at,
                audit_ids=d.audit_ids,
                methods=d.methods,
                trust_id=d.trust_id,
                app_cred_id=d.app_cred_id,
                extra={
                    "trust": vt.trust,
                    "application_credential": vt.app_cred,
                    "oauth": vt.oauth,
                },
                access_rules=tuple(rules) if rules else None,
                catalog_types=vt.catalog_types,
            )
        return vt.context

    # --- resolution from the database (cached per generation) ----------------------
    # --- revocation of one token ----------------------------------------------------

    def revoke(self, vt: ValidatedToken) -> None:
        with self.identity.db.write() as s:
            revoke.revoke_token(s, vt.data.audit_ids[0])
        with self._lock:
            self._valid.pop(vt.token, None)

    # --- rendering -----------------------------------------------------------------

    def render(self, vt: ValidatedToken, *, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Keystone's token body ``{"token": {...}}``; ``catalog`` None omits it."""
        d = vt.data
        body: dict[str, Any] = {
            "methods": list(d.methods),
            "user": dict(vt.user),
            "audit_ids": list(d.audit_ids),
            "expires_at": isotime(d.expires_at, subsecond=True),
            # The issue time to the microsecond (the payload keeps it): a token
            # rescoped within the same second still shows a later issued_at.
            "issued_at": isotime(d.issued_at, subsecond=True),
        }
        if vt.trust:
            body["OS-TRUST:trust"] = vt.trust
        if vt.oauth:
            body["OS-OAUTH1"] = dict(vt.oauth)
        if vt.project:
            body["project"] = vt.project
            if not vt.trust:  # Keystone leaves these out of trust-scoped tokens
                body["is_domain"] = False
                body["is_admin_project"] = vt.is_admin_project
        elif vt.domain:
            body["domain"] = vt.domain
        elif d.system:
            body["system"] = {"all": True}
        if d.scoped:
            body["roles"] = vt.roles
            if catalog is not None:
                body["catalog"] = catalog
        if vt.app_cred:
            body["application_credential"] = vt.app_cred
        return {"token": body}

    def catalog_for(self, vt: ValidatedToken) -> list[dict[str, Any]]:
        from onestack.identity.catalog import build_catalog

        project_id = vt.project["id"] if vt.project else None

        def build() -> list[dict[str, Any]]:
            with self.read() as s:
                return build_catalog(s, project_id)

        return self.cached(("catalog", project_id), build)  # type: ignore[no-any-return]

    def body_bytes(self, vt: ValidatedToken, *, nocatalog: bool) -> bytes:
        """The rendered JSON body (cached on the validated token)."""
        cached = vt.bodies.get(nocatalog)
        if cached is None:
            from onestack.common.web import dumps

            catalog = None if nocatalog else self.catalog_for(vt)
            cached = dumps(self.render(vt, catalog=catalog))
            vt.bodies[nocatalog] = cached
        return cached
