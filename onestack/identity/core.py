"""The Identity service object: what the rest of the cloud holds on to.

It owns the identity sub-app, the token provider and the policy enforcer,
and it is the cloud's token validator. Service logic lives in
``identity/service/*.py`` as functions taking this object first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from onestack.app import CatalogEntry
from onestack.common.auth import AuthContext
from onestack.common.web import keystone_error, service_app

if TYPE_CHECKING:
    from onestack.app import Cloud


class Identity:
    name = "identity"
    prefix = "/identity"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.db = cloud.db
        self.catalog = [CatalogEntry("identity", "keystone", "/identity", "Identity (Keystone v3)")]
        self._enforcer: Any = None
        self._tokens: Any = None
        self._master_key: Any = None
        # Bumped after every committed identity change that can alter what a
        # token carries (users, projects, roles, assignments, catalog ...).
        # Caches of derived data remember the generation they were built at.
        self.generation = 0
        cloud.set_validator(self)
        # First start: hash the bootstrap passwords while the migrations run.
        from onestack.identity.bootstrap import start_early

        self.bootstrap_hashes = start_early(self)

    def touch(self) -> None:
        """Call after committing a change that affects tokens or the catalog."""
        self.generation += 1
        if self.cloud.cached_validator is not None:
            self.cloud.cached_validator.forget()

    @property
    def public_url(self) -> str:
        return self.settings.base_url + self.prefix

    # --- pieces built on first use (keeps start-up cheap) -------------------

    @property
    def enforcer(self) -> Any:
        if self._enforcer is None:
            from onestack.common.policy import Enforcer, override_path
            from onestack.identity.service import default_policies
            from onestack.identity.service.scope_types import scope_types

            rules = default_policies()
            self._enforcer = Enforcer(
                rules, override_path(self.settings, self.name),
                scope_types=scope_types(rules), enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer

    @property
    def master_key(self) -> Any:
        """The master key wrapping the token and credential keys (common/masterkey.py)."""
        if self._master_key is None:
            from onestack.common import masterkey

            self._master_key = masterkey.load(self.settings)
        return self._master_key

    @property
    def tokens(self) -> Any:
        if self._tokens is None:
            from onestack.identity.tokens import TokenProvider

            self._tokens = TokenProvider(self)
        return self._tokens

    # --- TokenValidator -------------------------------------------------------

    def validate(self, token: str) -> AuthContext:
        """Full validation of a token for any service (no cache)."""
        return self.tokens.validate_context(token)

    # --- Service protocol -----------------------------------------------------

    def asgi(self) -> ASGIApp:
        from onestack.identity.api import all_routes
        from onestack.identity.api.auth import FastTokenValidation

        app = service_app(
            all_routes(),
            keystone_error,
            state={"identity": self, "validator": self, "service_type": "identity",
                   "auth_uri": self.public_url},
        )
        return FastTokenValidation(self, app)

    def prepare(self) -> None:
        """Runs before serving (schema already upgraded): keys and bootstrap."""
        from onestack.identity.bootstrap import bootstrap

        bootstrap(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
