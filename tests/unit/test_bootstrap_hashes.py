"""The bootstrap passwords are hashed early, without importing the password
module; the hashes must be exactly what ``hash_password`` makes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from onestack.config import load_settings
from onestack.identity import bootstrap
from onestack.identity.passwords import (
    check_password,
    hash_password,
    verified_passwords,
    verify_hash,
)


def _settings(tmp_path: Path, rounds: int = 5) -> Any:
    return load_settings(tmp_path / "state", {}, env={
        "ONESTACK_IDENTITY_PASSWORD_HASH_ROUNDS": str(rounds),
    })


def test_early_hashes_match_hash_password(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    early = bootstrap.EarlyHashes(settings)
    hashes = early.hashes()
    assert set(hashes) == {"admin", "demo"}
    reference = hash_password(settings, "x")
    for name, hashed in hashes.items():
        # same scheme and cost: "$bcrypt-sha256$v=2,t=2b,r=5$"
        assert hashed.split("$")[:3] == reference.split("$")[:3] == ["", "bcrypt-sha256", "v=2,t=2b,r=5"]
        assert len(hashed) == len(reference)
        assert check_password(hashed, early.passwords[name])
        assert not check_password(hashed, early.passwords[name] + "x")
    # A long password counts in full, as with hash_password.
    long = "p" * 100
    hashed, encoded = bootstrap._bcrypt(5, long)
    assert encoded == long.encode()
    assert check_password(hashed, long)
    assert not check_password(hashed, long[:72])
    assert not check_password(hash_password(settings, long), long[:72])


def test_early_hashes_are_remembered_as_verified(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    verified_passwords.clear()
    early = bootstrap.EarlyHashes(settings)
    hashes = early.hashes()
    # Remembered as hash_password does: the first login skips bcrypt.
    plain = early.passwords["admin"].encode()
    assert verified_passwords.check(hashes["admin"], plain, 60)
    assert hashes["admin"] in verified_passwords._entries
    assert verify_hash(hashes["admin"], plain)


def test_start_early_takes_the_prestarted_hashes_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    identity = SimpleNamespace(settings=settings)
    bootstrap.prestart(settings)
    pending = bootstrap._early[settings.state_dir]
    assert bootstrap.start_early(identity) is pending  # type: ignore[arg-type]
    again = bootstrap.start_early(identity)  # type: ignore[arg-type]
    assert again is not None and again is not pending


def test_no_early_hashes_once_clouds_yaml_exists(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / "clouds.yaml").write_text("clouds: {}\n")
    bootstrap.prestart(settings)
    assert settings.state_dir not in bootstrap._early
    assert bootstrap.start_early(SimpleNamespace(settings=settings)) is None  # type: ignore[arg-type]


def test_importing_bootstrap_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import onestack.identity.bootstrap; "
        "print(sorted(m for m in ('sqlalchemy', 'yaml', 'onestack.identity.models', "
        "'onestack.identity.passwords') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
