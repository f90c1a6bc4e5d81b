"""The verified-password cache skips bcrypt only for a repeated correct password."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest

from onestack.identity import passwords
from onestack.identity.passwords import VerifiedPasswords, check_password

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = bcrypt.checkpw

    def checkpw(plain: bytes, hashed: bytes) -> bool:
        calls[0] += 1
        return real(plain, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", checkpw)
    monkeypatch.setattr(passwords, "verified_passwords", VerifiedPasswords())
    return calls


def test_repeated_success_skips_bcrypt(counted: list[int]) -> None:
    assert check_password(HASH, "s3cret", cache_seconds=60)
    assert check_password(HASH, "s3cret", cache_seconds=60)
    assert check_password(HASH, "s3cret", cache_seconds=60)
    assert counted[0] == 1


def test_wrong_password_always_pays_bcrypt(counted: list[int]) -> None:
    assert check_password(HASH, "s3cret", cache_seconds=60)
    for _ in range(3):
        assert not check_password(HASH, "guess", cache_seconds=60)
    assert counted[0] == 4


def test_new_hash_is_not_served_from_cache(counted: list[int]) -> None:
    assert check_password(HASH, "s3cret", cache_seconds=60)
    other = bcrypt.hashpw(b"changed", bcrypt.gensalt(4)).decode()
    assert not check_password(other, "s3cret", cache_seconds=60)
    assert check_password(other, "changed", cache_seconds=60)
    assert counted[0] == 3


def test_expiry_and_off(counted: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_password(HASH, "s3cret", cache_seconds=60)
    clock: list[float] = [passwords.time.monotonic() + 61]
    monkeypatch.setattr(passwords.time, "monotonic", lambda: clock[0])
    assert check_password(HASH, "s3cret", cache_seconds=60)
    assert counted[0] == 2
    assert check_password(HASH, "s3cret")  # cache_seconds=0: always bcrypt
    assert counted[0] == 3


def test_size_is_bounded() -> None:
    cache = VerifiedPasswords(size=2)
    hashes: list[Any] = [bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() for _ in range(3)]
    for h in hashes:
        assert cache.check(h, b"pw", 60)
    assert len(cache._entries) == 2


def test_a_fresh_hash_is_already_verified(counted: list[int]) -> None:
    from onestack.config import Settings

    settings = Settings()
    settings.identity.password_hash_rounds = 4
    hashed = passwords.hash_password(settings, "n3w")
    assert check_password(hashed, "n3w", cache_seconds=60)
    assert not check_password(hashed, "other", cache_seconds=60)
    assert counted[0] == 1  # only the wrong password ran bcrypt's check
    settings.identity.password_check_cache_seconds = 0
    off = passwords.hash_password(settings, "n3w")
    assert check_password(off, "n3w", cache_seconds=60)
    assert counted[0] == 2
