"""The master key: where it comes from, and wrapping with it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from onestack.common import masterkey
from onestack.common.masterkey import (
    KeyUnavailable,
    MasterKeyError,
    is_wrapped,
    parse_key,
    wrapped_fingerprint,
)
from onestack.config import load_settings


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    masterkey._cache.clear()


def _key() -> masterkey.MasterKey:
    return parse_key(masterkey.new_key_text(), "test")


def test_wrap_and_unwrap() -> None:
    mk = _key()
    wrapped = mk.wrap("a-fernet-key", "identity_key/fernet")
    assert is_wrapped(wrapped) and wrapped_fingerprint(wrapped) == mk.fingerprint
    assert "a-fernet-key" not in wrapped
    assert mk.unwrap(wrapped, "identity_key/fernet") == "a-fernet-key"
    assert mk.wrap("a-fernet-key", "identity_key/fernet") != wrapped  # a new nonce each time
    assert len(wrapped) < 255  # fits the column


def test_unwrap_refuses_another_master_key_purpose_tampering_and_clear_values() -> None:
    mk, other = _key(), _key()
    wrapped = mk.wrap("secret", "identity_key/fernet")
    with pytest.raises(KeyUnavailable, match="another master key"):
        other.unwrap(wrapped, "identity_key/fernet")
    with pytest.raises(KeyUnavailable, match="does not authenticate"):
        mk.unwrap(wrapped, "identity_key/credential")
    body = wrapped.rsplit(":", 1)[1]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(KeyUnavailable, match="does not authenticate"):
        mk.unwrap(wrapped.rsplit(":", 1)[0] + ":" + flipped, "identity_key/fernet")
    with pytest.raises(KeyUnavailable, match="in the clear"):
        mk.unwrap("Z" * 44, "identity_key/fernet")


def test_made_in_the_state_directory_private_and_kept(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "state", env={})
    settings.state_dir.mkdir()
    assert not masterkey.configured(settings)
    first = masterkey.load(settings)
    path = settings.state_dir / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(path.read_text().strip())) == 32
    assert masterkey.configured(settings)
    masterkey._cache.clear()
    assert masterkey.load(settings).key == first.key  # read back, not made again


def test_a_readable_key_file_is_made_private(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    path = tmp_path / "master.key"
    path.write_text(masterkey.new_key_text())
    os.chmod(path, 0o644)
    masterkey.load(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_given_by_configuration(tmp_path: Path) -> None:
    text = masterkey.new_key_text()
    by_env = load_settings(tmp_path / "a", env={"ONESTACK_MASTER_KEY": text})
    assert masterkey.load(by_env).key == base64.urlsafe_b64decode(text)
    assert not (tmp_path / "a" / "master.key").exists()
    key_file = tmp_path / "shared.key"
    key_file.write_text(text + "\n")
    by_file = load_settings(tmp_path / "b", env={"ONESTACK_MASTER_KEY_FILE": str(key_file)})
    assert masterkey.configured(by_file)
    assert masterkey.load(by_file).key == base64.urlsafe_b64decode(text)
    assert masterkey.load(by_file).source == str(key_file)
    # standard base64 is accepted too
    std = base64.b64encode(os.urandom(32)).decode()
    assert len(masterkey.load(load_settings(tmp_path / "c", env={"ONESTACK_MASTER_KEY": std})).key) == 32


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    missing = load_settings(tmp_path, env={"ONESTACK_MASTER_KEY_FILE": str(tmp_path / "nope.key")})
    with pytest.raises(MasterKeyError, match="cannot read the master key file .*nope.key"):
        masterkey.load(missing)
    assert not (tmp_path / "nope.key").exists()  # a configured file is never made up
    short = load_settings(tmp_path, env={"ONESTACK_MASTER_KEY": base64.b64encode(b"x" * 16).decode()})
    with pytest.raises(MasterKeyError, match="not 32 bytes"):
        masterkey.load(short)
    junk = load_settings(tmp_path, env={"ONESTACK_MASTER_KEY": "not base64 at all!"})
    with pytest.raises(MasterKeyError, match="not 32 bytes"):
        masterkey.load(junk)
