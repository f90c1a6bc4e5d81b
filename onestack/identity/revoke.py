"""Token revocation events (shared by every identity area).

A token is revoked when an event matches it: every non-null field of the
event equals the token's value for it, and the token was issued at or before
``issued_before``. Call these inside the same ``db.write()`` transaction as
the change that causes them (password change, role removal, disable ...).

Other processes notice new events by the table's highest id (the token
provider's ``RevocationList.refresh``), so events must become visible in id
order: the units that add events take one named lock before the insert and
hold it to their commit (on PostgreSQL, two concurrent inserts could
otherwise commit the higher id first, and a replica that saw it would never
load the lower one). This process's listeners hear of an event once it is
committed, never of one that was rolled back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.ids import utcnow
from onestack.identity.models import RevocationEvent

# Listeners told about every new event (the token provider drops its caches).
listeners: list = []


def revoke(session: Session, **fields: str | None) -> RevocationEvent:
    """Record a revocation event; ``fields`` are RevocationEvent columns
    (user_id, project_id, domain_id, role_id, trust_id, consumer_id,
    access_token_id, audit_id, audit_chain_id)."""
    db.lock(session, "revocation-events")
    now = utcnow()
    event = RevocationEvent(issued_before=now, revoked_at=now, **fields)
    session.add(event)
    session.flush()

    def committed(_session: Session) -> None:
        for listener in list(listeners):
            listener(event)

    sa_event.listen(session, "after_commit", committed, once=True)
    return event


def revoke_user(session: Session, user_id: str) -> None:
    """User disabled, deleted, or password changed: all their tokens."""
    revoke(session, user_id=user_id)


def revoke_project(session: Session, project_id: str) -> None:
    """Project disabled or deleted: every token scoped to it."""
    revoke(session, project_id=project_id)


def revoke_domain(session: Session, domain_id: str) -> None:
    revoke(session, domain_id=domain_id)


def revoke_grant(session: Session, user_id: str | None, project_id: str | None = None,
                 domain_id: str | None = None) -> None:
    """A role assignment removed: the user's tokens on that target."""
    revoke(session, user_id=user_id, project_id=project_id, domain_id=domain_id)


def revoke_token(session: Session, audit_id: str) -> None:
    revoke(session, audit_id=audit_id)


def prune(session: Session, older_than: timedelta) -> int:
    """Drop events older than any token could be (called occasionally)."""
    from sqlalchemy import CursorResult, Table, delete

    # A Core statement: no ORM compile step for this one-off at start-up.
    table = cast(Table, RevocationEvent.__table__)
    result = session.execute(delete(table).where(table.c.revoked_at < utcnow() - older_than))
    assert isinstance(result, CursorResult)
    return result.rowcount
