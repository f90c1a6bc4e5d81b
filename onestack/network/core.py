"""The Networking service object: what the Networking service functions share.

Settings, the database, the policy enforcer, the data-plane notifier, the
agent source and the server events for Compute (the seams, see
``network/dataplane.py``), and ``writing()``, the one place where a write
transaction hands its data-plane changes to the notifier and, once committed,
its server events to Compute. Service logic lives in ``network/service/`` as
functions taking this object first; the HTTP API and the ASGI wiring
(``network/app.py``) sit above it; other services call it through
``network/interface.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from onestack.common.cloud import CatalogEntry
from onestack.network import dataplane
from onestack.network.dataplane import (
    AgentSource,
    DataPlaneNotifier,
    NoAgents,
    NoDataPlane,
    ServerEvents,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.cloud import Cloud
    from onestack.network.enforcer import NetworkEnforcer


class NetworkService:
    name = "network"
    prefix = "/networking"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.config = cloud.settings.network
        self.db = cloud.db
        self.catalog = [CatalogEntry("network", "neutron", "/networking", "Networking (Neutron v2.0)")]
        # The seams the data plane plugs into (no-ops until it does).
        self.notifier: DataPlaneNotifier = NoDataPlane()
        self.agent_source: AgentSource = NoAgents()
        # What Compute hears about its servers' ports (it subscribes).
        self.server_events = ServerEvents()
        self._enforcer: NetworkEnforcer | None = None
        # The namespace holding the bridges, where the data plane runs: bound
        # ports name it in ``binding:vif_details`` ("netns") for Compute.
        self.vif_netns: str | None = None

    @property
    def public_url(self) -> str:
        return self.settings.base_url + self.prefix

    @property
    def policy_path(self) -> Path:
        """The operator's overrides (``<policy_dir>/network.yaml``)."""
        from onestack.common.policy import override_path

        return override_path(self.settings, self.name)

    @property
    def enforcer(self) -> NetworkEnforcer:
        if self._enforcer is None:
            from onestack.network.enforcer import NetworkEnforcer
            from onestack.network.policies import DEFAULTS, SCOPE_TYPES

            self._enforcer = NetworkEnforcer(
                DEFAULTS, self.policy_path,
                scope_types=SCOPE_TYPES, enforce_scope=self.settings.enforce_scope,
            )
        return self._enforcer

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction whose recorded data-plane changes reach the notifier:
        inside the transaction (durable tasks) and after the commit (wake-ups)."""
        with self.db.write() as session:
            if dataplane.pending(session) is not None:  # nested: the outer one notifies
                yield session
                return
            changes = dataplane.begin(session)
            events: list[dataplane.ServerEvent] = []
            try:
                yield session
                if changes:
                    session.flush()
                    self.notifier.in_transaction(session, changes)
            finally:
                events = dataplane.end(session)
        if changes:
            self.notifier.after_commit(changes)
        self.server_events.publish(events)
