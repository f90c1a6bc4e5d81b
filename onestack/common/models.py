"""Shared tables: the durable task queue, the hosts/services that run its
agents, agent credentials for the internal API, periodic-job leases, the
running cloud processes (who owns work in flight), and the per-project quota
limits every service's quotas read (``common.quota``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TASK_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
UNFINISHED = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class Task(Base):
    """One long operation (boot, delete, attach ...) for some host's agent.

    ``attempts`` counts the claims made so far. ``claim_token`` is the lease
    generation: every claim increments it, and every write a holder makes
    (heartbeat, outcome, a handler's fenced write) names the token it got, so
    a holder whose lease expired, or was taken over, can no longer write.
    ``target_host`` NULL means any host may run it. Tasks with the same
    ``resource_key`` run one at a time, in ``seq`` order. Every time in this
    row comes from the database's clock.
    """

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_state_kind", "state", "kind"),
        UniqueConstraint("idempotency_key", name="uq_task_idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Enqueue order (ties only between tasks enqueued concurrently).
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_key: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    target_host: Mapped[str | None] = mapped_column(String(255), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    claim_token: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    run_after: Mapped[datetime] = mapped_column(DateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The last attempt's error, and the final outcome's reason (what the
    # resource shows, e.g. a server's fault) once failed or cancelled.
    error: Mapped[str | None] = mapped_column(Text, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    def __repr__(self) -> str:
        return (
            f"<Task {self.kind} {self.id} {self.state} attempt {self.attempts}/{self.max_attempts}>"
        )


class HostService(Base):
    """One service (binary) on one host, and its heartbeat.

    Enough for Nova's ``os-services`` / ``os-hypervisors`` rows and Neutron's
    ``agents``: up/down is "a heartbeat within the service's down time" by the
    database's clock (or ``forced_down``); ``disabled`` is Nova's status and the
    opposite of Neutron's ``admin_state_up``.
    """

    __tablename__ = "host_service"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_host_service_host_binary"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str | None] = mapped_column(String(255), default=None)
    agent_type: Mapped[str | None] = mapped_column(String(255), default=None)
    availability_zone: Mapped[str | None] = mapped_column(String(255), default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), default=None)
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    configuration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)


class AgentCredential(Base):
    """A secret that lets an agent on ``host`` use the internal task API.

    Only a SHA-256 of the secret is kept: the secret is 32 random bytes, so a
    slow password hash would add nothing but latency.
    """

    __tablename__ = "agent_credential"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class PeriodicJob(Base):
    """Who runs a cluster-wide periodic job (the dead-host sweeper ...) now:
    whichever process holds the lease."""

    __tablename__ = "periodic_job"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class QuotaLimit(Base):
    """A project's own limit for one resource of one service, overriding the
    service's default (Nova's ``os-quota-sets``, Neutron's ``quotas``, Cinder's
    quota sets write these). -1 means unlimited."""

    __tablename__ = "quota_limit"

    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Process(Base):
    """One running cloud process (``onestack up``, an API replica), and its heartbeat.

    ``id`` is the process identity (``host:pid:random``) that the process also
    writes on the work it owns in flight: an image upload, a task's lease (its
    workers are ``<id>/local/<n>``). Another process restarting judges that
    work by this row (``common.tasks.processes``): it is left alone while the
    owner heartbeats, and recovered once the owner is gone.
    """

    __tablename__ = "process"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
