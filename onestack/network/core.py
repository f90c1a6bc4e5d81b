"""The Networking service object: what the rest of the cloud holds on to.

It owns the sub-app served under ``/networking``, the policy enforcer, the
data-plane notifier and the agent source (both seams, see
``service/dataplane.py``), and ``writing()``, the one place where a write
transaction hands its data-plane changes to the notifier. Service logic lives
in ``network/service/*.py`` as functions taking this object first; other
services call it through ``network/interface.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from onestack.app import CatalogEntry
from onestack.common.web import service_app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.app import Cloud
    from onestack.common.auth import AuthContext
    from onestack.network.service.dataplane import AgentSource, DataPlaneNotifier
    from onestack.network.service.policy import Caller, NetworkEnforcer


class NetworkService:
    name = "network"
    prefix = "/networking"

    def __init__(self, cloud: Cloud) -> None:
        from onestack.network.service.dataplane import NoAgents, NoDataPlane

        self.cloud = cloud
        self.settings = cloud.settings
        self.config = cloud.settings.network
        self.db = cloud.db
        self.catalog = [CatalogEntry("network", "neutron", "/networking", "Networking (Neutron v2.0)")]
        self.notifier: DataPlaneNotifier = NoDataPlane()
        self.agent_source: AgentSource = NoAgents()
        self._enforcer: NetworkEnforcer | None = None

    @property
    def public_url(self) -> str:
        return self.settings.base_url + self.prefix

    @property
    def policy_path(self) -> Any:
        return self.settings.state_dir / "policy" / "network.yaml"

    @property
    def enforcer(self) -> NetworkEnforcer:
        if self._enforcer is None:
            from onestack.network.service.policy import DEFAULTS, NetworkEnforcer

            self._enforcer = NetworkEnforcer(DEFAULTS, self.policy_path)
        return self._enforcer

    def caller(self, ctx: AuthContext) -> Caller:
        from onestack.network.service.policy import Caller

        return Caller.of(self.enforcer, ctx)

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction whose recorded data-plane changes reach the notifier:
        inside the transaction (durable tasks) and after the commit (wake-ups)."""
        from onestack.network.service import dataplane

        with self.db.write() as session:
            if dataplane.pending(session) is not None:  # nested: the outer one notifies
                yield session
                return
            changes = dataplane.begin(session)
            try:
                yield session
                if changes:
                    session.flush()
                    self.notifier.in_transaction(session, changes)
            finally:
                dataplane.end(session)
        if changes:
            self.notifier.after_commit(changes)

    # --- Service protocol -----------------------------------------------------

    def asgi(self) -> ASGIApp:
        from onestack.network.api import all_routes
        from onestack.network.api._http import render_error
        from onestack.network.service.errors import HTTPNotFound

        app = service_app(
            all_routes(),
            render_error,
            state={"network": self, "validator": self.cloud.cached_validator},
        )

        async def no_nul_in_path(scope: Scope, receive: Receive, send: Send) -> None:
            # No id, tag or name holds a NUL character (PostgreSQL refuses one).
            if scope["type"] == "http" and "\x00" in scope["path"]:
                await render_error(HTTPNotFound())(scope, receive, send)
                return
            await app(scope, receive, send)

        return no_nul_in_path

    def prepare(self) -> None:
        """Runs before serving (schema upgraded, identity bootstrapped)."""
        if self.config.create_defaults:
            from onestack.network.bootstrap import create_defaults

            create_defaults(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
