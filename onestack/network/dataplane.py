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

The third: what Compute hears about its servers' ports, as Neutron's Nova
notifier sends ``os-server-external-events``. A write records a
``ServerEvent`` (``server_event``) for a port a server owns (``compute:*``);
``NetworkService.writing()`` hands them, once committed, to ``ServerEvents``,
which calls the listeners Compute subscribed (``network.interface.
subscribe_server_events``) from a thread of its own, in order, a batch at a
time - never inside the write, never on the API's thread (Networking does not
import Compute: an import-linter contract keeps the services acyclic).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

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
_EVENTS_KEY = "network.server_events"
log = logging.getLogger(__name__)


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
    session.info[_EVENTS_KEY] = []
    return changes


def end(session: Session) -> list[ServerEvent]:
    """The transaction's recording ends; the server events it recorded."""
    session.info.pop(_SESSION_KEY, None)
    events: list[ServerEvent] = session.info.pop(_EVENTS_KEY, None) or []
    return events


# --- what Compute hears about ---------------------------------------------------------------

# Nova's os-server-external-events names, as Neutron's notifier sends them.
NETWORK_CHANGED = "network-changed"
VIF_PLUGGED = "network-vif-plugged"
VIF_UNPLUGGED = "network-vif-unplugged"
VIF_DELETED = "network-vif-deleted"


class ServerEvent(NamedTuple):
    name: str       # one of the four above
    server_id: str  # the port's device_id
    port_id: str    # Nova's event tag


def is_server_port(device_owner: str | None, device_id: str | None) -> bool:
    """A port a server owns (Neutron's ``is_compute_port`` with a device)."""
    return bool(device_id) and (device_owner or "").startswith("compute:")


def server_event(session: Session, name: str, device_owner: str | None, device_id: str | None,
                 port_id: str) -> None:
    """Note an event for the server owning this port (nothing for other ports), sent
    once the transaction of ``session`` commits."""
    events: list[ServerEvent] | None = session.info.get(_EVENTS_KEY)
    if events is not None and is_server_port(device_owner, device_id):
        event = ServerEvent(name, str(device_id), port_id)
        if event not in events:
            events.append(event)


ServerEventListener = Callable[[Sequence[ServerEvent]], None]


class ServerEvents:
    """The committed server events, delivered to the subscribed listeners by one
    thread (started when there is something to send, gone after a second idle):
    in order, each batch holding what queued while the previous one was sent."""

    IDLE = 1.0

    def __init__(self) -> None:
        self.listeners: list[ServerEventListener] = []
        self._queue: list[ServerEvent] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False

    def subscribe(self, listener: ServerEventListener) -> None:
        self.listeners.append(listener)

    def publish(self, events: Sequence[ServerEvent]) -> None:
        if not events or not self.listeners:
            return
        with self._cond:
            self._queue.extend(events)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="network-server-events",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once everything published so far was delivered (tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: bool(self._queue), self.IDLE):
                    self._thread = None
                    return
                batch = list(dict.fromkeys(self._queue))
                self._queue.clear()
                self._busy = True
            try:
                for listener in list(self.listeners):
                    try:
                        listener(batch)
                    except Exception:  # as Neutron: a failed notification is logged, not retried
                        log.exception("server events %s could not be delivered", batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


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
