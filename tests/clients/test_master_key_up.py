"""`onestack up` on a copy of a cloud's database: without the master key it
refuses to start (one line, non-zero exit); with the key given by
configuration it serves, and the old cloud's tokens validate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ENV, free_port, start_cloud, stop_cloud

pytestmark = pytest.mark.clients


def _token(url: str, clouds_yaml: str) -> str:
    import yaml

    auth = yaml.safe_load(clouds_yaml)["clouds"]["onestack-admin"]["auth"]
    r = httpx.post(url + "/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": "Default"}, "password": auth["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def test_up_on_a_copied_database_needs_the_master_key(tmp_path: Path) -> None:
    first = start_cloud(tmp_path / "a")
    try:
        token = _token(first.url, first.clouds_yaml.read_text())
    finally:
        stop_cloud(first)
    copy = tmp_path / "b"
    copy.mkdir(mode=0o700)
    shutil.copy(first.state_dir / "onestack.db", copy / "onestack.db")
    # (without clouds.yaml the bootstrap would give the admin a new password, revoking its tokens)
    shutil.copy(first.state_dir / "clouds.yaml", copy / "clouds.yaml")

    env = dict(os.environ, **TEST_ENV)
    r = subprocess.run(
        [sys.executable, "-m", "onestack.cli", "up", "--port", str(free_port()), "--state-dir", str(copy)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onestack: the database's token and credential keys are "
                                                   "wrapped with a master key"), r.stderr
    assert "master.key" in lines[0] and "Traceback" not in r.stderr
    assert not (copy / "master.key").exists()

    second = start_cloud(copy, {"ONESTACK_MASTER_KEY_FILE": str(first.state_dir / "master.key")})
    try:
        r2 = httpx.get(second.url + "/image/v2/images", headers={"X-Auth-Token": token})
        assert r2.status_code == 200, r2.text
    finally:
        stop_cloud(second)
