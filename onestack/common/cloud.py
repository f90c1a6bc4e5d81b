"""What every service is given and what it gives back.

``onestack.app`` builds one :class:`Cloud` per process and asks each service
package for its :class:`Service` (``create(cloud)``). A service keeps the
cloud to reach the settings, the database, the token validator and, through
their interface modules, the other services (``cloud.service("identity")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starlette.types import ASGIApp

from onestack.common.auth import CachingValidator, TokenValidator
from onestack.common.db import Database
from onestack.config import Settings


@dataclass(frozen=True)
class CatalogEntry:
    service_type: str  # "identity", "image", "compute" ...
    name: str  # "keystone", "glance", "nova" ...
    path: str  # URL path of the endpoint, e.g. "/identity" or "/compute/v2.1"
    description: str = ""
    # A whole URL for an endpoint served on a listener of its own (S3); empty
    # for the usual endpoint under the cloud's base URL.
    url: str = ""

    def url_for(self, base: str) -> str:
        """The endpoint's URL, given the cloud's base URL."""
        return self.url or base + self.path


@dataclass(frozen=True)
class Listener:
    """A port of its own that a service serves besides the main one (S3's).

    ``onestack up`` binds each one next to the main listener, in the same
    event loop; a listener whose port is taken is reported and left out.
    """

    name: str  # "s3"
    host: str
    port: int
    url: str  # what clients use (printed by ``onestack up``)
    app: ASGIApp


class Service(Protocol):
    name: str
    prefix: str  # mount point, e.g. "/identity"
    catalog: list[CatalogEntry]

    def asgi(self) -> ASGIApp: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Cloud:
    """Everything the running process shares: settings, database, services."""

    settings: Settings
    db: Database
    services: dict[str, Any] = field(default_factory=dict)
    # Identity's validator (uncached) and the cached one other services use.
    validator: TokenValidator | None = None
    cached_validator: CachingValidator | None = None

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def service(self, name: str) -> Any:
        return self.services[name]

    def catalog(self) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        for svc in self.services.values():
            entries.extend(svc.catalog)
        return entries

    def set_validator(self, validator: TokenValidator) -> None:
        self.validator = validator
        self.cached_validator = CachingValidator(validator, ttl=self.settings.identity.token_cache_seconds)
