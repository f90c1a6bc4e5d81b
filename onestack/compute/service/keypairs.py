"""Key pairs of a user: import, generate (before 2.92), list, show, delete.

Key pairs belong to a user (not a project); an admin may act on another
user's (2.10+). The ``key_pairs`` quota is counted per user, against the
limit of the caller's project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, Forbidden, NotFound
from onestack.common.ids import utcnow
from onestack.common.pagination import PageParams
from onestack.compute import keys
from onestack.compute.models import KeyPair
from onestack.compute.service._paging import page_rows
from onestack.compute.usage import count_user_keypairs

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-keypairs:"


def _authorize(svc: ComputeService, ctx: AuthContext, action: str, user_id: str) -> None:
    svc.authorize(_ROOT + action, ctx, {"user_id": user_id, "project_id": ctx.project_id})


def not_found(name: str, user_id: str) -> NotFound:
    return NotFound(f"Keypair {name} not found for user {user_id}")


def create(svc: ComputeService, ctx: AuthContext, name: str, public_key: str | None,
           key_type: str, user_id: str | None) -> tuple[KeyPair, str | None]:
    """Import ``public_key``, or generate a key pair when it is None; returns the
    row and the generated private key (None on import)."""
    name = name.strip()
    owner = user_id or ctx.user_id
    _authorize(svc, ctx, "create", owner)
    private: str | None = None
    if public_key is None:
        private, public_key, fingerprint = keys.generate(key_type, owner)
    else:
        fingerprint = keys.fingerprint(public_key, key_type)
    with svc.db.write() as s:
        limit = svc.quotas.limits(s, ctx.project_id)["key_pairs"]
        if limit >= 0 and count_user_keypairs(s, owner) + 1 > limit:
            raise Forbidden("Quota exceeded, too many key pairs.")
        exists = s.scalar(select(KeyPair.id).where(KeyPair.user_id == owner, KeyPair.name == name))
        if exists is not None:
            raise Conflict(f"Key pair '{name}' already exists.")
        row = KeyPair(user_id=owner, name=name, fingerprint=fingerprint, public_key=public_key,
                      type=key_type, created_at=utcnow())
        s.add(row)
        s.flush()
        s.expunge(row)
    return row, private


def get(svc: ComputeService, ctx: AuthContext, name: str, user_id: str | None = None) -> KeyPair:
    owner = user_id or ctx.user_id
    _authorize(svc, ctx, "show", owner)
    return find(svc, owner, name)


def find(svc: ComputeService, user_id: str, name: str) -> KeyPair:
    with svc.db.read() as s:
        row = s.execute(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name)
                        ).scalars().first()
        if row is None:
            raise not_found(name, user_id)
        s.expunge(row)
        return row


def list_keypairs(svc: ComputeService, ctx: AuthContext, user_id: str | None, params: Any,
                  paged: bool) -> tuple[list[KeyPair], int | None]:
    owner = user_id or ctx.user_id
    _authorize(svc, ctx, "index", owner)
    page = PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False) if paged else PageParams()
    stmt = select(KeyPair).where(KeyPair.user_id == owner)
    with svc.db.read() as s:
        rows = page_rows(s, stmt, KeyPair, page, sort_keys=["name"], sort_dirs=["asc"],
                         marker_key="name")
        s.expunge_all()
    return rows, page.limit


def delete(svc: ComputeService, ctx: AuthContext, name: str, user_id: str | None = None) -> None:
    owner = user_id or ctx.user_id
    _authorize(svc, ctx, "delete", owner)
    with svc.db.write() as s:
        row = s.execute(select(KeyPair).where(KeyPair.user_id == owner, KeyPair.name == name)
                        ).scalars().first()
        if row is None:
            raise not_found(name, owner)
        s.delete(row)
