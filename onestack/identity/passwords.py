"""Password hashing and Keystone's security-compliance rules for setting one.

* ``hash_password`` / ``check_password``: Keystone's ``bcrypt_sha256`` (the
  passlib format ``$bcrypt-sha256$v=2,t=2b,r=<cost>$<salt>$<digest>``), cost
  from ``settings.identity.password_hash_rounds``. bcrypt reads at most 72
  bytes (bcrypt 5 raises on more); the password first goes through
  HMAC-SHA-256 keyed with the salt, so every byte of a password of any length
  counts. Plain bcrypt hashes (``$2b$...``) of earlier versions still verify,
  against the first 72 bytes they were made from.
* ``set_password``: the one way to give a user a (new) password. It applies
  the ``[security_compliance]`` options (regex, history, minimum age, expiry,
  change upon first use) and keeps the history table short. Call it inside the
  ``db.write()`` transaction that creates or updates the user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import bcrypt
from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest
from onestack.common.ids import utcnow
from onestack.identity.models import Password, User

if TYPE_CHECKING:
    from onestack.config import Settings

MAX_PASSWORD_LENGTH = 4096
_BCRYPT_MAX = 72
BCRYPT_SHA256_PREFIX = "$bcrypt-sha256$"


def _encode(plain: str) -> bytes:
    return plain.encode("utf-8")


def _prehash(salt: bytes, plain: bytes) -> bytes:
    """What bcrypt sees: base64(HMAC-SHA-256(key=salt, password)), 44 bytes."""
    return base64.b64encode(hmac.digest(salt, plain, "sha256"))


def bcrypt_sha256(plain: bytes, rounds: int) -> str:
    """A new ``$bcrypt-sha256$`` hash of ``plain`` (Keystone's and passlib's format)."""
    salted = bcrypt.gensalt(rounds)  # b"$2b$<cost>$<22 salt characters>"
    salt = salted[-22:]
    digest = bcrypt.hashpw(_prehash(salt, plain), salted)[-31:]
    return f"{BCRYPT_SHA256_PREFIX}v=2,t=2b,r={rounds}${salt.decode('ascii')}${digest.decode('ascii')}"


def verify_hash(password_hash: str, plain: bytes) -> bool:
    """Does ``plain`` (UTF-8 bytes, any length) match the stored hash?

    ``$bcrypt-sha256$`` hashes take the whole password; plain bcrypt hashes
    (``$2a$``/``$2b$``/``$2y$``, made by earlier versions from the first 72
    bytes) are checked against those 72 bytes. ``ValueError`` for a hash in
    neither form.
    """
    if password_hash.startswith(BCRYPT_SHA256_PREFIX):
        try:
            params, salt, digest = password_hash[len(BCRYPT_SHA256_PREFIX):].split("$")
            opts = dict(p.split("=", 1) for p in params.split(","))
            ident, rounds = opts["t"], int(opts["r"])
        except (ValueError, KeyError):
            raise ValueError("malformed bcrypt-sha256 hash") from None
        if opts.get("v") != "2" or ident not in ("2a", "2b") or len(salt) != 22:
            raise ValueError("unsupported bcrypt-sha256 hash")
        key = _prehash(salt.encode("ascii"), plain)
        return bcrypt.checkpw(key, f"${ident}${rounds:02d}${salt}{digest}".encode("ascii"))
    if password_hash.startswith("$2"):
        return bcrypt.checkpw(plain[:_BCRYPT_MAX], password_hash.encode("ascii"))
    raise ValueError("not a password hash")


def hash_password(settings: Settings, plain: str) -> str:
    """A salted bcrypt-sha256 hash of ``plain`` at the configured cost.

    The new hash is known to match ``plain``, so it is remembered as verified
    (see ``VerifiedPasswords``): the first login after setting a password does
    not pay bcrypt a second time.
    """
    rounds = max(4, min(31, int(settings.identity.password_hash_rounds)))
    encoded = _encode(plain)
    hashed = bcrypt_sha256(encoded, rounds)
    ttl = settings.identity.password_check_cache_seconds
    if ttl > 0:
        verified_passwords.remember(hashed, encoded, ttl)
    return hashed


class VerifiedPasswords:
    """Recent successful password checks, so a client that logs in again with
    the same password does not pay bcrypt's cost every time.

    Only successes are remembered: a wrong password always runs the full
    bcrypt check, so guessing stays exactly as slow as the hash makes it.
    Entries are keyed by the stored hash, which every password change
    replaces, and hold HMAC-SHA256 of the password under a key made at random
    for this process (never the password itself); they expire after the
    configured seconds and the cache is bounded in size.
    """

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, plain: bytes) -> bytes:
        return hmac.new(self._key, plain, hashlib.sha256).digest()

    def check(self, password_hash: str, plain: bytes, ttl: float) -> bool:
        digest = self._digest(plain)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(password_hash)
        if hit is not None and hit[0] > now and hmac.compare_digest(hit[1], digest):
            return True
        ok = verify_hash(password_hash, plain)
        if ok:
            self._store(password_hash, digest, now + ttl)
        return ok

    def remember(self, password_hash: str, plain: bytes, ttl: float) -> None:
        """Record that ``plain`` matches ``password_hash`` (just hashed from it)."""
        self._store(password_hash, self._digest(plain), time.monotonic() + ttl)

    def _store(self, password_hash: str, digest: bytes, expires: float) -> None:
        with self._lock:
            self._entries[password_hash] = (expires, digest)
            self._entries.move_to_end(password_hash)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_passwords = VerifiedPasswords()


def check_password(password_hash: str | None, plain: str | None, *, cache_seconds: float = 0) -> bool:
    """True if ``plain`` matches ``password_hash`` (False for any missing piece).

    With ``cache_seconds`` > 0 a success is remembered that long (see
    ``VerifiedPasswords``); failures never are.
    """
    if not password_hash or plain is None or not isinstance(plain, str):
        return False
    try:
        if cache_seconds > 0:
            return verified_passwords.check(password_hash, _encode(plain), cache_seconds)
        return verify_hash(password_hash, _encode(plain))
    except (ValueError, UnicodeError):
        return False


def check_secret(secret_hash: str, plain: str) -> bool:
    """Constant-time check for secrets that may be bcrypt hashes."""
    if secret_hash.startswith(("$2", BCRYPT_SHA256_PREFIX)):
        return check_password(secret_hash, plain)
    return hmac.compare_digest(secret_hash, plain)


def validate_password_value(plain: Any) -> str:
    """Type and length rules every password (or secret) passes: else 400."""
    if not isinstance(plain, str):
        raise BadRequest("Invalid input for field 'password': the value must be a string.")
    try:
        plain.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") from a JSON body
        raise BadRequest("Invalid input for field 'password': the value is not valid Unicode.") from None
    if len(plain) > MAX_PASSWORD_LENGTH:
        raise BadRequest(
            f"Invalid input for field 'password': the value is longer than {MAX_PASSWORD_LENGTH} characters."
        )
    return plain


def password_history(session: Session, user_id: str) -> list[Password]:
    """The user's password rows, oldest first (the last one is current)."""
    stmt = select(Password).where(Password.user_id == user_id).order_by(Password.id)
    return list(session.scalars(stmt))


def current_password(session: Session, user_id: str) -> Password | None:
    stmt = select(Password).where(Password.user_id == user_id).order_by(Password.id.desc()).limit(1)
    return session.scalars(stmt).first()


def change_password_required(settings: Settings, user: User) -> bool:
    """``change_password_upon_first_use`` applies to this user."""
    if not settings.identity.change_password_upon_first_use:
        return False
    return not bool((user.options or {}).get("ignore_change_password_upon_first_use"))


def _expires_at(settings: Settings, user: User, now: datetime) -> datetime | None:
    days = settings.identity.password_expires_days
    if days <= 0 or (user.options or {}).get("ignore_password_expiry"):
        return None
    return now + timedelta(days=days)


def check_regex(settings: Settings, plain: str) -> None:
    pattern = settings.identity.password_regex
    if pattern and not re.match(pattern, plain):
        detail = settings.identity.password_regex_description or "the password does not match the regex"
        raise BadRequest(f"The password does not meet the requirements: {detail}.")


def set_password(
    identity: Any,
    session: Session,
    user: User,
    plain: Any,
    *,
    self_service: bool = False,
    prehashed: str | None = None,
) -> Password:
    """Give ``user`` the password ``plain`` (a flushed ``Password`` row results).

    Rules (Keystone's ``[security_compliance]``, each off unless configured):
    400 for a non-string or a password over 4096 characters, a password not
    matching ``password_regex``, and (``self_service`` only: an administrator's
    reset is not bound by them) a password equal to one of the last
    ``unique_last_password_count`` ones or a change sooner than
    ``minimum_password_age`` days after the last self-chosen one. The new
    password expires after ``password_expires_days`` (unless the user has the
    ``ignore_password_expiry`` option); an administrator-set password expires at
    once when ``change_password_upon_first_use`` is on. Replacing an existing
    password revokes the user's tokens.

    ``prehashed``: ``hash_password(settings, plain)`` computed before the write
    transaction began, so the slow hash does not hold the writer lock.
    """
    settings = identity.settings
    plain = validate_password_value(plain)
    check_regex(settings, plain)
    now = utcnow()
    history = password_history(session, user.id) if user.id else []
    unique = settings.identity.unique_last_password_count
    # Keystone checks the history on self-service changes only (an admin reset may reuse).
    if self_service and unique > 0 and history:
        for old in history[-unique:]:
            if check_password(old.password_hash, plain):
                raise BadRequest(
                    "The new password cannot be identical to a previous password. The total "
                    f"number which includes the new password must be unique is {unique}."
                )
    min_age = settings.identity.minimum_password_age
    # As Keystone: the minimum age binds only a password the user chose themselves.
    if self_service and min_age > 0 and history and history[-1].self_service:
        last = history[-1]
        ready = last.created_at + timedelta(days=min_age)
        if ready > now:
            days_left = max(1, (ready - now).days + (1 if (ready - now).seconds else 0))
            raise BadRequest(
                "You cannot change your password at this time due to the minimum password "
                "age. Once you change your password, it must be used for "
                f"{min_age} day(s) before it can be changed. Please try again in "
                f"{days_left} day(s) or contact your administrator to reset your password."
            )
    expires_at = _expires_at(settings, user, now)
    if not self_service and change_password_required(settings, user):
        expires_at = now
    row = Password(
        user_id=user.id,
        password_hash=prehashed or hash_password(settings, plain),
        created_at=now,
        expires_at=expires_at,
        self_service=self_service,
    )
    session.add(row)
    # Keep only the history the rules need (at least the current password).
    keep = max(unique, 1)
    for old in history[: max(0, len(history) + 1 - keep)]:
        session.delete(old)
    user.failed_auth_count = 0
    user.failed_auth_at = None
    session.flush()
    if history:
        from onestack.identity import revoke

        revoke.revoke_user(session, user.id)
    return row


def password_expires_at(session: Session, user_id: str) -> datetime | None:
    row = current_password(session, user_id)
    return row.expires_at if row is not None else None
