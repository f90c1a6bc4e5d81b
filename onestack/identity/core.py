"""The Identity service object: what the identity service functions share.

It holds the settings, the database, the policy enforcer and the token
provider, and it is the cloud's token validator. Service logic lives in
``identity/service/*.py`` as functions taking this object first; the HTTP
API, the bootstrap and the ASGI wiring (``identity/app.py``) sit above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from onestack.common.auth import AuthContext
from onestack.common.cloud import CatalogEntry

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.common.masterkey import MasterKey
    from onestack.common.policy import Enforcer
    from onestack.identity.tokens import TokenProvider


class Identity:
    name = "identity"
    prefix = "/identity"

    def __init__(
        self,
        cloud: Cloud,
        policy_defaults: Callable[[], dict[str, str]],
        policy_scopes: Callable[[Iterable[str]], dict[str, tuple[str, ...]]] | None = None,
    ) -> None:
        """``policy_defaults`` gives the enforcer's default rules when it is first
        needed, ``policy_scopes`` their scope types (the service modules declare
        them; the wiring collects them)."""
        self.cloud = cloud
        self.settings = cloud.settings
        self.db = cloud.db
        self.catalog = [CatalogEntry("identity", "keystone", "/identity", "Identity (Keystone v3)")]
        self._policy_defaults = policy_defaults
        self._policy_scopes = policy_scopes
        self._enforcer: Enforcer | None = None
        self._tokens: TokenProvider | None = None
        self._master_key: MasterKey | None = None
        # Bumped after every committed identity change that can alter what a
        # token carries (users, projects, roles, assignments, catalog ...).
        # Caches of derived data remember the generation they were built at.
        self.generation = 0
        cloud.set_validator(self)

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
    def enforcer(self) -> Enforcer:
        if self._enforcer is None:
            from onestack.common.policy import Enforcer, override_path

            rules = self._policy_defaults()
            self._enforcer = Enforcer(
                rules, override_path(self.settings, self.name),
                scope_types=self._policy_scopes(rules) if self._policy_scopes else None,
                enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer

    @property
    def master_key(self) -> MasterKey:
        """The master key wrapping the token and credential keys (common/masterkey.py)."""
        if self._master_key is None:
            from onestack.common import masterkey

            self._master_key = masterkey.load(self.settings)
        return self._master_key

    @property
    def tokens(self) -> TokenProvider:
        if self._tokens is None:
            from onestack.identity.tokens import TokenProvider

            self._tokens = TokenProvider(self)
        return self._tokens

    # --- TokenValidator -------------------------------------------------------

    def validate(self, token: str) -> AuthContext:
        """Full validation of a token for any service (no cache)."""
        return self.tokens.validate_context(token)
