"""Password hashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from types import SimpleNamespace

import bcrypt
import pytest

from onestack.common.errors import BadRequest
from onestack.identity.passwords import (
    check_password,
    check_regex,
    check_secret,
    hash_password,
    validate_password_value,
)

SETTINGS = SimpleNamespace(identity=SimpleNamespace(password_hash_rounds=4, password_regex="",
                                                    password_regex_description="",
                                                    password_check_cache_seconds=0))


def test_hash_and_check() -> None:
    h = hash_password(SETTINGS, "correct horse")  # type: ignore[arg-type]
    assert h.startswith("$bcrypt-sha256$v=2,t=2b,r=4$") and "correct" not in h  # the configured cost
    salt, digest = h.split("$")[3:]
    assert len(salt) == 22 and len(digest) == 31
    assert check_password(h, "correct horse")
    assert not check_password(h, "wrong")
    assert not check_password(h, None)
    assert not check_password(None, "x")
    assert not check_password("not-a-hash", "x")
    assert hash_password(SETTINGS, "same") != hash_password(SETTINGS, "same")  # type: ignore[arg-type]


def test_long_and_unicode_passwords() -> None:
    long = "p" * 200
    h = hash_password(SETTINGS, long)  # type: ignore[arg-type]
    assert check_password(h, long)
    u = "pässwörd-密码"
    assert check_password(hash_password(SETTINGS, u), u)  # type: ignore[arg-type]


def test_every_byte_of_a_long_password_counts() -> None:
    """bcrypt alone reads 72 bytes (bcrypt 5 raises beyond); the pre-hash makes
    a password differing only after byte 72 a different password."""
    hundred = "a" * 71 + "b" * 29
    assert len(hundred.encode()) == 100
    h = hash_password(SETTINGS, hundred)  # type: ignore[arg-type]
    assert check_password(h, hundred)
    assert not check_password(h, hundred[:72])
    assert not check_password(h, hundred[:72] + "c" * 28)
    assert not check_password(h, hundred + "x")
    # multi-byte characters across the 72-byte boundary too
    wide = "é" * 50  # 100 bytes
    assert not check_password(hash_password(SETTINGS, wide), "é" * 36 + "e" * 14)  # type: ignore[arg-type]


def test_old_plain_bcrypt_hashes_still_verify() -> None:
    """Hashes of earlier versions: bcrypt of the first 72 bytes."""
    short = bcrypt.hashpw(b"old secret", bcrypt.gensalt(4)).decode()
    assert check_password(short, "old secret") and not check_password(short, "old secreT")
    long = "z" * 100
    legacy = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    assert check_password(legacy, long)
    assert check_secret(legacy, long)
    assert not check_password(legacy, "y" * 100)


def test_hash_matches_keystones_bcrypt_sha256() -> None:
    """The format is passlib's v2 (Keystone's ``bcrypt_sha256``): bcrypt of
    base64(HMAC-SHA-256(key=salt, password)) - computed here independently."""
    h = hash_password(SETTINGS, "interop")  # type: ignore[arg-type]
    _, _, params, salt, digest = h.split("$")
    assert params == "v=2,t=2b,r=4"
    key = base64.b64encode(hmac.new(salt.encode(), b"interop", hashlib.sha256).digest())
    assert bcrypt.checkpw(key, f"$2b$04${salt}{digest}".encode())


def test_malformed_hashes_do_not_verify() -> None:
    for bad in ("$bcrypt-sha256$v=2,t=2b$x$y", "$bcrypt-sha256$v=1,t=2b,r=4$" + "a" * 22 + "$" + "b" * 31,
                "$bcrypt-sha256$", "$6$rounds=5000$x$y"):
        assert not check_password(bad, "x")


def test_check_secret() -> None:
    assert check_secret(hash_password(SETTINGS, "s"), "s")  # type: ignore[arg-type]
    assert check_secret("plain", "plain") and not check_secret("plain", "other")


def test_validate_value() -> None:
    assert validate_password_value("x" * 4096)
    with pytest.raises(BadRequest):
        validate_password_value("x" * 4097)
    with pytest.raises(BadRequest):
        validate_password_value(123)
    with pytest.raises(BadRequest, match="not valid Unicode"):
        validate_password_value("a\ud800b")


def test_regex() -> None:
    s = SimpleNamespace(identity=SimpleNamespace(password_regex=r"^.{8,}$", password_regex_description="8+"))
    check_regex(s, "longenough")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="8\\+"):
        check_regex(s, "short")  # type: ignore[arg-type]
