"""What every service is given and what it gives back.

``onestack.app`` builds one :class:`Cloud` per process and asks each service
package for its :class:`Service` (``create(cloud)``). A service keeps the
cloud to reach the settings, the database, the token validator and, through
their interface modules, the other services (``cloud.service("identity")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from starlette.types import ASGIApp

from onestack.common.auth import CachingValidator, TokenValidator
from onestack.common.db import Database
from onestack.config import Settings

if TYPE_CHECKING:
    from onestack.common.tasks.hosts import HostRegistry
    from onestack.common.tasks.kinds import KindRegistry, KindRule
    from onestack.common.tasks.processes import ProcessRegistry
    from onestack.common.tasks.queue import TaskQueue


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
    # Task handlers this process runs itself (the all-in-one cloud's worker).
    task_handlers: dict[str, Any] = field(default_factory=dict)
    _task_kinds: Any = field(default=None, repr=False)
    _tasks: Any = field(default=None, repr=False)
    _hosts: Any = field(default=None, repr=False)
    _processes: Any = field(default=None, repr=False)
    _identity: str = field(default="", repr=False)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def service(self, name: str) -> Any:
        return self.services[name]

    @property
    def task_kinds(self) -> KindRegistry:
        """The rules of the task kinds the services own (attempts, backoff, hooks)."""
        if self._task_kinds is None:
            from onestack.common.tasks.kinds import KindRegistry

            self._task_kinds = KindRegistry()
        return self._task_kinds  # type: ignore[no-any-return]

    def handle_tasks(self, kind: str, handler: Any, rule: KindRule | None = None) -> None:
        """Run ``kind``'s tasks in this process - this host's and host-less
        ones - with ``handler`` (see ``onestack.common.tasks.worker``), under
        ``rule`` if given. Call from a service's ``create()``."""
        if rule is not None:
            self.task_kinds.register(kind, rule)
        self.task_handlers[kind] = handler

    @property
    def tasks(self) -> TaskQueue:
        """The durable task queue: services enqueue in their own write
        transactions (``cloud.tasks.enqueue(session, kind, ...)``)."""
        if self._tasks is None:
            from onestack.common.tasks.queue import TaskQueue

            self._tasks = TaskQueue(self.db, kinds=self.task_kinds)
        return self._tasks  # type: ignore[no-any-return]

    @property
    def hosts(self) -> HostRegistry:
        """The host/service heartbeat table (os-services, agents)."""
        if self._hosts is None:
            from onestack.common.tasks.hosts import HostRegistry

            self._hosts = HostRegistry(self.db, clock=self.tasks.clock)
        return self._hosts  # type: ignore[no-any-return]

    @property
    def host_name(self) -> str:
        """This host's name in the host tables (``[hosts] name``, default the hostname)."""
        if self.settings.hosts.name:
            return self.settings.hosts.name
        import socket

        return socket.gethostname()

    @property
    def process_identity(self) -> str:
        """This process: ``host:pid:random``, what it writes on the work it owns
        in flight (uploads, its workers' leases; see ``common.tasks.processes``)."""
        if not self._identity:
            import os
            import uuid

            self._identity = f"{self.host_name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return self._identity

    @property
    def processes(self) -> ProcessRegistry:
        """The running cloud processes and their heartbeats."""
        if self._processes is None:
            from onestack.common.tasks.processes import ProcessRegistry

            self._processes = ProcessRegistry(self.db)
        return self._processes  # type: ignore[no-any-return]

    def catalog(self) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        for svc in self.services.values():
            entries.extend(svc.catalog)
        return entries

    def set_validator(self, validator: TokenValidator) -> None:
        self.validator = validator
        self.cached_validator = CachingValidator(validator, ttl=self.settings.identity.token_cache_seconds)
