"""The seam between the Networking API and the data plane.

Every write that the data plane must apply records what changed (a
``Change``) on its write session; ``NetworkService.writing()`` hands the
changes to the notifier in exactly one place:

* ``in_transaction(session, changes)`` runs inside the write transaction,
  just before it commits - where a durable task ("apply network X on host
  Y") is enqueued atomically with the change, so a crash cannot lose it;
* ``after_commit(changes)`` runs once the change is visible - where an
  in-process agent is woken up.

``NoDataPlane`` (the default, and what runs without root) does nothing: the
API works and resources keep their initial status (ports ``DOWN``).

The agent source is the other seam: the DHCP, L3, metadata and Linux bridge
agents of each host, which ``/v2.0/agents`` and the availability zones are
rendered from once hosts heartbeat into the foundation's host table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

# What changed (``kind``) ...
NETWORK = "network"
SUBNET = "subnet"
PORT = "port"
ROUTER = "router"
FLOATING_IP = "floatingip"
SECURITY_GROUP = "security_group"
PORT_FORWARDING = "port_forwarding"
# ... and how (``action``)
CREATED = "created"
UPDATED = "updated"
DELETED = "deleted"

_SESSION_KEY = "network.changes"


@dataclass(frozen=True)
class Change:
    """One data-plane-relevant change, enough for an agent to find what to apply.

    ``network_id`` says which bridge / DHCP server is affected, ``host`` the
    host a port is bound to (empty when unbound), ``details`` anything else
    the agent needs and cannot read back after a delete (a deleted port's
    MAC and addresses, a deleted router's interfaces).
    """

    kind: str
    action: str
    id: str
    network_id: str | None = None
    host: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class DataPlaneNotifier(Protocol):
    def in_transaction(self, session: Session, changes: Sequence[Change]) -> None: ...

    def after_commit(self, changes: Sequence[Change]) -> None: ...


class NoDataPlane:
    """The data plane is off: nothing is applied, nothing is queued."""

    def in_transaction(self, session: Session, changes: Sequence[Change]) -> None:
        return None

    def after_commit(self, changes: Sequence[Change]) -> None:
        return None


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network on every host, as Neutron's Linux bridge agent
    names it (and Nova expects of ``vif_type`` ``bridge``): ``brq`` + 11 characters."""
    return "brq" + network_id[:11]


def record(session: Session, change: Change) -> None:
    """Note a change for the notifier of the transaction ``session`` belongs to."""
    changes: list[Change] | None = session.info.get(_SESSION_KEY)
    if changes is not None:
        changes.append(change)


def pending(session: Session) -> list[Change] | None:
    changes: list[Change] | None = session.info.get(_SESSION_KEY)
    return changes


def begin(session: Session) -> list[Change]:
    changes: list[Change] = []
    session.info[_SESSION_KEY] = changes
    return changes


def end(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)


@dataclass(frozen=True)
class AgentInfo:
    """One agent as Neutron's ``agents`` resource shows it."""

    id: str
    agent_type: str  # "DHCP agent", "L3 agent", "Metadata agent", "Linux bridge agent"
    binary: str
    host: str
    availability_zone: str | None
    alive: bool
    admin_state_up: bool = True
    topic: str = ""
    configurations: dict[str, Any] = field(default_factory=dict)
    heartbeat_timestamp: str | None = None
    started_at: str | None = None
    created_at: str | None = None
    description: str | None = None


class AgentSource(Protocol):
    def agents(self) -> list[AgentInfo]: ...


class NoAgents:
    """No host runs a network agent yet (the data plane is not built)."""

    def agents(self) -> list[AgentInfo]:
        return []
