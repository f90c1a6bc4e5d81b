"""The Compute service object: what the compute service functions share.

Settings, the database, the policy enforcer, the quotas, the microversion
range, and the adapters to the other services Compute uses (Networking for
ports, through :mod:`onestack.compute.networking`). Service logic lives in
``compute/service/`` as functions taking this object first; the HTTP API,
the agent and the ASGI wiring (``compute/app.py``) sit above it.
"""

from __future__ import annotations

import logging
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from onestack.common.cloud import CatalogEntry
from onestack.common.errors import Forbidden
from onestack.common.microversions import Microversions

if TYPE_CHECKING:
    from onestack.common.auth import AuthContext
    from onestack.common.cloud import Cloud
    from onestack.common.policy import Enforcer
    from onestack.compute.networking.base import Networking
    from onestack.compute.usage import ComputeQuotas
    from onestack.compute.virt.base import Diagnostics

LOG = logging.getLogger(__name__)

# The highest microversion whose behaviour every resource served here implements.
MAX_VERSION = "2.96"
MIN_VERSION = "2.1"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"


class HostCalls(Protocol):
    """What the API asks of this process's compute agent directly (its host's
    consoles), for servers on the host it runs."""

    host: str

    async def console_output(self, uuid: str, max_bytes: int) -> str: ...

    async def diagnostics(self, uuid: str) -> Diagnostics: ...

    async def serial_console(self, uuid: str) -> Path: ...

    async def vnc_console(self, uuid: str) -> Path: ...

    async def set_admin_password(self, uuid: str, user: str, password: str) -> None: ...


class ComputeService:
    name = "compute"
    prefix = "/compute"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.conf = cloud.settings.compute
        self.db = cloud.db
        self.catalog = [CatalogEntry("compute", "nova", "/compute/v2.1", "Compute (Nova v2.1)")]
        self.versions = Microversions.create("compute", MIN_VERSION, MAX_VERSION, LEGACY_HEADER)
        self.state_dir = cloud.state_dir / "compute"
        self._enforcer: Enforcer | None = None
        self._quotas: ComputeQuotas | None = None
        self._network: Networking | None = None
        self._metadata_secret: bytes | None = None
        self.host_name = ""
        # This process's compute agent, when it runs one (set by the app).
        self.host_calls: HostCalls | None = None

    # --- settings-derived ---------------------------------------------------------

    @property
    def public_url(self) -> str:
        return self.settings.base_url + "/compute/v2.1"

    @property
    def this_host(self) -> str:
        """The name this process's compute agent registers under."""
        if not self.host_name:
            self.host_name = self.settings_host_name()
        return self.host_name

    def settings_host_name(self) -> str:
        hosts = getattr(self.settings, "hosts", None)
        name = getattr(hosts, "name", "") if hosts is not None else ""
        return name or socket.gethostname()

    # --- policy -------------------------------------------------------------------

    @property
    def enforcer(self) -> Enforcer:
        if self._enforcer is None:
            from onestack.common.policy import Enforcer, override_path
            from onestack.compute.policies import DEFAULTS, scope_types

            self._enforcer = Enforcer(
                DEFAULTS, override_path(self.settings, "compute"),
                scope_types=scope_types(), enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer

    def allowed(self, rule: str, ctx: AuthContext, target: dict[str, Any] | None = None) -> bool:
        return self.enforcer.check(rule, self.credentials(ctx), target or self.own_target(ctx))

    def authorize(self, rule: str, ctx: AuthContext, target: dict[str, Any] | None = None) -> None:
        """Nova's 403: ``Policy doesn't allow <rule> to be performed.``"""
        if not self.allowed(rule, ctx, target):
            raise Forbidden(f"Policy doesn't allow {rule} to be performed.")

    def is_admin(self, ctx: AuthContext) -> bool:
        return self.enforcer.check("context_is_admin", self.credentials(ctx), {})

    def credentials(self, ctx: AuthContext) -> dict[str, Any]:
        creds = ctx.policy_credentials()
        # Nova's context.is_admin: what its context_is_admin rule says.
        creds["is_admin"] = self.enforcer.check("context_is_admin", dict(creds, is_admin=False), {})
        return creds

    @staticmethod
    def own_target(ctx: AuthContext) -> dict[str, Any]:
        return {"project_id": ctx.project_id, "user_id": ctx.user_id}

    # --- quotas -------------------------------------------------------------------

    @property
    def quotas(self) -> ComputeQuotas:
        if self._quotas is None:
            from onestack.compute.usage import build_quotas

            self._quotas = build_quotas(self.conf)
        return self._quotas

    # --- other services -----------------------------------------------------------

    @property
    def network(self) -> Networking:
        """Networking: the real service's interface when it runs in this cloud,
        else the in-memory stand-in (API tests, a cloud without Networking)."""
        if self._network is None:
            from onestack.compute.networking import connect

            self._network = connect(self.cloud)
        return self._network

    def use_network(self, network: Networking) -> None:
        self._network = network

    @property
    def metadata_secret(self) -> bytes:
        """The shared secret of the metadata proxy's signed headers."""
        if self._metadata_secret is None:
            configured = self.conf.metadata_proxy_shared_secret
            if configured:
                self._metadata_secret = configured.encode()
            else:
                path = self.state_dir / "metadata_proxy_secret"
                try:
                    self._metadata_secret = path.read_bytes().strip()
                except FileNotFoundError:
                    self.state_dir.mkdir(parents=True, exist_ok=True)
                    value = secrets.token_hex(32).encode()
                    tmp = path.with_suffix(".tmp")
                    tmp.write_bytes(value)
                    tmp.replace(path)
                    self._metadata_secret = value
        return self._metadata_secret
