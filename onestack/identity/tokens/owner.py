"""What the token machinery needs of the Identity service object that owns it.

The key repository, the revocation list and the provider keep a reference to
their owner (``identity.core.Identity``) but know it only by this protocol:
the token code sits below the service object in the identity layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from onestack.common.db import Database
    from onestack.common.masterkey import MasterKey
    from onestack.config import Settings


class Owner(Protocol):
    db: Database
    settings: Settings
    # Bumped after every committed identity change that can alter what a
    # token carries; caches of derived data remember the generation they were
    # built at.
    generation: int

    @property
    def master_key(self) -> MasterKey:
        """The master key the token keys are wrapped with."""

    def touch(self) -> None:
        """Call after committing a change that affects tokens or the catalog."""
