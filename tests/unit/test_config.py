"""Settings: defaults < <state_dir>/onestack.toml < environment < overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.config import Settings, load_settings


def write_conf(state_dir: Path, text: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "onestack.toml").write_text(text)


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.port == 8800 and s.host == "127.0.0.1"
    assert s.identity.token_expiration == 3600
    assert s.state_dir == tmp_path.absolute()
    assert s.db_url == f"sqlite:///{tmp_path.absolute() / 'onestack.db'}"
    assert s.policy_path == tmp_path.absolute() / "policy.yaml"
    assert s.base_url == "http://127.0.0.1:8800"


def test_file_over_defaults(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        'port = 9000\nregion = "RegionTwo"\n[identity]\ntoken_expiration = 60\n'
        "change_password_upon_first_use = true\n[image]\nimage_count_total = 10\n",
    )
    s = load_settings(tmp_path, env={})
    assert s.port == 9000 and s.region == "RegionTwo"
    assert s.identity.token_expiration == 60
    assert s.identity.change_password_upon_first_use is True
    assert s.image.image_count_total == 10
    assert s.identity.password_hash_rounds == 12  # untouched fields keep defaults


def test_env_over_file(tmp_path: Path) -> None:
    write_conf(tmp_path, "port = 9000\n[identity]\ntoken_expiration = 60\n")
    env = {
        "ONESTACK_PORT": "9100",
        "ONESTACK_IDENTITY_TOKEN_EXPIRATION": "120",
        "ONESTACK_IDENTITY_TOKEN_CACHE_SECONDS": "0.5",
        "ONESTACK_IDENTITY_CHANGE_PASSWORD_UPON_FIRST_USE": "yes",
        "ONESTACK_LOG_LEVEL": "debug",
        "UNRELATED": "x",
    }
    s = load_settings(tmp_path, env=env)
    assert s.port == 9100 and isinstance(s.port, int)
    assert s.identity.token_expiration == 120
    assert s.identity.token_cache_seconds == 0.5
    assert s.identity.change_password_upon_first_use is True
    assert s.log_level == "debug"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("on", True), ("0", False), ("false", False), ("no", False)],
)
def test_env_booleans(tmp_path: Path, value: str, expected: bool) -> None:
    env = {"ONESTACK_IDENTITY_CHANGE_PASSWORD_UPON_FIRST_USE": value}
    assert load_settings(tmp_path, env=env).identity.change_password_upon_first_use is expected


def test_overrides_over_env(tmp_path: Path) -> None:
    write_conf(tmp_path, "port = 9000\n")
    env = {"ONESTACK_PORT": "9100", "ONESTACK_IDENTITY_TOKEN_EXPIRATION": "120"}
    s = load_settings(
        tmp_path,
        overrides={"port": 9200, "identity.token_expiration": 30, "host": None},
        env=env,
    )
    assert s.port == 9200
    assert s.identity.token_expiration == 30
    assert s.host == "127.0.0.1"  # None means "not given on the command line"


def test_state_dir_from_env(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    write_conf(target, "port = 9300\n")
    s = load_settings(env={"ONESTACK_STATE_DIR": str(target)})
    assert s.state_dir == target.absolute() and s.port == 9300
    # an explicit state_dir wins over the environment
    assert load_settings(tmp_path, env={"ONESTACK_STATE_DIR": str(target)}).port == 8800


def test_state_dir_in_file_is_ignored(tmp_path: Path) -> None:
    write_conf(tmp_path, f'state_dir = "{tmp_path / "other"}"\n')
    assert load_settings(tmp_path, env={}).state_dir == tmp_path.absolute()


def test_derived_urls_and_paths(tmp_path: Path) -> None:
    env = {
        "ONESTACK_HOST": "0.0.0.0",
        "ONESTACK_PORT": "8080",
        "ONESTACK_DATABASE_URL": "postgresql://db/onestack",
        "ONESTACK_POLICY_FILE": str(tmp_path / "p.json"),
    }
    s = load_settings(tmp_path, env=env)
    assert s.base_url == "http://127.0.0.1:8080"  # a wildcard bind is reached on loopback
    assert s.db_url == "postgresql://db/onestack"
    assert s.policy_path == tmp_path / "p.json"
    s = load_settings(tmp_path, env={"ONESTACK_PUBLIC_URL": "https://cloud.example/"})
    assert s.base_url == "https://cloud.example"


def test_bad_value_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_settings(tmp_path, env={"ONESTACK_PORT": "eighty"})


def test_settings_are_independent() -> None:
    a, b = Settings(), Settings()
    a.identity.token_expiration = 1
    assert b.identity.token_expiration == 3600
