"""Password hashing."""

from __future__ import annotations

from types import SimpleNamespace

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
    assert h.startswith("$2") and "correct" not in h
    assert h.split("$")[2] == "04"  # the configured cost
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


def test_check_secret() -> None:
    assert check_secret(hash_password(SETTINGS, "s"), "s")  # type: ignore[arg-type]
    assert check_secret("plain", "plain") and not check_secret("plain", "other")


def test_validate_value() -> None:
    assert validate_password_value("x" * 4096)
    with pytest.raises(BadRequest):
        validate_password_value("x" * 4097)
    with pytest.raises(BadRequest):
        validate_password_value(123)


def test_regex() -> None:
    s = SimpleNamespace(identity=SimpleNamespace(password_regex=r"^.{8,}$", password_regex_description="8+"))
    check_regex(s, "longenough")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="8\\+"):
        check_regex(s, "short")  # type: ignore[arg-type]
