"""Agent credentials: what an agent on another host presents to the internal
task API instead of database credentials.

An admin creates one per host (``onestack agent-credential create --host H``)
and gives it to that host's agent. It reads ``<id>.<secret>``; the database
keeps only the SHA-256 of the secret (32 random bytes: a slow password hash
would add latency and no strength). A credential is bound to its host: the
agent may claim that host's tasks (and host-less ones), heartbeat that host
and report on the tasks it holds - nothing else, and nothing of the database
is readable through it. Deleting the credential locks the agent out at once.

Why not a Keystone token with a service role: that would let a compromised
compute host act as the cloud-wide service user on every public API, and
agents would need a password and the identity endpoint; a per-host secret
limits the damage to that host's own tasks.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from onestack.common.db import Database
from onestack.common.models import AgentCredential
from onestack.common.tasks.dbclock import DbClock

_FORMAT = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True)
class CredentialInfo:
    id: str
    host: str
    description: str | None
    created_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(db: Database, host: str, description: str | None = None) -> tuple[str, str]:
    """A new credential for ``host``: returns (id, the credential string).
    The string is shown once; only a digest is stored."""
    if not host or len(host) > 255:
        raise ValueError("host must be 1 to 255 characters")
    if description is not None and len(description) > 255:
        raise ValueError("description is at most 255 characters")
    cred_id = secrets.token_hex(16)
    secret = secrets.token_urlsafe(32)
    with db.write() as session:
        session.add(AgentCredential(
            id=cred_id, host=host, secret_hash=_digest(secret), description=description,
            created_at=DbClock().read(session, db.is_sqlite),
        ))
    return cred_id, f"{cred_id}.{secret}"


def verify(db: Database, credential: str) -> str | None:
    """The host a credential belongs to, or None if it is not valid."""
    match = _FORMAT.match(credential or "")
    if match is None:
        return None
    cred_id, secret = match.groups()
    with db.read() as session:
        row = session.execute(
            select(AgentCredential.host, AgentCredential.secret_hash)
            .where(AgentCredential.id == cred_id)
        ).first()
    if row is None:
        hmac.compare_digest(_digest(secret), "0" * 64)  # same work for unknown ids
        return None
    host, stored = row
    return str(host) if hmac.compare_digest(_digest(secret), stored) else None


def list_all(db: Database) -> list[CredentialInfo]:
    with db.read() as session:
        rows = session.execute(select(AgentCredential).order_by(AgentCredential.host,
                                                                AgentCredential.created_at))
        return [CredentialInfo(r.id, r.host, r.description, r.created_at) for r in rows.scalars()]


def delete_one(db: Database, cred_id: str) -> bool:
    with db.write() as session:
        done = session.execute(
            delete(AgentCredential).where(AgentCredential.id == cred_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0))
