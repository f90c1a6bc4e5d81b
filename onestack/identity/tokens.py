"""Fernet-style tokens: encrypted, signed, no database row per token.

A token is ``MultiFernet.encrypt(msgpack(payload))`` with the base64 padding
removed (as Keystone does), so tokens stay well under 255 characters. The
payload is a short list::

    [version, user_id, methods, scope_kind, scope_id, expires_us, issued_us,
     audit_ids, trust_id, app_cred_id, access_token_id]

Ids that are 32 hex characters travel as 16 raw bytes, others as strings.
``methods`` are small integers for the known methods (strings for others).

Keys live in the ``identity_key`` table (kind ``fernet``) with the semantics of
Keystone's key repository: the highest index is the primary (it signs), index
0 is the staged key (the next primary, already accepted), the others are old
primaries kept so that their tokens stay valid. ``KeyRepository.rotate``
promotes the staged key, stages a new one, and drops the oldest beyond
``max_fernet_keys``.

Validation: decrypt, check expiry, check revocation events (kept in memory,
told about new events in-process through ``revoke.listeners`` and reloaded
when another replica added some), then resolve the user, scope, roles, trust,
application credential from the database. Everything derived is cached and
the cache is dropped whenever ``identity.generation`` moves, so a repeated
validation costs a dictionary lookup. Cached results are also re-resolved at
least every 30 s, which bounds how long a change made by another replica
without a revocation event (an application credential deleted there) goes
unseen. ``api/auth.py`` answers repeated ``GET``/``HEAD /v3/auth/tokens``
straight from this memory on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound, ServiceUnavailable, Unauthorized
from onestack.common.ids import isotime, utcnow
from onestack.common.masterkey import KeyUnavailable
from onestack.identity.models import (
    ApplicationCredential,
    IdentityKey,
    OAuthAccessToken,
    Project,
    RevocationEvent,
    Role,
    Trust,
    User,
)

if TYPE_CHECKING:
    from onestack.identity.core import Identity

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
KNOWN_METHODS = ("password", "token", "application_credential", "oauth1", "totp", "mapped", "external")
SCOPE_NONE, SCOPE_PROJECT, SCOPE_DOMAIN, SCOPE_SYSTEM = 0, 1, 2, 3
# Keystone's [token] allow_expired_window: how long after expiry ?allow_expired works.
ALLOW_EXPIRED_WINDOW = timedelta(days=2)
REVOCATION_RELOAD_SECONDS = 1.0
KEY_RELOAD_SECONDS = 60.0
DERIVED_CACHE_SECONDS = 30.0
# Keystone's [resource] admin_project_name / admin_project_domain_name: tokens
# scoped to this project carry is_admin_project true (bootstrap creates it).
ADMIN_PROJECT_NAME = "admin"
ADMIN_PROJECT_DOMAIN = "default"


class TokenNotFound(NotFound):
    """The subject token is malformed, expired, revoked or no longer valid."""

    def __init__(self, token: str = "") -> None:
        super().__init__(f"Could not find token: {token}" if token else "Could not find token.")


# --- payload encoding ---------------------------------------------------------


def _pack_id(value: str | None) -> bytes | str | None:
    if value is None:
        return None
    if len(value) == 32 and value == value.lower():  # round-trips exactly as lowercase hex
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return value


def _unpack_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def new_audit_id() -> str:
    """Keystone's audit id: 16 random bytes, urlsafe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")


def _pack_audit(audit_id: str) -> bytes | str:
    try:
        raw = base64.urlsafe_b64decode(audit_id + "==")
        if len(raw) == 16 and _unpack_audit(raw) == audit_id:
            return raw
    except (binascii.Error, ValueError):
        pass
    return audit_id


def _unpack_audit(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode("ascii").rstrip("=")
    return str(value)


def _to_us(dt: datetime) -> int:
    return int(dt.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=us)


@dataclass(frozen=True)
class TokenData:
    """What a token itself says (decrypted payload)."""

    user_id: str
    methods: tuple[str, ...]
    expires_at: datetime
    issued_at: datetime
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    trust_id: str | None = None
    app_cred_id: str | None = None
    access_token_id: str | None = None

    @property
    def scoped(self) -> bool:
        return bool(self.project_id or self.domain_id or self.system)


def encode_payload(data: TokenData) -> bytes:
    methods = [KNOWN_METHODS.index(m) if m in KNOWN_METHODS else m for m in data.methods]
    if data.project_id:
        kind, scope_id = SCOPE_PROJECT, _pack_id(data.project_id)
    elif data.domain_id:
        kind, scope_id = SCOPE_DOMAIN, _pack_id(data.domain_id)
    elif data.system:
        kind, scope_id = SCOPE_SYSTEM, None
    else:
        kind, scope_id = SCOPE_NONE, None
    payload = [
        PAYLOAD_VERSION,
        _pack_id(data.user_id),
        methods,
        kind,
        scope_id,
        _to_us(data.expires_at),
        _to_us(data.issued_at),
        [_pack_audit(a) for a in data.audit_ids],
        _pack_id(data.trust_id),
        _pack_id(data.app_cred_id),
        _pack_id(data.access_token_id),
    ]
    while payload[-1] is None:
        payload.pop()
    return bytes(msgpack.packb(payload, use_bin_type=True))


def decode_payload(raw: bytes) -> TokenData:
    """Parse a decrypted payload; ``ValueError`` if it is not one of ours."""
    try:
        p = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several types
        raise ValueError("bad payload") from exc
    if not isinstance(p, list) or len(p) < 8 or p[0] != PAYLOAD_VERSION:
        raise ValueError("bad payload")
    p = p + [None] * (11 - len(p))
    user_id = _unpack_id(p[1])
    if not user_id:
        raise ValueError("bad payload")
    methods = tuple(KNOWN_METHODS[m] if isinstance(m, int) else str(m) for m in p[2])
    kind, scope_id = p[3], _unpack_id(p[4])
    return TokenData(
        user_id=user_id,
        methods=methods,
        expires_at=_from_us(p[5]),
        issued_at=_from_us(p[6]),
        audit_ids=tuple(_unpack_audit(a) for a in p[7]),
        project_id=scope_id if kind == SCOPE_PROJECT else None,
        domain_id=scope_id if kind == SCOPE_DOMAIN else None,
        system=kind == SCOPE_SYSTEM,
        trust_id=_unpack_id(p[8]),
        app_cred_id=_unpack_id(p[9]),
        access_token_id=_unpack_id(p[10]),
    )


# --- keys --------------------------------------------------------------------


class KeyRepository:
    """The fernet keys, stored in ``identity_key`` (shared by every replica)."""

    KIND = "fernet"

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._fernet: MultiFernet | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    # Keys are stored wrapped by the master key (common/masterkey.py).
    PURPOSE = "identity_key/fernet"  # as bootstrap.wrap_keys names it

    def _new_key(self) -> str:
        return str(self.identity.master_key.wrap(Fernet.generate_key().decode(), self.PURPOSE))

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


# --- revocation ----------------------------------------------------------------

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

    def __init__(self, identity: Identity) -> None:
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


# --- validated tokens -------------------------------------------------------------


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


# The identity generation at which this thread's current ``TokenProvider.read()``
# session was opened (None outside one).
_session_gen = threading.local()


class TokenProvider:
    """Issues and validates tokens for one Identity service."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.keys = KeyRepository(identity)
        self.revocations = RevocationList(identity)
        from onestack.identity.service import revoke

        revoke.listeners.append(self.revocations.on_event)
        self._valid: OrderedDict[str, ValidatedToken] = OrderedDict()
        self._valid_stamp: tuple[int, int] = (-1, -1)
        self._derived: dict[Any, Any] = {}
        self._derived_gen = -1
        self._derived_at = 0.0
        self._lock = threading.Lock()
        self.max_cached = 20000

    # --- issuing ---------------------------------------------------------------

    def issue(
        self,
        user_id: str,
        methods: list[str] | tuple[str, ...],
        *,
        project_id: str | None = None,
        domain_id: str | None = None,
        system: bool = False,
        expires_at: datetime | None = None,
        parent_audit_ids: tuple[str, ...] = (),
        trust_id: str | None = None,
        app_cred_id: str | None = None,
        access_token_id: str | None = None,
    ) -> tuple[str, TokenData]:
        """A new token (string, payload); the caller has checked every rule."""
        now = utcnow()
        default_exp = now + timedelta(seconds=self.identity.settings.identity.token_expiration)
        exp = min(expires_at, default_exp) if expires_at is not None else default_exp
        exp = exp.replace(microsecond=0)
        audit_ids = (new_audit_id(), *parent_audit_ids[-1:]) if parent_audit_ids else (new_audit_id(),)
        data = TokenData(
            user_id=user_id,
            methods=tuple(dict.fromkeys(methods)),
            expires_at=exp,
            issued_at=now,
            audit_ids=audit_ids,
            project_id=project_id,
            domain_id=domain_id,
            system=system,
            trust_id=trust_id,
            app_cred_id=app_cred_id,
            access_token_id=access_token_id,
        )
        try:
            fernet = self.keys.fernet
        except KeyUnavailable as exc:  # the master key does not open the token keys
            log.error("cannot issue tokens: the token keys cannot be unwrapped: %s", exc)
            raise ServiceUnavailable("The token keys cannot be read with this cloud's master key.") from None
        raw = fernet.encrypt(encode_payload(data))
        return raw.decode("ascii").rstrip("="), data

    # --- decoding ----------------------------------------------------------------

    def decode(self, token: str) -> TokenData:
        """Decrypt and parse (no expiry or revocation check); TokenNotFound if invalid."""
        if not token or len(token) > 1024 or not token.isascii():
            raise TokenNotFound(token if token and len(token) < 300 else "")
        padded = token + "=" * (-len(token) % 4)
        try:
            try:
                raw = self.keys.fernet.decrypt(padded.encode("ascii"))
            except InvalidToken:
                # Another replica may have rotated the keys: try once with fresh ones.
                if not self.keys.reload():
                    raise TokenNotFound(token) from None
                try:
                    raw = self.keys.fernet.decrypt(padded.encode("ascii"))
                except InvalidToken:
                    raise TokenNotFound(token) from None
        except KeyUnavailable as exc:  # the master key does not open the token keys
            log.error("cannot validate tokens: the token keys cannot be unwrapped: %s", exc)
            raise TokenNotFound(token) from None
        try:
            return decode_payload(raw)
        except ValueError:
            raise TokenNotFound(token) from None

    # --- derived-data cache --------------------------------------------------------

    def _stamp(self) -> tuple[int, int]:
        return (self.identity.generation, self.revocations.version)

    def derived(self) -> dict[Any, Any]:
        """The cache of data derived from the database (dropped on any identity write)."""
        gen = self.identity.generation
        now = time.monotonic()
        if gen != self._derived_gen or now - self._derived_at > DERIVED_CACHE_SECONDS:
            with self._lock:
                self._derived = {}
                self._derived_gen = gen
                self._derived_at = now
        return self._derived

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read session whose data may feed the derived cache.

        The generation is noted before the session's snapshot begins; what is
        built in it is cached only if no identity write committed since, so a
        snapshot older than the newest write never lands in the new cache.
        """
        previous = getattr(_session_gen, "value", None)
        _session_gen.value = self.identity.generation
        try:
            with self.identity.db.read() as s:
                yield s
        finally:
            _session_gen.value = previous

    def cached(self, key: Any, build: Any) -> Any:
        cache = self.derived()
        try:
            return cache[key]
        except KeyError:
            value = build()
            opened_at = getattr(_session_gen, "value", None)
            if opened_at is None or opened_at == self._derived_gen:
                cache[key] = value
            return value

    # --- validation ------------------------------------------------------------------

    def lookup_fast(self, token: str) -> ValidatedToken | None:
        """A previously validated, still valid token without any I/O, or None.

        Safe to call on the event loop: it only reads memory.
        """
        if not self.revocations.fresh() or self._valid_stamp != self._stamp():
            return None
        hit = self._valid.get(token)
        if hit is None or hit.recheck_ts <= time.time():
            return None
        return hit

    def validate(self, token: str, *, allow_expired: bool = False) -> ValidatedToken:
        """The validated token; ``TokenNotFound`` (404) if it is not valid."""
        if not allow_expired:
            hit = self.lookup_fast(token)
            if hit is not None:
                return hit
        self.revocations.refresh()
        stamp = self._stamp()
        if not allow_expired:
            hit = self._valid.get(token) if self._valid_stamp == stamp else None
            if hit is not None and hit.recheck_ts > time.time():
                return hit
        data = self.decode(token)
        now = utcnow()
        if data.expires_at <= now and not (allow_expired and data.expires_at + ALLOW_EXPIRED_WINDOW > now):
            raise TokenNotFound(token)
        with self.read() as s:
            vt = self.resolve(s, token, data)
        if self.revocations.is_revoked(vt.revocation_values(), data.issued_at):
            raise TokenNotFound(token)
        if not allow_expired or data.expires_at > now:
            with self._lock:
                if self._valid_stamp != stamp:
                    self._valid.clear()
                    self._valid_stamp = stamp
                self._valid[token] = vt
                if len(self._valid) > self.max_cached:
                    self._valid.popitem(last=False)
        return vt

    def validate_context(self, token: str) -> AuthContext:
        """The cloud's token validator: an AuthContext, or 401 for any invalid token."""
        try:
            vt = self.validate(token)
        except TokenNotFound:
            raise Unauthorized("The request you have made requires authentication.") from None
        return self.context(vt)

    def context(self, vt: ValidatedToken) -> AuthContext:
        if vt.context is None:
            d = vt.data
            project, domain = vt.project, vt.domain
            rules = (vt.app_cred or {}).get("access_rules") or None
            vt.context = AuthContext(
                token=vt.token,
                user_id=vt.user["id"],
                user_name=vt.user["name"],
                user_domain_id=vt.user["domain"]["id"],
                user_domain_name=vt.user["domain"]["name"],
                project_id=project["id"] if project else None,
                project_name=project["name"] if project else None,
                project_domain_id=project["domain"]["id"] if project else None,
                project_domain_name=project["domain"]["name"] if project else None,
                domain_id=domain["id"] if domain else None,
                domain_name=domain["name"] if domain else None,
                system_scope=d.system,
                roles=tuple(r["name"] for r in vt.roles),
                role_ids=tuple(r["id"] for r in vt.roles),
                is_admin_project=vt.is_admin_project,
                expires_at=d.expires_at,
                issued_at=d.issued_at,
                audit_ids=d.audit_ids,
                methods=d.methods,
                trust_id=d.trust_id,
                app_cred_id=d.app_cred_id,
                extra={
                    "trust": vt.trust,
                    "application_credential": vt.app_cred,
                    "oauth": vt.oauth,
                },
                access_rules=tuple(rules) if rules else None,
                catalog_types=vt.catalog_types,
            )
        return vt.context

    # --- resolution from the database (cached per generation) ----------------------

    def user_info(self, s: Session, user_id: str) -> dict[str, Any] | None:
        """id, name, domain {id, name}, password_expires_at, enabled (with its domain)."""

        def build() -> dict[str, Any] | None:
            from onestack.identity.passwords import password_expires_at

            user = s.get(User, user_id)
            if user is None:
                return None
            dom = self.domain_info(s, user.domain_id)
            expires = password_expires_at(s, user.id)
            return {
                "id": user.id,
                "name": user.name,
                "domain": {"id": user.domain_id, "name": dom["name"] if dom else None},
                "password_expires_at": isotime(expires, subsecond=True),
                "_enabled": bool(user.enabled) and bool(dom and dom["_enabled"]),
                "_expires": expires,
                "_default_project_id": user.default_project_id,
            }

        return self.cached(("user", user_id), build)  # type: ignore[no-any-return]

    def domain_info(self, s: Session, domain_id: str) -> dict[str, Any] | None:
        def build() -> dict[str, Any] | None:
            dom = s.get(Project, domain_id)
            if dom is None or not dom.is_domain:
                return None
            return {"id": dom.id, "name": dom.name, "_enabled": bool(dom.enabled)}

        return self.cached(("domain", domain_id), build)  # type: ignore[no-any-return]

    def project_info(self, s: Session, project_id: str) -> dict[str, Any] | None:
        def build() -> dict[str, Any] | None:
            proj = s.get(Project, project_id)
            if proj is None or proj.is_domain:
                return None
            dom = self.domain_info(s, proj.domain_id)
            enabled = bool(proj.enabled) and bool(dom and dom["_enabled"])
            # A project below a disabled project is unusable too.
            parent_id, seen = proj.parent_id, {proj.id}
            while enabled and parent_id and parent_id != proj.domain_id and parent_id not in seen:
                seen.add(parent_id)
                parent = s.get(Project, parent_id)
                if parent is None or parent.is_domain:
                    break
                enabled = bool(parent.enabled)
                parent_id = parent.parent_id
            return {
                "id": proj.id,
                "name": proj.name,
                "domain": {"id": proj.domain_id, "name": dom["name"] if dom else None},
                "_enabled": enabled,
                "_is_admin": proj.name == ADMIN_PROJECT_NAME and proj.domain_id == ADMIN_PROJECT_DOMAIN,
            }

        return self.cached(("project", project_id), build)  # type: ignore[no-any-return]

    def role_refs(self, s: Session, role_ids: list[str]) -> list[dict[str, str]]:
        names = self.cached(("role-names",), lambda: {r.id: r.name for r in s.scalars(select(Role))})
        return [{"id": rid, "name": names[rid]} for rid in role_ids if rid in names]

    def effective_roles(
        self, s: Session, user_id: str, *, project_id: str | None = None,
        domain_id: str | None = None, system: bool = False,
    ) -> list[str]:
        from onestack.identity.service.assignments import effective_role_ids

        key = ("roles", user_id, project_id, domain_id, system)
        return self.cached(  # type: ignore[no-any-return]
            key,
            lambda: effective_role_ids(s, user_id, project_id=project_id, domain_id=domain_id, system=system),
        )

    def expand_roles(self, s: Session, role_ids: list[str]) -> list[str]:
        from onestack.identity.service.assignments import expand_implied, implication_map

        rules = self.cached(("implications",), lambda: implication_map(s))
        return expand_implied(role_ids, rules)

    def resolve(self, s: Session, token: str, data: TokenData) -> ValidatedToken:
        """Check the token's user, scope, roles, trust ... still hold; build the view."""
        invalid = TokenNotFound(token)
        now = utcnow()
        trust_ref: dict[str, Any] | None = None
        trust_row: Trust | None = None
        if data.trust_id:
            trust_row = s.get(Trust, data.trust_id)
            if (trust_row is None or trust_row.deleted_at is not None
                    or (trust_row.expires_at is not None and trust_row.expires_at <= now)):
                raise invalid
            trust_ref = {
                "id": trust_row.id,
                "impersonation": bool(trust_row.impersonation),
                "trustor_user": {"id": trust_row.trustor_user_id},
                "trustee_user": {"id": trust_row.trustee_user_id},
            }
            for uid in (trust_row.trustor_user_id, trust_row.trustee_user_id):
                info = self.user_info(s, uid)
                if info is None or not info["_enabled"]:
                    raise invalid
        user = self.user_info(s, data.user_id)
        if user is None or not user["_enabled"]:
            raise invalid
        vt = ValidatedToken(token=token, data=data, user=_public(user), trust=trust_ref)
        role_ids: list[str] = []
        if data.project_id:
            proj = self.project_info(s, data.project_id)
            if proj is None or not proj["_enabled"]:
                raise invalid
            vt.project = _public(proj)
            vt.is_admin_project = proj["_is_admin"]
            if trust_row is not None:
                trustor_roles = set(self.effective_roles(s, trust_row.trustor_user_id, project_id=proj["id"]))
                wanted = self.expand_roles(s, list(trust_row.role_ids or []))
                role_ids = [r for r in wanted if r in trustor_roles]
                if len([r for r in (trust_row.role_ids or []) if r not in trustor_roles]):
                    raise invalid
            else:
                role_ids = self.effective_roles(s, data.user_id, project_id=proj["id"])
        elif data.domain_id:
            dom = self.domain_info(s, data.domain_id)
            if dom is None or not dom["_enabled"]:
                raise invalid
            vt.domain = _public(dom)
            role_ids = self.effective_roles(s, data.user_id, domain_id=dom["id"])
        elif data.system:
            role_ids = self.effective_roles(s, data.user_id, system=True)
        if data.app_cred_id:
            ac = s.get(ApplicationCredential, data.app_cred_id)
            if ac is None or ac.user_id != data.user_id or (ac.expires_at is not None and ac.expires_at <= now):
                raise invalid
            held = set(role_ids)
            wanted = self.expand_roles(s, list(ac.role_ids or []))
            if not any(r in held for r in ac.role_ids or []):
                raise invalid
            role_ids = [r for r in wanted if r in held]
            vt.app_cred = {
                "id": ac.id,
                "name": ac.name,
                "restricted": not ac.unrestricted,
            }
            if ac.access_rules:
                vt.app_cred["access_rules"] = list(ac.access_rules)
                # keystonemiddleware checks the service is in the token's catalog
                from onestack.identity.service.catalog import build_catalog

                key = ("catalog", data.project_id)
                catalog = self.cached(key, lambda: build_catalog(self.identity, s, data.project_id))
                vt.catalog_types = frozenset(e["type"] for e in catalog)
        if data.access_token_id:
            at = s.get(OAuthAccessToken, data.access_token_id)
            if at is None or (at.expires_at is not None and at.expires_at <= now):
                raise invalid
            held = set(role_ids)
            role_ids = [r for r in self.expand_roles(s, list(at.role_ids or [])) if r in held]
            vt.oauth = {"access_token_id": at.id, "consumer_id": at.consumer_id}
        if data.scoped and not role_ids:
            raise invalid
        vt.roles = self.role_refs(s, role_ids)
        return vt

    # --- revocation of one token ----------------------------------------------------

    def revoke(self, vt: ValidatedToken) -> None:
        from onestack.identity.service import revoke

        with self.identity.db.write() as s:
            revoke.revoke_token(s, vt.data.audit_ids[0])
        with self._lock:
            self._valid.pop(vt.token, None)

    # --- rendering -----------------------------------------------------------------

    def render(self, vt: ValidatedToken, *, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Keystone's token body ``{"token": {...}}``; ``catalog`` None omits it."""
        d = vt.data
        body: dict[str, Any] = {
            "methods": list(d.methods),
            "user": dict(vt.user),
            "audit_ids": list(d.audit_ids),
            "expires_at": isotime(d.expires_at, subsecond=True),
            # The issue time to the microsecond (the payload keeps it): a token
            # rescoped within the same second still shows a later issued_at.
            "issued_at": isotime(d.issued_at, subsecond=True),
        }
        if vt.trust:
            body["OS-TRUST:trust"] = vt.trust
        if vt.oauth:
            body["OS-OAUTH1"] = dict(vt.oauth)
        if vt.project:
            body["project"] = vt.project
            if not vt.trust:  # Keystone leaves these out of trust-scoped tokens
                body["is_domain"] = False
                body["is_admin_project"] = vt.is_admin_project
        elif vt.domain:
            body["domain"] = vt.domain
        elif d.system:
            body["system"] = {"all": True}
        if d.scoped:
            body["roles"] = vt.roles
            if catalog is not None:
                body["catalog"] = catalog
        if vt.app_cred:
            body["application_credential"] = vt.app_cred
        return {"token": body}

    def catalog_for(self, vt: ValidatedToken) -> list[dict[str, Any]]:
        from onestack.identity.service.catalog import build_catalog

        project_id = vt.project["id"] if vt.project else None

        def build() -> list[dict[str, Any]]:
            with self.read() as s:
                return build_catalog(self.identity, s, project_id)

        return self.cached(("catalog", project_id), build)  # type: ignore[no-any-return]

    def body_bytes(self, vt: ValidatedToken, *, nocatalog: bool) -> bytes:
        """The rendered JSON body (cached on the validated token)."""
        cached = vt.bodies.get(nocatalog)
        if cached is None:
            from onestack.common.web import dumps

            catalog = None if nocatalog else self.catalog_for(vt)
            cached = dumps(self.render(vt, catalog=catalog))
            vt.bodies[nocatalog] = cached
        return cached



def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}
