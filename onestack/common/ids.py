"""Ids and times: UUIDs, UTC now, ISO 8601 the way OpenStack writes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_id() -> str:
    """A 32-hex-character id (Keystone style)."""
    return uuid.uuid4().hex


def new_uuid() -> str:
    """A dashed UUID (Nova, Glance, Neutron, Cinder style)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Naive UTC now (how times are stored in the database)."""
    return datetime.now(UTC).replace(tzinfo=None)


def isotime(dt: datetime | None, *, subsecond: bool = False) -> str | None:
    """``2026-11-21T09:00:00Z`` (or ``.000000Z`` with ``subsecond``), as Keystone writes."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    if subsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_isotime(value: str) -> datetime:
    """Parse an ISO 8601 time to naive UTC; raises ValueError on bad input."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt
