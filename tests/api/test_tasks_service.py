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
from onestack.common.models import FAILED, QUEUED, SUCCEEDED, PeriodicJob
from onestack.common.tasks.kinds import KindRule
from onestack.common.tasks.worker import TaskContext
from onestack.config import load_settings
from tests.conftest import TEST_ENV


async def echo(ctx: TaskContext) -> dict[str, Any]:
    return {"echo": ctx.payload.get("text"), "attempt": ctx.attempt}


def new_cloud(state: Path, database_url: str, **extra: str) -> Cloud:
    env = dict(TEST_ENV, **extra, ONESTACK_TASKS_SWEEP_INTERVAL="0.2",
               ONESTACK_TASKS_DEAD_HOST_SECONDS="1", ONESTACK_HOSTS_REPORT_INTERVAL="0.2",
               ONESTACK_HOSTS_NAME="aio-host", ONESTACK_TASKS_POLL_INTERVAL="0.2")
    if database_url:
        env["ONESTACK_DATABASE_URL"] = database_url
    cloud = build_cloud(load_settings(state, env=env))
    # what a service's create() does for the kinds it runs in-process
    cloud.handle_tasks("svc-echo", echo, KindRule(max_attempts=4))
    prepare(cloud)
    return cloud


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("pg_server").new_database())


@pytest.fixture
def cloud(tmp_path: Path, database_url: str) -> Iterator[Cloud]:
    cloud = new_cloud(tmp_path / "state", database_url)
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800"):
        yield cloud


def until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
    return value


def test_the_cloud_reports_its_own_host(cloud: Cloud) -> None:
    # (the host's compute agent reports beside it, as nova-compute)
    def api() -> list[Any]:
        return cloud.hosts.services(60, host="aio-host", binary="onestack-api")

    svc = until(api)[0]
    assert (svc.binary, svc.alive, svc.availability_zone) == ("onestack-api", True, "nova")
    first = svc.heartbeat_at
    later = until(lambda: [s for s in api() if s.heartbeat_at > first])[0]
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


def test_the_cloud_runs_the_handlers_services_registered(cloud: Cloud) -> None:
    queue = cloud.tasks
    with cloud.db.write() as s:
        here = queue.enqueue(s, "svc-echo", {"text": "here"}, host="aio-host").id
        anywhere = queue.enqueue(s, "svc-echo", {"text": "anywhere"}).id
        elsewhere = queue.enqueue(s, "svc-echo", {"text": "no"}, host="compute-2").id
    until(lambda: all(queue.get(i).state == SUCCEEDED  # type: ignore[union-attr]
                      for i in (here, anywhere)))
    assert queue.get(here).result == {"echo": "here", "attempt": 1}  # type: ignore[union-attr]
    assert queue.get(elsewhere).state in (QUEUED, FAILED)  # type: ignore[union-attr]
    assert queue.get(here).max_attempts == 4  # type: ignore[union-attr]


def test_a_task_left_running_by_a_dead_process_runs_after_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    first = new_cloud(tmp_path / "state", database_url)
    queue = first.tasks
    with first.db.write() as s:
        task_id = queue.enqueue(s, "svc-echo", {"text": "again"}).id
    # the first process took it, then died without a word
    assert queue.claim("aio-host:1:dead/local/0", "aio-host", ["svc-echo"], 1.0) is not None
    first.db.dispose()
    again = new_cloud(tmp_path / "state", database_url)
    with TestClient(build_app(again), base_url="http://127.0.0.1:8800"):
        task = until(lambda: (t := again.tasks.get(task_id)) is not None
                     and t.state == SUCCEEDED and t)
    assert task.result == {"echo": "again", "attempt": 2}


def test_the_object_stores_periodic_jobs_run_as_tasks(tmp_path: Path) -> None:
    """The object store's scheduler enqueues its jobs under one resource key
    each; its worker runs them through the queue."""
    cloud = new_cloud(tmp_path / "state", "",
                      ONESTACK_OBJECTSTORE_UPDATER_INTERVAL="0.3",
                      ONESTACK_OBJECTSTORE_REPLICATOR_INTERVAL="0",
                      ONESTACK_OBJECTSTORE_EXPIRER_INTERVAL="0",
                      ONESTACK_OBJECTSTORE_AUDITOR_INTERVAL="0")
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800"):
        done = until(lambda: len(cloud.tasks.find(kind="objectstore.update",
                                                  states=[SUCCEEDED])) >= 2 and
                     cloud.tasks.find(kind="objectstore.update", states=[SUCCEEDED]), timeout=4)
    assert done[0].resource_key == "objectstore:objectstore.update"
    assert done[0].result is not None
