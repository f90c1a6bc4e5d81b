"""Shared tables: the durable task queue long operations run through, and the
per-project quota limits every service's quotas read (``common.quota``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TASK_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)


class Task(Base):
    """One long operation (boot, delete, attach ...) for some host's agent.

    ``attempts`` counts the claims made so far; a running task whose lease
    expired may be claimed again until ``max_attempts`` is reached.
    ``target_host`` NULL means any host may run it.
    """

    __tablename__ = "task"
    __table_args__ = (Index("ix_task_state_kind", "state", "kind"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    target_host: Mapped[str | None] = mapped_column(String(255), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def done(self) -> bool:
        return self.state in (SUCCEEDED, FAILED)

    def __repr__(self) -> str:
        return (
            f"<Task {self.kind} {self.id} {self.state} attempt {self.attempts}/{self.max_attempts}>"
        )


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
