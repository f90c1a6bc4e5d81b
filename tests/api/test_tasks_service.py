"""The cloud's tasks service: its own host's heartbeat, and the sweeper run
periodically under its job lease (failing a dead host's queued task)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from onestack.app import Cloud, build_app, build_cloud, prepare
from onestack.common.models import FAILED, QUEUED, PeriodicJob
from onestack.config import load_settings
from tests.conftest import TEST_ENV


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    env = dict(TEST_ENV, ONESTACK_TASKS_SWEEP_INTERVAL="0.2",
               ONESTACK_TASKS_DEAD_HOST_SECONDS="1", ONESTACK_HOSTS_REPORT_INTERVAL="0.2",
               ONESTACK_HOSTS_NAME="aio-host")
    if request.param == "postgresql":
        env["ONESTACK_DATABASE_URL"] = request.getfixturevalue("pg_server").new_database()
    settings = load_settings(tmp_path / "state", env=env)
    cloud = build_cloud(settings)
    prepare(cloud)
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800"):
        yield cloud


def until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
    return value


def test_the_cloud_reports_its_own_host(cloud: Cloud) -> None:
    svc = until(lambda: cloud.hosts.services(60, host="aio-host"))[0]
    assert (svc.binary, svc.alive, svc.availability_zone) == ("onestack-api", True, "nova")
    first = svc.heartbeat_at
    later = until(lambda: [s for s in cloud.hosts.services(60, host="aio-host")
                           if s.heartbeat_at > first])[0]
    assert later.started_at == svc.started_at  # heartbeats, not restarts


def test_the_sweeper_fails_a_dead_hosts_task(cloud: Cloud) -> None:
    cloud.hosts.heartbeat("compute-dead", "onestack-compute")
    queue = cloud.tasks
    with cloud.db.write() as s:
        dead = queue.enqueue(s, "boot", {}, host="compute-dead").id
        alive = queue.enqueue(s, "boot", {}, host="aio-host").id
    task = until(lambda: (t := queue.get(dead)) is not None and t.state == FAILED and t)
    assert task.reason.startswith("Host compute-dead is down: no heartbeat from its services")
    assert queue.get(alive).state == QUEUED  # type: ignore[union-attr]
    with cloud.db.read() as s:
        holder = s.execute(select(PeriodicJob.holder)
                           .where(PeriodicJob.name == "task-sweeper")).scalar_one()
    assert holder == cloud.services["tasks"].identity
