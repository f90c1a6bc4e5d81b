"""What the service functions need of the service object (``core.NetworkService``):
the database, the settings, the policy enforcer, the write transaction that notifies the data
plane, the agent source and the server events for Compute. A protocol, so that the service layer does not
depend on the wiring above it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.db import Database
    from onestack.config import NetworkSettings
    from onestack.network.dataplane import AgentSource, ServerEvents
    from onestack.network.enforcer import NetworkEnforcer


class Net(Protocol):
    db: Database
    config: NetworkSettings
    agent_source: AgentSource
    server_events: ServerEvents  # what Compute hears about its servers' ports
    vif_netns: str | None  # the data plane's namespace of the bridges (vif_details "netns")

    @property
    def enforcer(self) -> NetworkEnforcer: ...

    def writing(self) -> AbstractContextManager[Session]: ...
