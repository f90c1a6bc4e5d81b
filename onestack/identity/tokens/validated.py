"""A validated token: the payload, and what it resolved to in the database."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from onestack.common.auth import AuthContext
from onestack.identity.tokens.payload import TokenData
from onestack.identity.tokens.revocation import revocation_values

# Cached results are re-resolved at least this often (see ``recheck_ts``).
DERIVED_CACHE_SECONDS = 30.0


@dataclass
class ValidatedToken:
    """A valid token with everything the body and the auth context need."""

    token: str
    data: TokenData
    user: dict[str, Any]  # id, name, domain {id, name}, password_expires_at
    roles: list[dict[str, str]] = field(default_factory=list)  # [{id, name}]
    project: dict[str, Any] | None = None  # id, name, domain {id, name}
    domain: dict[str, Any] | None = None  # id, name
    is_admin_project: bool = False
    trust: dict[str, Any] | None = None
    app_cred: dict[str, Any] | None = None
    oauth: dict[str, Any] | None = None  # access_token_id, consumer_id
    catalog_types: frozenset[str] = frozenset()  # set for tokens with access rules
    context: AuthContext | None = None
    bodies: dict[bool, bytes] = field(default_factory=dict)  # nocatalog -> rendered JSON
    # Policy decisions of this token as a caller: (rule, subject user id) -> allowed.
    decisions: dict[tuple[str, str], bool] = field(default_factory=dict)
    exp_ts: float = 0.0  # expires_at as a POSIX timestamp (cheap expiry checks)
    # Re-resolve after this POSIX time: bounds how long a change made by another
    # replica without a revocation event (say, an application credential deleted)
    # goes unseen here.
    recheck_ts: float = 0.0

    def __post_init__(self) -> None:
        self.exp_ts = self.data.expires_at.replace(tzinfo=UTC).timestamp()
        self.recheck_ts = min(self.exp_ts, time.time() + DERIVED_CACHE_SECONDS)

    def revocation_values(self) -> dict[str, frozenset[str]]:
        return revocation_values(self.data, self.user, self.project, self.domain, self.trust,
                                 self.oauth, [r["id"] for r in self.roles])

