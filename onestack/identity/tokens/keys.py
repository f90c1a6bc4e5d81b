"""The Fernet keys that sign and encrypt tokens.

Keys live in the ``identity_key`` table (kind ``fernet``) with the semantics of
Keystone's key repository: the highest index is the primary (it signs), index
0 is the staged key (the next primary, already accepted), the others are old
primaries kept so that their tokens stay valid. ``KeyRepository.rotate``
promotes the staged key, stages a new one, and drops the oldest beyond
``max_fernet_keys``. Every replica reads the same rows. The rows hold the keys
wrapped by the master key (``common/masterkey.py``), never in the clear.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.identity.models import IdentityKey

if TYPE_CHECKING:
    from onestack.identity.tokens.owner import Owner

KEY_RELOAD_SECONDS = 60.0


class KeyRepository:
    """The fernet keys, stored in ``identity_key`` (shared by every replica)."""

    KIND = "fernet"

    def __init__(self, identity: Owner) -> None:
        self.identity = identity
        self._fernet: MultiFernet | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    # Keys are stored wrapped by the master key (common/masterkey.py).
    PURPOSE = "identity_key/fernet"  # as bootstrap.wrap_keys names it

    def _new_key(self) -> str:
        return self.identity.master_key.wrap(Fernet.generate_key().decode(), self.PURPOSE)

    def ensure(self, session: Session) -> None:
        """First start: a staged key (0) and a primary key (1)."""
        existing = session.scalars(select(IdentityKey).where(IdentityKey.kind == self.KIND)).first()
        if existing is not None:
            return
        now = utcnow()
        for idx in (0, 1):
            session.add(IdentityKey(kind=self.KIND, idx=idx, key=self._new_key(), created_at=now))
        session.flush()
        self._fernet = None

    def _load(self) -> MultiFernet:
        """The keys, unwrapped; ``masterkey.KeyUnavailable`` if the master key cannot."""
        stmt = select(IdentityKey.idx, IdentityKey.key).where(IdentityKey.kind == self.KIND)
        with self.identity.db.read() as s:
            rows = [(int(r[0]), str(r[1])) for r in s.execute(stmt)]
        if not rows:
            with self.identity.db.write() as s:
                self.ensure(s)
            with self.identity.db.read() as s:
                rows = [(int(r[0]), str(r[1])) for r in s.execute(stmt)]
        rows.sort(key=lambda r: r[0], reverse=True)  # primary first, staged (0) last
        master = self.identity.master_key
        keys = [master.unwrap(r[1], self.PURPOSE) for r in rows]
        self._loaded_at = time.monotonic()
        return MultiFernet([Fernet(k.encode()) for k in keys])

    @property
    def fernet(self) -> MultiFernet:
        """The keys (re-read every minute: another replica or ``onestack fernet rotate``
        may have rotated them)."""
        f = self._fernet
        if f is None or time.monotonic() - self._loaded_at > KEY_RELOAD_SECONDS:
            with self._lock:
                if self._fernet is None or time.monotonic() - self._loaded_at > KEY_RELOAD_SECONDS:
                    self._fernet = self._load()
                f = self._fernet
        return f

    def reload(self, *, min_age: float = 1.0) -> bool:
        """Re-read the keys (another replica may have rotated); at most every ``min_age`` s."""
        if time.monotonic() - self._loaded_at < min_age:
            return False
        with self._lock:
            self._fernet = self._load()
        return True

    def rotate(self) -> list[int]:
        """Promote the staged key, stage a new one, prune beyond ``max_fernet_keys``.

        Returns the key indexes now present.
        """
        limit = max(2, int(self.identity.settings.identity.max_fernet_keys))
        with self.identity.db.write() as s:
            self.ensure(s)
            rows = {r.idx: r for r in s.scalars(select(IdentityKey).where(IdentityKey.kind == self.KIND))}
            now = utcnow()
            staged = rows[0]
            new_primary = max(rows) + 1
            s.add(IdentityKey(kind=self.KIND, idx=new_primary, key=staged.key, created_at=now))
            staged.key = self._new_key()
            staged.created_at = now
            indexes = sorted([*rows, new_primary])
            while len(indexes) > limit:
                oldest = next(i for i in indexes if i != 0)
                s.delete(rows[oldest])
                indexes.remove(oldest)
        with self._lock:
            self._fernet = self._load()
        self.identity.touch()
        return indexes

