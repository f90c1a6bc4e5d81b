"""A token's payload resolved against the database, cached per identity generation.

Validation decrypts the token, then checks that its user, scope, roles,
trust, application credential and OAuth access token still hold, building
the parts of the token body as it goes. Everything derived here is cached and
the cache is dropped whenever ``identity.generation`` moves (any committed
identity change that can alter a token), so a repeated validation costs a
dictionary lookup. Cached results are also rebuilt at least every 30 s, which
bounds how long a change made by another replica without a revocation event
goes unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.ids import isotime, utcnow
from onestack.identity.effective import effective_role_ids, expand_implied, implication_map
from onestack.identity.models import (
    ApplicationCredential,
    OAuthAccessToken,
    Project,
    Role,
    Trust,
    User,
)
from onestack.identity.tokens.payload import TokenData, TokenNotFound
from onestack.identity.tokens.validated import DERIVED_CACHE_SECONDS, ValidatedToken

if TYPE_CHECKING:
    from onestack.identity.tokens.owner import Owner

# Keystone's [resource] admin_project_name / admin_project_domain_name: tokens
# scoped to this project carry is_admin_project true (bootstrap creates it).
ADMIN_PROJECT_NAME = "admin"
ADMIN_PROJECT_DOMAIN = "default"

# The identity generation at which this thread's current ``TokenProvider.read()``
# session was opened (None outside one).
_session_gen = threading.local()


class Resolver:
    """Resolves payloads for one Identity service, with the derived-data cache."""

    def __init__(self, identity: Owner) -> None:
        self.identity = identity
        self._derived: dict[Any, Any] = {}
        self._derived_gen = -1
        self._derived_at = 0.0
        self._lock = threading.Lock()

    # --- derived-data cache --------------------------------------------------------

    def derived(self) -> dict[Any, Any]:
        """The cache of data derived from the database (dropped on any identity write)."""
        gen = self.identity.generation
        now = time.monotonic()
        if gen != self._derived_gen or now - self._derived_at > DERIVED_CACHE_SECONDS:
            with self._lock:
                self._derived = {}
                self._derived_gen = gen
                self._derived_at = now
        return self._derived

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read session whose data may feed the derived cache.

        The generation is noted before the session's snapshot begins; what is
        built in it is cached only if no identity write committed since, so a
        snapshot older than the newest write never lands in the new cache.
        """
        previous = getattr(_session_gen, "value", None)
        _session_gen.value = self.identity.generation
        try:
            with self.identity.db.read() as s:
                yield s
        finally:
            _session_gen.value = previous

    def cached(self, key: Any, build: Any) -> Any:
        cache = self.derived()
        try:
            return cache[key]
        except KeyError:
            value = build()
            opened_at = getattr(_session_gen, "value", None)
            if opened_at is None or opened_at == self._derived_gen:
                cache[key] = value
            return value

    # --- resolution from the database (cached per generation) ----------------------

    def user_info(self, s: Session, user_id: str) -> dict[str, Any] | None:
        """id, name, domain {id, name}, password_expires_at, enabled (with its domain)."""

        def build() -> dict[str, Any] | None:
            from onestack.identity.passwords import password_expires_at

            user = s.get(User, user_id)
            if user is None:
                return None
            dom = self.domain_info(s, user.domain_id)
            expires = password_expires_at(s, user.id)
            return {
                "id": user.id,
                "name": user.name,
                "domain": {"id": user.domain_id, "name": dom["name"] if dom else None},
                "password_expires_at": isotime(expires, subsecond=True),
                "_enabled": bool(user.enabled) and bool(dom and dom["_enabled"]),
                "_expires": expires,
                "_default_project_id": user.default_project_id,
            }

        return self.cached(("user", user_id), build)  # type: ignore[no-any-return]

    def domain_info(self, s: Session, domain_id: str) -> dict[str, Any] | None:
        def build() -> dict[str, Any] | None:
            dom = s.get(Project, domain_id)
            if dom is None or not dom.is_domain:
                return None
            return {"id": dom.id, "name": dom.name, "_enabled": bool(dom.enabled)}

        return self.cached(("domain", domain_id), build)  # type: ignore[no-any-return]

    def project_info(self, s: Session, project_id: str) -> dict[str, Any] | None:
        def build() -> dict[str, Any] | None:
            proj = s.get(Project, project_id)
            if proj is None or proj.is_domain:
                return None
            dom = self.domain_info(s, proj.domain_id)
            enabled = bool(proj.enabled) and bool(dom and dom["_enabled"])
            # A project below a disabled project is unusable too.
            parent_id, seen = proj.parent_id, {proj.id}
            while enabled and parent_id and parent_id != proj.domain_id and parent_id not in seen:
                seen.add(parent_id)
                parent = s.get(Project, parent_id)
                if parent is None or parent.is_domain:
                    break
                enabled = bool(parent.enabled)
                parent_id = parent.parent_id
            return {
                "id": proj.id,
                "name": proj.name,
                "domain": {"id": proj.domain_id, "name": dom["name"] if dom else None},
                "_enabled": enabled,
                "_is_admin": proj.name == ADMIN_PROJECT_NAME and proj.domain_id == ADMIN_PROJECT_DOMAIN,
            }

        return self.cached(("project", project_id), build)  # type: ignore[no-any-return]

    def role_refs(self, s: Session, role_ids: list[str]) -> list[dict[str, str]]:
        names = self.cached(("role-names",), lambda: {r.id: r.name for r in s.scalars(select(Role))})
        return [{"id": rid, "name": names[rid]} for rid in role_ids if rid in names]

    def effective_roles(
        self, s: Session, user_id: str, *, project_id: str | None = None,
        domain_id: str | None = None, system: bool = False,
    ) -> list[str]:
        key = ("roles", user_id, project_id, domain_id, system)
        return self.cached(  # type: ignore[no-any-return]
            key,
            lambda: effective_role_ids(s, user_id, project_id=project_id, domain_id=domain_id, system=system),
        )

    def expand_roles(self, s: Session, role_ids: list[str]) -> list[str]:
        rules = self.cached(("implications",), lambda: implication_map(s))
        return expand_implied(role_ids, rules)

    def catalog_types(self, s: Session, project_id: str | None) -> frozenset[str]:
        """The service types in a project's catalog (what access rules may name)."""
        from onestack.identity.catalog import build_catalog

        catalog = self.cached(("catalog", project_id), lambda: build_catalog(s, project_id))
        return frozenset(e["type"] for e in catalog)

    def resolve(self, s: Session, token: str, data: TokenData) -> ValidatedToken:
        """Check the token's user, scope, roles, trust ... still hold; build the view."""
        invalid = TokenNotFound(token)
        now = utcnow()
        trust_ref: dict[str, Any] | None = None
        trust_row: Trust | None = None
        if data.trust_id:
            trust_row = s.get(Trust, data.trust_id)
            if (trust_row is None or trust_row.deleted_at is not None
                    or (trust_row.expires_at is not None and trust_row.expires_at <= now)):
                raise invalid
            trust_ref = {
                "id": trust_row.id,
                "impersonation": bool(trust_row.impersonation),
                "trustor_user": {"id": trust_row.trustor_user_id},
                "trustee_user": {"id": trust_row.trustee_user_id},
            }
            for uid in (trust_row.trustor_user_id, trust_row.trustee_user_id):
                info = self.user_info(s, uid)
                if info is None or not info["_enabled"]:
                    raise invalid
        user = self.user_info(s, data.user_id)
        if user is None or not user["_enabled"]:
            raise invalid
        vt = ValidatedToken(token=token, data=data, user=_public(user), trust=trust_ref)
        role_ids: list[str] = []
        if data.project_id:
            proj = self.project_info(s, data.project_id)
            if proj is None or not proj["_enabled"]:
                raise invalid
            vt.project = _public(proj)
            vt.is_admin_project = proj["_is_admin"]
            if trust_row is not None:
                trustor_roles = set(self.effective_roles(s, trust_row.trustor_user_id, project_id=proj["id"]))
                wanted = self.expand_roles(s, list(trust_row.role_ids or []))
                role_ids = [r for r in wanted if r in trustor_roles]
                if len([r for r in (trust_row.role_ids or []) if r not in trustor_roles]):
                    raise invalid
            else:
                role_ids = self.effective_roles(s, data.user_id, project_id=proj["id"])
        elif data.domain_id:
            dom = self.domain_info(s, data.domain_id)
            if dom is None or not dom["_enabled"]:
                raise invalid
            vt.domain = _public(dom)
            role_ids = self.effective_roles(s, data.user_id, domain_id=dom["id"])
        elif data.system:
            role_ids = self.effective_roles(s, data.user_id, system=True)
        if data.app_cred_id:
            ac = s.get(ApplicationCredential, data.app_cred_id)
            if ac is None or ac.user_id != data.user_id or (ac.expires_at is not None and ac.expires_at <= now):
                raise invalid
            held = set(role_ids)
            wanted = self.expand_roles(s, list(ac.role_ids or []))
            if not any(r in held for r in ac.role_ids or []):
                raise invalid
            role_ids = [r for r in wanted if r in held]
            vt.app_cred = {
                "id": ac.id,
                "name": ac.name,
                "restricted": not ac.unrestricted,
            }
            if ac.access_rules:
                vt.app_cred["access_rules"] = list(ac.access_rules)
                # keystonemiddleware checks the service is in the token's catalog
                vt.catalog_types = self.catalog_types(s, data.project_id)
        if data.access_token_id:
            at = s.get(OAuthAccessToken, data.access_token_id)
            if at is None or (at.expires_at is not None and at.expires_at <= now):
                raise invalid
            held = set(role_ids)
            role_ids = [r for r in self.expand_roles(s, list(at.role_ids or [])) if r in held]
            vt.oauth = {"access_token_id": at.id, "consumer_id": at.consumer_id}
        if data.scoped and not role_ids:
            raise invalid
        vt.roles = self.role_refs(s, role_ids)
        return vt


def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}
