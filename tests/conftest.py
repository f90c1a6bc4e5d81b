"""Shared fixtures.

* ``api`` (tests/api): the whole cloud in-process, driven through Starlette's
  TestClient - real database, real tokens, no server.
* ``running_cloud`` (tests/clients): a real ``onestack up`` on a free port,
  for the real OpenStack clients.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

# bcrypt's cost is the slowest part of authenticating; tests use the minimum.
# Test clouds run as root here, but leave the machine alone: no data plane
# (namespaces, bridges, dnsmasq, a veth to the host) unless a test asks for
# one (tests/e2e, with --no-host-network).
TEST_ENV = {
    "ONESTACK_IDENTITY_PASSWORD_HASH_ROUNDS": "4",
    # Compute's agent runs the in-memory driver (tests/e2e boot real guests).
    "ONESTACK_COMPUTE_DRIVER": "fake",
    "ONESTACK_NETWORK_DATAPLANE": "off",
}
os.environ.setdefault("ONESTACK_NETWORK_DATAPLANE", "off")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CloudInfo:
    url: str
    state_dir: Path
    clouds_yaml: Path
    process: subprocess.Popen[bytes] | None = None
    s3_url: str = ""  # the S3 listener (a free port of its own)

    def cloud(self, name: str = "onestack-admin") -> dict[str, Any]:
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"][name]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        for key in list(env):
            if key.startswith("OS_") and key != "OS_CLIENT_CONFIG_FILE":
                env.pop(key)
        return env


def start_cloud(state_dir: Path, extra_env: dict[str, str] | None = None) -> CloudInfo:
    port = free_port()
    s3_port = free_port()
    env = {**os.environ, **TEST_ENV, **(extra_env or {})}
    log = open(state_dir.parent / f"onestack-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "onestack.cli", "up", "--port", str(port), "--s3-port", str(s3_port),
         "--state-dir", str(state_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"onestack up exited: {Path(log.name).read_text()[-3000:]}")
        try:
            if httpx.get(url + "/identity/v3", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("onestack up did not answer within 60 s")
    return CloudInfo(url=url, state_dir=state_dir, clouds_yaml=state_dir / "clouds.yaml", process=proc,
                     s3_url=f"http://127.0.0.1:{s3_port}")


def stop_cloud(info: CloudInfo) -> None:
    if info.process is not None and info.process.poll() is None:
        info.process.terminate()
        try:
            info.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            info.process.kill()
            info.process.wait()


@pytest.fixture(scope="session")
def running_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudInfo]:
    state = tmp_path_factory.mktemp("cloud") / "state"
    info = start_cloud(state)
    try:
        yield info
    finally:
        stop_cloud(info)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A private PostgreSQL server for the session (tests/pg.py), or a skip."""
    from tests import pg

    reason = pg.skip_reason()
    if reason:
        pytest.skip(reason)
    server = pg.Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL (a new database each time)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'db.sqlite'}"
    server = request.getfixturevalue("pg_server")
    return str(server.new_database())
