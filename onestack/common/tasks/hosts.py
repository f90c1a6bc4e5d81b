"""Hosts and the services (binaries) on them, kept alive by heartbeats.

A service heartbeats ``(host, binary)`` every ``report_interval``; the row is
upserted in one statement with the database's time, so hosts with skewed
clocks still agree. A service is *up* while its last heartbeat is younger
than the down time the caller gives (Nova's ``service_down_time``, 60 s;
Neutron's ``agent_down_time``, 75 s) and it is not ``forced_down`` - computed
in SQL on the database's clock too. :class:`ServiceView` renders the rows the
way Nova's ``os-services`` and Neutron's ``agents`` list them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, not_, select, update
from sqlalchemy.orm import Session

from onestack.common.db import Database
from onestack.common.ids import new_uuid
from onestack.common.models import HostService
from onestack.common.tasks.dbclock import DbClock, dialect_insert

MAX_NAME = 255


@dataclass(frozen=True)
class ServiceView:
    """One host service row, with ``alive`` judged by the database's clock."""

    id: str
    host: str
    binary: str
    topic: str | None
    agent_type: str | None
    availability_zone: str | None
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    version: str | None
    description: str | None
    configuration: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    seen_seconds_ago: float = field(default=0.0)

    @property
    def state(self) -> str:
        """Nova's ``state``: up or down."""
        return "up" if self.alive else "down"

    @property
    def status(self) -> str:
        """Nova's ``status``: enabled or disabled."""
        return "disabled" if self.disabled else "enabled"

    def as_nova_service(self, zone: str | None = None) -> dict[str, Any]:
        """An ``os-services`` entry (microversion 2.53 and later: UUID ids).

        ``zone``: what Nova shows - the availability zone for compute
        services, ``internal`` for the others (the caller knows which).
        """
        return {
            "id": self.id,
            "binary": self.binary,
            "disabled_reason": self.disabled_reason,
            "host": self.host,
            "state": self.state,
            "status": self.status,
            "updated_at": self.heartbeat_at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "zone": zone if zone is not None else (self.availability_zone or "internal"),
            "forced_down": self.forced_down,
        }

    def as_neutron_agent(self) -> dict[str, Any]:
        """A Neutron ``agents`` entry."""
        fmt = "%Y-%m-%d %H:%M:%S"
        return {
            "id": self.id,
            "agent_type": self.agent_type,
            "binary": self.binary,
            "host": self.host,
            "topic": self.topic,
            "admin_state_up": not self.disabled,
            "alive": self.alive,
            "availability_zone": self.availability_zone,
            "configurations": dict(self.configuration),
            "created_at": self.created_at.strftime(fmt),
            "started_at": self.started_at.strftime(fmt),
            "heartbeat_timestamp": self.heartbeat_at.strftime(fmt),
            "description": self.description,
            "resources_synced": None,
        }


def _check(name: str, value: str | None) -> None:
    if value is not None and not 0 < len(value) <= MAX_NAME:
        raise ValueError(f"{name} must be 1 to {MAX_NAME} characters")


class HostRegistry:
    """The ``host_service`` table's operations (blocking; call from a thread)."""

    def __init__(self, db: Database, *, clock: DbClock | None = None) -> None:
        self.db = db
        self.clock = clock or DbClock()

    def now(self, plus: float = 0.0) -> ColumnElement[datetime]:
        return self.clock.now(self.db.is_sqlite, plus)

    def alive_clause(self, down_after: float) -> ColumnElement[bool]:
        """SQL: the service heartbeat within ``down_after`` seconds and is not forced down."""
        return and_(HostService.heartbeat_at >= self.now(-down_after),
                    not_(HostService.forced_down))

    def heartbeat(
        self,
        host: str,
        binary: str,
        *,
        topic: str | None = None,
        agent_type: str | None = None,
        availability_zone: str | None = None,
        version: str | None = None,
        configuration: Mapping[str, Any] | None = None,
        started: bool = False,
    ) -> None:
        """Record that ``binary`` on ``host`` is alive (created on first use).

        ``started`` marks a (re)start (Neutron's ``started_at``). Fields given
        as None keep their stored value.
        """
        for name, value in (("host", host), ("binary", binary), ("topic", topic),
                            ("agent_type", agent_type), ("availability_zone", availability_zone)):
            _check(name, value)
        if host is None or binary is None:
            raise ValueError("host and binary are required")
        if version is not None and len(version) > 64:
            raise ValueError("version is at most 64 characters")
        insert = dialect_insert(self.db.is_sqlite)
        now = self.now()
        values: dict[str, Any] = {
            "topic": topic,
            "agent_type": agent_type,
            "availability_zone": availability_zone,
            "version": version,
            "configuration": dict(configuration) if configuration is not None else None,
        }
        changes: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        changes.update(heartbeat_at=now, updated_at=now)
        if started:
            changes["started_at"] = now
        stmt = insert(HostService).values(
            id=new_uuid(),
            host=host,
            binary=binary,
            disabled=False,
            forced_down=False,
            created_at=now,
            started_at=now,
            heartbeat_at=now,
            updated_at=now,
            **{**values, "configuration": values["configuration"] or {}},
        )
        stmt = stmt.on_conflict_do_update(index_elements=["host", "binary"], set_=changes)
        with self.db.write() as session:
            session.execute(stmt)

    def services(
        self,
        down_after: float,
        *,
        host: str | None = None,
        binary: str | None = None,
        service_id: str | None = None,
        session: Session | None = None,
    ) -> list[ServiceView]:
        """Host services (optionally filtered), each with ``alive`` judged now."""
        stmt = select(HostService, self.alive_clause(down_after), self.now())
        if host is not None:
            stmt = stmt.where(HostService.host == host)
        if binary is not None:
            stmt = stmt.where(HostService.binary == binary)
        if service_id is not None:
            stmt = stmt.where(HostService.id == service_id)
        stmt = stmt.order_by(HostService.host, HostService.binary)
        if session is not None:
            return self._views(session.execute(stmt).all())
        with self.db.read() as own:
            return self._views(own.execute(stmt).all())

    @staticmethod
    def _views(rows: Any) -> list[ServiceView]:
        views = []
        for svc, alive, now in rows:
            views.append(ServiceView(
                id=svc.id, host=svc.host, binary=svc.binary, topic=svc.topic,
                agent_type=svc.agent_type, availability_zone=svc.availability_zone,
                disabled=bool(svc.disabled), disabled_reason=svc.disabled_reason,
                forced_down=bool(svc.forced_down), version=svc.version,
                description=svc.description, configuration=dict(svc.configuration or {}),
                created_at=svc.created_at, updated_at=svc.updated_at,
                started_at=svc.started_at, heartbeat_at=svc.heartbeat_at,
                alive=bool(alive),
                seen_seconds_ago=max((now - svc.heartbeat_at).total_seconds(), 0.0),
            ))
        return views

    def get(self, service_id: str, down_after: float) -> ServiceView | None:
        found = self.services(down_after, service_id=service_id)
        return found[0] if found else None

    def live_hosts(
        self, down_after: float, binary: str | None = None, session: Session | None = None
    ) -> list[str]:
        """Hosts with a live, enabled service (``binary`` if given), sorted."""
        stmt = select(HostService.host).where(
            self.alive_clause(down_after), not_(HostService.disabled)
        )
        if binary is not None:
            stmt = stmt.where(HostService.binary == binary)
        stmt = stmt.distinct().order_by(HostService.host)
        if session is not None:
            return list(session.execute(stmt).scalars())
        with self.db.read() as own:
            return list(own.execute(stmt).scalars())

    def update(
        self,
        service_id: str,
        *,
        disabled: bool | None = None,
        disabled_reason: str | None = None,
        forced_down: bool | None = None,
        description: str | None = None,
    ) -> bool:
        """Change the administrative fields; False if there is no such service.

        Enabling a service clears its ``disabled_reason`` (as Nova does).
        """
        _check("disabled_reason", disabled_reason)
        changes: dict[str, Any] = {"updated_at": self.now()}
        if disabled is not None:
            changes["disabled"] = disabled
            changes["disabled_reason"] = disabled_reason if disabled else None
        elif disabled_reason is not None:
            changes["disabled_reason"] = disabled_reason
        if forced_down is not None:
            changes["forced_down"] = forced_down
        if description is not None:
            changes["description"] = description
        with self.db.write() as session:
            done = session.execute(
                update(HostService)
                .where(HostService.id == service_id)
                .values(**changes)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(done, "rowcount", 0))

    def delete(self, service_id: str) -> bool:
        with self.db.write() as session:
            done = session.execute(
                delete(HostService)
                .where(HostService.id == service_id)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(done, "rowcount", 0))
