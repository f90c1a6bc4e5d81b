"""Per-project quotas: limits, and usage counted in the transaction that consumes it.

A service describes its resources once, each with a way to count a project's
usage in SQL and a default limit (-1: unlimited)::

    quotas = Quotas("network", [
        Resource("network", count_networks, default=100),
        Resource("port", count_ports, default=500),
    ])

and checks inside the ``db.write()`` transaction that creates the resource,
before the insert::

    with db.write() as s:
        quotas.check(s, project_id, {"port": 1})  # OverQuota if over
        s.add(Port(...))

``check`` first takes the project's quota lock for the service, then counts
the usage in that same transaction, so two concurrent creates cannot both take
the last slot: the second counts after the first committed. On SQLite every
write transaction already holds the one writer lock (``BEGIN IMMEDIATE``); on
PostgreSQL the quota lock is a transaction-scoped advisory lock keyed by
(service, project), released at commit or rollback - concurrent creates in
different projects do not wait for each other, and the check stays correct
under READ COMMITTED without any wider lock. Several resources checked
together (Compute's instances, cores and ram) take the one lock.

A project's own limits (``quota_limit`` rows: what Nova's ``os-quota-sets``,
Neutron's ``quotas`` and Cinder's quota sets set) override the defaults.
``OverQuota`` carries the facts; each service renders it in its own error
shape (Nova's 403 ``Quota exceeded for ...``, Neutron's 409 ``OverQuota``,
Glance's 413).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.common.models import QuotaLimit

UNLIMITED = -1
# The first key of every quota advisory lock (PostgreSQL's two-int4 key space
# does not overlap the one-int8 space of other advisory locks).
_LOCK_NAMESPACE = 0x71756F74  # "quot"
_LOCK = text("SELECT pg_advisory_xact_lock(:ns, :key)")

# The project is None for what belongs to no project (an image a system-scoped
# admin made without an owner): counted as such, with the default limits.
Counter = Callable[[Session, str | None], int]


@dataclass(frozen=True)
class Resource:
    """A countable resource: ``count(session, project_id)`` is the project's usage."""

    name: str
    count: Counter
    default: int = UNLIMITED


@dataclass(frozen=True)
class Usage:
    limit: int
    in_use: int

    @property
    def remaining(self) -> int | None:
        """What is left (never negative), or None when unlimited."""
        return None if self.limit < 0 else max(self.limit - self.in_use, 0)


@dataclass(frozen=True)
class Over:
    """One resource a request would take over its limit."""

    resource: str
    limit: int
    in_use: int
    requested: int


class OverQuota(Exception):
    """The request would exceed the project's limit for one or more resources."""

    def __init__(self, project_id: str | None, overs: Sequence[Over]) -> None:
        self.project_id = project_id
        self.overs = tuple(overs)
        names = ", ".join(o.resource for o in self.overs)
        super().__init__(f"Quota exceeded for project {project_id}: {names}")

    @property
    def resources(self) -> list[str]:
        return [o.resource for o in self.overs]


class Quotas:
    """The quota resources of one service."""

    def __init__(self, service: str, resources: Iterable[Resource]) -> None:
        self.service = service
        self.resources = {r.name: r for r in resources}

    # --- limits -----------------------------------------------------------------------

    def limits(self, s: Session, project_id: str | None) -> dict[str, int]:
        """Every resource's limit for the project: its own, else the default."""
        found = {name: res.default for name, res in self.resources.items()}
        rows = s.execute(
            select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
                QuotaLimit.service == self.service, QuotaLimit.project_id == project_id
            )
        )
        for name, value in rows:
            if name in found:
                found[name] = int(value)
        return found

    def set_limits(self, s: Session, project_id: str, values: Mapping[str, int]) -> None:
        """Give the project its own limits (in a write transaction); ``ValueError``
        for an unknown resource or a limit below -1, before anything is written."""
        for name, value in values.items():
            if name not in self.resources:
                raise ValueError(f"unknown quota resource {name!r}")
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise ValueError(f"quota limit for {name!r} must be an integer of at least -1")
        now = utcnow()
        for name, value in values.items():
            row = s.get(QuotaLimit, (self.service, project_id, name))
            if row is None:
                s.add(QuotaLimit(service=self.service, project_id=project_id, resource=name,
                                 hard_limit=value, updated_at=now))
            else:
                row.hard_limit = value
                row.updated_at = now
        s.flush()

    def reset(self, s: Session, project_id: str) -> None:
        """Back to the defaults (Neutron's and Nova's quota DELETE)."""
        s.execute(
            delete(QuotaLimit).where(
                QuotaLimit.service == self.service, QuotaLimit.project_id == project_id
            )
        )

    def projects_with_limits(self, s: Session) -> list[str]:
        """Projects that have limits of their own (Neutron's ``GET /v2.0/quotas``)."""
        rows = s.scalars(
            select(QuotaLimit.project_id)
            .where(QuotaLimit.service == self.service)
            .distinct()
            .order_by(QuotaLimit.project_id)
        )
        return list(rows)

    # --- usage ------------------------------------------------------------------------

    def lock(self, s: Session, project_id: str | None) -> None:
        """Take the project's quota lock for this service until the transaction ends.

        Call it in a ``db.write()`` transaction before counting what a write
        will consume. On SQLite the write transaction is the lock already.
        """
        if s.get_bind().dialect.name == "postgresql":
            key = zlib.crc32(f"{self.service}:{project_id}".encode())
            s.execute(_LOCK, {"ns": _LOCK_NAMESPACE, "key": key - (1 << 32) if key >= 1 << 31 else key})

    def usage(self, s: Session, project_id: str | None, names: Iterable[str] | None = None) -> dict[str, Usage]:
        """Limit and usage of each resource (all of them by default)."""
        limits = self.limits(s, project_id)
        wanted = list(self.resources) if names is None else list(names)
        return {
            name: Usage(limits[name], int(self.resources[name].count(s, project_id)))
            for name in wanted
        }

    def check(self, s: Session, project_id: str | None, deltas: Mapping[str, int]) -> None:
        """Lock, count, compare: ``OverQuota`` if any positive delta would take a
        resource over its limit. Call it in the write transaction that then
        makes the change; unlimited resources are not counted."""
        wanted = {name: delta for name, delta in deltas.items() if delta > 0}
        for name in wanted:
            if name not in self.resources:
                raise KeyError(f"unknown quota resource {name!r}")
        if not wanted:
            return
        self.lock(s, project_id)
        limits = self.limits(s, project_id)
        overs: list[Over] = []
        for name, delta in wanted.items():
            limit = limits[name]
            if limit < 0:
                continue
            in_use = int(self.resources[name].count(s, project_id))
            if in_use + delta > limit:
                overs.append(Over(name, limit, in_use, delta))
        if overs:
            raise OverQuota(project_id, overs)

    def headroom(self, s: Session, project_id: str | None, name: str, *, lock: bool = True) -> int | None:
        """How much more of ``name`` the project may use (None: unlimited).

        With ``lock`` (in a write transaction) the answer holds until commit,
        as for ``check``; without, it is a snapshot (a read, to fail early).
        """
        if lock:
            self.lock(s, project_id)
        return self.usage(s, project_id, [name])[name].remaining
