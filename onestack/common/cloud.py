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
