"""Revocation events in memory, and which of a token's values they match.

The events themselves are rows (``identity.revoke`` records them in the
transaction of the change that causes them). This list keeps them in memory,
is told about new events in-process through ``revoke.listeners``, and reloads
when another replica added some.

A token is revoked when an event matches it: every non-null field of the
event equals the token's value for it, and the token was issued at or before
``issued_before``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import object_session

from onestack.common.ids import utcnow
from onestack.identity.models import RevocationEvent
from onestack.identity.tokens.payload import ALLOW_EXPIRED_WINDOW, TokenData

if TYPE_CHECKING:
    from onestack.identity.tokens.owner import Owner

REVOCATION_RELOAD_SECONDS = 1.0


_EVENT_FIELDS = (
    "audit_id", "audit_chain_id", "user_id", "project_id", "domain_id", "trust_id",
    "consumer_id", "access_token_id", "role_id",
)


@dataclass(frozen=True)
class _Event:
    fields: tuple[tuple[str, str], ...]
    issued_before: datetime


class RevocationList:
    """Revocation events in memory, indexed by their most selective field."""

    def __init__(self, identity: Owner) -> None:
        self.identity = identity
        self._index: dict[tuple[str, str], list[_Event]] = {}
        self._last_id: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change (drops validated-token caches)

    @staticmethod
    def _event(row: Any) -> _Event | None:
        fields = tuple((f, getattr(row, f)) for f in _EVENT_FIELDS if getattr(row, f, None))
        if not fields:
            return None
        return _Event(fields, row.issued_before)

    def _add(self, ev: _Event) -> None:
        self._index.setdefault(ev.fields[0], []).append(ev)

    def on_event(self, row: RevocationEvent) -> None:
        """``revoke.listeners`` hook: a new event in this process."""
        session = object_session(row)
        db = self.identity.db
        if session is not None and session.get_bind() not in (db.engine, db.write_engine):
            return  # another cloud's database (several clouds in one process: tests)
        ev = self._event(row)
        if ev is None:
            return
        with self._lock:
            self._add(ev)
            self.version += 1

    def lifetime(self) -> timedelta:
        """How long after issue a token can still be presented (expiry + allow_expired)."""
        return timedelta(seconds=self.identity.settings.identity.token_expiration) + ALLOW_EXPIRED_WINDOW

    def fresh(self) -> bool:
        """True if the in-memory list was checked against the database lately."""
        return time.monotonic() - self._checked_at < REVOCATION_RELOAD_SECONDS

    def refresh(self, *, force: bool = False) -> None:
        """Reload from the database if its newest event changed (blocking)."""
        if not force and self.fresh():
            return
        with self.identity.db.read() as s:
            newest = s.execute(select(func.max(RevocationEvent.id))).scalar()
            if newest == self._last_id and not force:
                self._checked_at = time.monotonic()
                return
            # Build the events while the rows are attached (the read session's
            # rollback on exit expires them).
            index: dict[tuple[str, str], list[_Event]] = {}
            # Events older than any token that could still be presented match nothing.
            horizon = utcnow() - self.lifetime()
            for row in s.scalars(select(RevocationEvent).where(RevocationEvent.issued_before >= horizon)):
                ev = self._event(row)
                if ev is not None:
                    index.setdefault(ev.fields[0], []).append(ev)
        with self._lock:
            changed = newest != self._last_id
            self._index = index
            self._last_id = newest
            self._checked_at = time.monotonic()
            if changed:
                self.version += 1

    def is_revoked(self, values: dict[str, frozenset[str]], issued_at: datetime) -> bool:
        """``values``: token field -> the token's values for it."""
        index = self._index
        if not index:
            return False
        for name, vals in values.items():
            for v in vals:
                for ev in index.get((name, v), ()):
                    if issued_at <= ev.issued_before and all(
                        val in values.get(f, ()) for f, val in ev.fields[1:]
                    ):
                        return True
        return False


def revocation_values(
    data: TokenData,
    user: dict[str, Any],
    project: dict[str, Any] | None,
    domain: dict[str, Any] | None,
    trust: dict[str, Any] | None,
    oauth: dict[str, Any] | None,
    role_ids: list[str],
) -> dict[str, frozenset[str]]:
    users = {data.user_id}
    if trust:
        users.add(trust["trustor_user"]["id"])
        users.add(trust["trustee_user"]["id"])
    domains = {user["domain"]["id"]}
    if project:
        domains.add(project["domain"]["id"])
    if domain:
        domains.add(domain["id"])
    values: dict[str, frozenset[str]] = {
        "audit_id": frozenset(data.audit_ids[:1]),
        "audit_chain_id": frozenset(data.audit_ids[-1:]),
        "user_id": frozenset(users),
        "domain_id": frozenset(domains),
        "role_id": frozenset(role_ids),
    }
    if project:
        values["project_id"] = frozenset({project["id"]})
    if data.trust_id:
        values["trust_id"] = frozenset({data.trust_id})
    if oauth:
        values["consumer_id"] = frozenset({oauth["consumer_id"]})
        values["access_token_id"] = frozenset({oauth["access_token_id"]})
    return values

