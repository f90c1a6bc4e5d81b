"""The master key: the one secret that is not in the database.

The database holds the keys that matter most - the Fernet keys that sign
tokens, the keys that encrypt credentials - but only *wrapped*: encrypted with
AES-256-GCM under a master key kept outside it. A copy of the database alone
mints no token and decrypts no credential.

Where the master key comes from (the first that is set):

* ``master_key`` (``ONESTACK_MASTER_KEY``): the key itself, 32 bytes in base64;
* ``master_key_file`` (``ONESTACK_MASTER_KEY_FILE``): a file holding it, which
  must exist;
* ``<state_dir>/master.key``, made (mode 0600) on first use.

Several API processes on one database (PostgreSQL) must share it: copy
``master.key`` or give the same key by configuration. A wrapped value reads
``mk1:<fingerprint>:<base64url(nonce | ciphertext | tag)>``; the fingerprint
names the master key it was wrapped with, so a wrong master key is reported
as such. ``purpose`` (e.g. ``identity_key/fernet``) is authenticated with the
value: a wrapped key cannot be moved to another use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.config import Settings

PREFIX = "mk1:"
KEY_BYTES = 32
FILE_NAME = "master.key"


class MasterKeyError(Exception):
    """The master key is missing, unreadable or not a key (a configuration error)."""


class MasterKeyMismatch(MasterKeyError):
    """The database's keys were wrapped with another master key than this process has."""


class KeyUnavailable(Exception):
    """A stored value cannot be unwrapped with this master key."""


def is_wrapped(stored: str) -> bool:
    return stored.startswith(PREFIX)


def wrapped_fingerprint(stored: str) -> str | None:
    """The fingerprint of the master key a stored value was wrapped with."""
    if not is_wrapped(stored):
        return None
    return stored[len(PREFIX) :].split(":", 1)[0]


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    source: str  # where it came from, for messages (never the key)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"onestack master key\x00" + self.key).hexdigest()[:16]

    def wrap(self, secret: str, purpose: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, secret.encode("utf-8"), purpose.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{PREFIX}{self.fingerprint}:{body}"

    def unwrap(self, stored: str, purpose: str) -> str:
        """The secret; ``KeyUnavailable`` if it is not wrapped, wrapped with
        another master key or for another purpose, or altered."""
        if not is_wrapped(stored):
            raise KeyUnavailable("the value is stored in the clear, not wrapped")
        fingerprint, _, body = stored[len(PREFIX) :].partition(":")
        if fingerprint != self.fingerprint:
            raise KeyUnavailable(
                f"it was wrapped with another master key (fingerprint {fingerprint}; "
                f"the master key from {self.source} is {self.fingerprint})"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            secret = AESGCM(self.key).decrypt(raw[:12], raw[12:], purpose.encode("utf-8"))
            return secret.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
            raise KeyUnavailable("the wrapped value does not authenticate (altered, or wrapped "
                                 "for another purpose)") from None


def new_key_text() -> str:
    """A new master key as stored in a file or given by configuration."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str, source: str) -> MasterKey:
    value = text.strip()
    try:
        key = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"the master key from {source} is not {KEY_BYTES} bytes in base64")
    return MasterKey(key, source)


def _read_file(path: Path) -> MasterKey:
    try:
        text = path.read_text()
    except OSError as exc:
        raise MasterKeyError(f"cannot read the master key file {path}: {exc.strerror or exc}") from None
    try:
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(0o600)  # private to its owner, like the state directory
    except OSError:
        pass
    return parse_key(text, str(path))


def _create_file(path: Path) -> MasterKey:
    """Write a new master key file (0600); if another process won the race, read theirs."""
    text = new_key_text()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_file(path)
    except OSError as exc:
        raise MasterKeyError(f"cannot create the master key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return parse_key(text, str(path))


def configured(settings: Settings) -> bool:
    """Is there a master key to load without making a new one?"""
    return bool(settings.master_key or settings.master_key_file
                or (settings.state_dir / FILE_NAME).exists())


_lock = threading.Lock()
_cache: dict[tuple[str, str, str], MasterKey] = {}


def load(settings: Settings) -> MasterKey:
    """The cloud's master key (see the module docstring), read once per process."""
    cache_key = (settings.master_key, settings.master_key_file, str(settings.state_dir))
    with _lock:
        found = _cache.get(cache_key)
        if found is None:
            if settings.master_key:
                found = parse_key(settings.master_key, "the master_key setting (ONESTACK_MASTER_KEY)")
            elif settings.master_key_file:
                found = _read_file(Path(settings.master_key_file).expanduser())
            else:
                path = settings.state_dir / FILE_NAME
                found = _read_file(path) if path.exists() else _create_file(path)
            _cache[cache_key] = found
        return found
