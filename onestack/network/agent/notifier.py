"""From the API's writes to the agent's durable tasks.

Each data-plane change recorded by a write (``network/dataplane.py``) becomes,
in the same transaction, one task per thing to apply again - never a diff:
the handlers read the database and make the host match it, so a task may run
late, twice, or after a later one without harm.

==================  ===================  ============================================
kind                resource key         applies
==================  ===================  ============================================
``network.l2``      ``network:<id>``     a network's bridge, DHCP server, port status
``network.router``  ``router:<id>``      a router's namespace (``l3.sync_router``)
``network.fw``      ``firewall``         the security groups of every port (``firewall.sync``)
==================  ===================  ============================================

One task per key runs at a time, in order; a write that finds a task of the
same kind and key still queued adds none (that one reads the database when it
runs), so a burst of writes collapses into a few applications.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import event, select

from onestack.network import dataplane
from onestack.network.dataplane import Change
from onestack.network.models import FloatingIP, Port, Router

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.cloud import Cloud
    from onestack.common.tasks.queue import TaskQueue

L2 = "network.l2"
ROUTER = "network.router"
FIREWALL = "network.fw"
KINDS = (L2, ROUTER, FIREWALL)
FIREWALL_KEY = "firewall"

# A task waits this long before it may run, so that the writes of a burst
# (a client creating ports one after another) are applied together ...
DEBOUNCE = {L2: 0.05, FIREWALL: 0.2, ROUTER: 0.0}
# ... or twice what applying it took last time, up to this (see Pace). The
# firewall's bound keeps a rule change within a second of running ports.
MAX_WAIT = {L2: 1.0, FIREWALL: 0.5, ROUTER: 0.0}


class Pace:
    """How long each key's next task waits: its kind's debounce, or twice what the
    handler took for that key last time, bounded. A network of 10,000 ports (read
    and rendered again whole by each task) is then applied at most a third of the
    time while a client keeps writing, instead of as often as the debounce allows;
    a small one keeps the debounce. The handlers' process records; with the agent
    in a process of its own, ``report`` sends each record to the API's process,
    which enqueues (``process.py``)."""

    def __init__(self) -> None:
        self._took: dict[tuple[str, str], float] = {}
        # told of each record (the agent's process passes them to the API's)
        self.report: Callable[[str, str, float | None], None] | None = None

    def delay(self, kind: str, ident: str) -> float:
        base = DEBOUNCE.get(kind, 0.0)
        if base <= 0:
            return 0.0
        return min(max(base, 2 * self._took.get((kind, ident), 0.0)), MAX_WAIT.get(kind, base))

    def record(self, kind: str, ident: str, seconds: float | None) -> None:
        """What applying (kind, ident) took; None: it is gone (forget it)."""
        if seconds is None:
            self._took.pop((kind, ident), None)
        else:
            self._took[(kind, ident)] = seconds
        if self.report is not None:
            self.report(kind, ident, seconds)

ROUTER_OWNERS = ("network:router_interface", "network:router_gateway",
                 "network:router_interface_distributed", "network:ha_router_replicated_interface")


def resource_key(kind: str, ident: str) -> str:
    if kind == L2:
        return f"network:{ident}"
    if kind == ROUTER:
        return f"router:{ident}"
    return FIREWALL_KEY


def plan(session: Session, changes: Sequence[Change]) -> set[tuple[str, str]]:
    """The (kind, id) pairs to apply again for these changes (id "" for the firewall)."""
    todo: set[tuple[str, str]] = set()
    gateway_networks: set[str] = set()
    for ch in changes:
        if ch.network_id and ch.kind not in (dataplane.FLOATING_IP, dataplane.PORT_FORWARDING):
            todo.add((L2, ch.network_id))
        if ch.kind == dataplane.ROUTER:
            todo.add((ROUTER, ch.id))
        elif ch.kind == dataplane.PORT:
            todo.add((FIREWALL, ""))
            if ch.action == dataplane.CREATED and "device_id" in ch.details:
                # a new port: its owner is in the change, no floating IP points at it yet
                # (no query per port: a bulk create of 250 ports made 500 of them)
                if ch.details["device_owner"] in ROUTER_OWNERS and ch.details["device_id"]:
                    todo.add((ROUTER, str(ch.details["device_id"])))
                continue
            row = session.get(Port, ch.id)
            if row is not None and row.device_owner in ROUTER_OWNERS and row.device_id:
                todo.add((ROUTER, row.device_id))
            # a port with floating IPs: its routers' NAT follows its addresses
            for rid in session.scalars(select(FloatingIP.router_id).where(
                    FloatingIP.fixed_port_id == ch.id, FloatingIP.router_id.is_not(None))):
                if rid:
                    todo.add((ROUTER, rid))
        elif ch.kind in (dataplane.FLOATING_IP, dataplane.PORT_FORWARDING):
            router_id = ch.details.get("router_id")
            if router_id:
                todo.add((ROUTER, router_id))
            if ch.network_id:  # a disassociation names no router: all behind that network
                gateway_networks.add(ch.network_id)
        elif ch.kind == dataplane.SECURITY_GROUP:
            todo.add((FIREWALL, ""))
        elif ch.kind == dataplane.SUBNET and ch.action == dataplane.UPDATED:
            todo.add((FIREWALL, ""))  # a gateway_ip: who may send router advertisements
    if gateway_networks:
        stmt = select(Router.id).join(Port, Port.id == Router.gw_port_id).where(
            Port.network_id.in_(sorted(gateway_networks)))
        for rid in session.scalars(stmt):
            todo.add((ROUTER, rid))
    return todo


def urgent(changes: Sequence[Change]) -> set[tuple[str, str]]:
    """What must not wait the debounce: a new or changed network's bridge (Compute
    plugs taps on it), a router's namespace."""
    return {(L2, ch.network_id) for ch in changes
            if ch.kind in (dataplane.NETWORK, dataplane.SUBNET) and ch.network_id}


def created(changes: Sequence[Change]) -> set[tuple[str, str]]:
    """What this transaction created: no task can be queued for its key yet (no
    other transaction could see the id), so the look for one is skipped."""
    return {(L2 if ch.kind == dataplane.NETWORK else ROUTER, ch.id) for ch in changes
            if ch.action == dataplane.CREATED and ch.kind in (dataplane.NETWORK, dataplane.ROUTER)}


def prompt(changes: Sequence[Change]) -> set[tuple[str, str]]:
    """What waits only the kind's debounce, however long applying it took: the
    firewall after a security group or rule change (running ports follow it within
    a second)."""
    return {(FIREWALL, "")} if any(ch.kind == dataplane.SECURITY_GROUP for ch in changes) else set()


class KnownQueued:
    """The keys whose task this process enqueued (SQLite) and that no worker can
    have claimed yet: a task is not claimed before its ``run_after`` (its delay
    after the insert, on the database's clock, here the host's), and while a
    write transaction holds SQLite's lock no claim runs at all. So a write that
    finds its key here, before that moment, skips the look for a queued task.
    Recorded once the enqueueing transaction commits; forgotten if the database's
    clock is moved (tests). Not on PostgreSQL, where the look also locks the
    queued row until the write commits (its claim may not wait for our lock)."""

    MARGIN = 0.01  # seconds kept clear of the task's due time

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue
        self._until: dict[tuple[str, str], tuple[float, float]] = {}

    def forget(self) -> None:
        """Tasks were removed behind the queue's back (tests)."""
        self._until.clear()

    def queued(self, kind: str, key: str) -> bool:
        until = self._until.get((kind, key))
        return until is not None and until[1] == self.queue.clock.offset and time.monotonic() < until[0]

    def added(self, session: Session, kind: str, key: str, began: float, delay: float) -> None:
        """A task enqueued in ``session`` (``began``: the monotonic time before its insert)."""
        if delay <= 2 * self.MARGIN:
            return
        until = (began + delay - self.MARGIN, self.queue.clock.offset)

        def committed(_session: Session) -> None:
            self._until[(kind, key)] = until
            if len(self._until) > 4096:  # keys of networks long gone
                now = time.monotonic()
                self._until = {k: v for k, v in self._until.items() if v[0] > now}

        event.listen(session, "after_commit", committed, once=True)


def enqueue(queue: TaskQueue, session: Session, todo: set[tuple[str, str]],
            now: set[tuple[str, str]] | None = None, pace: Pace | None = None,
            soon: set[tuple[str, str]] | None = None, known: KnownQueued | None = None,
            new: set[tuple[str, str]] | None = None) -> None:
    """One task per (kind, key) unless one is already queued: the handlers read
    the database when they run, so a queued task applies this change too. The
    queued row is locked until this transaction ends (PostgreSQL): a worker
    cannot take it (its claim skips locked rows) before the change is visible.
    ``known``: keys certainly still queued, not looked up (SQLite); ``new``: keys
    certainly without a task (created in this transaction), not looked up."""
    for kind, ident in sorted(todo):
        key = resource_key(kind, ident)
        if known is not None and known.queued(kind, key):
            continue
        if not (new and (kind, ident) in new) and queue.queued_task(session, kind, key) is not None:
            continue
        if now and (kind, ident) in now:
            delay = 0.0
        elif pace is None or (soon and (kind, ident) in soon):
            delay = DEBOUNCE.get(kind, 0.0)
        else:
            delay = pace.delay(kind, ident)
        began = time.monotonic()
        queue.add(session, kind, {"id": ident} if ident else {}, resource_key=key, delay=delay)
        if known is not None:
            known.added(session, kind, key, began, delay)


class TaskNotifier:
    """The ``DataPlaneNotifier`` of a cloud whose data plane is on."""

    def __init__(self, cloud: Cloud, pace: Pace | None = None) -> None:
        self.cloud = cloud
        self.pace = pace
        self.known = KnownQueued(cloud.tasks) if cloud.db.is_sqlite else None

    def in_transaction(self, session: Session, changes: Sequence[Change]) -> None:
        enqueue(self.cloud.tasks, session, plan(session, changes), urgent(changes), self.pace,
                prompt(changes), self.known, created(changes))

    def after_commit(self, changes: Sequence[Change]) -> None:
        # The queue wakes this process's worker once the enqueueing commits.
        return None
