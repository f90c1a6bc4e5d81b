"""A real ``onestack up`` and a real ``onestack agent`` process that has no
database URL and no state directory of the cloud: it claims and completes
the tasks of its host over the internal HTTP API; an agent with a bad
credential is refused. On SQLite and on PostgreSQL (where the API is woken
by NOTIFY from the process that enqueues)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.common.db import Database
from onestack.common.models import FAILED, QUEUED, SUCCEEDED
from onestack.common.tasks.hosts import HostRegistry
from onestack.common.tasks.queue import TaskQueue
from tests.conftest import CloudInfo, start_cloud, stop_cloud

pytestmark = pytest.mark.clients

ROOT = Path(__file__).resolve().parents[2]
HOST = "agent-host-1"


def agent_env(home: Path, credential: str) -> dict[str, str]:
    """What a host with only the agent installed has: no database URL, no
    state directory of the cloud, nothing of the cloud's environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),  # for the test role module
        "ONESTACK_AGENT_CREDENTIAL": credential,
    }


def start_agent(url: str, home: Path, credential: str, *extra: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "onestack.cli", "agent", "--url", url, "--host", HOST,
         "--role", "tests.clients.agent_handlers", "--long-poll", "10",
         "--report-interval", "1", "--concurrency", "3", *extra],
        env=agent_env(home, credential), cwd=home, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CloudInfo, str]]:
    env: dict[str, str] = {}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").new_database()
        env["ONESTACK_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{tmp_path / 'state' / 'onestack.db'}"
        # another process's enqueue wakes nobody on SQLite: the API polls
        env["ONESTACK_TASKS_POLL_INTERVAL"] = "0.3"
    info = start_cloud(tmp_path / "state", env)
    try:
        yield info, url
    finally:
        stop_cloud(info)


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_an_agent_without_a_database_runs_its_hosts_tasks(
    cloud: tuple[CloudInfo, str], tmp_path: Path
) -> None:
    info, db_url = cloud
    made = subprocess.run(
        [sys.executable, "-m", "onestack.cli", "agent-credential", "create", "--host", HOST,
         "--state-dir", str(info.state_dir)],
        env={**os.environ, **({"ONESTACK_DATABASE_URL": db_url}
                              if db_url.startswith("postgresql") else {})},
        capture_output=True, text=True, timeout=60, check=True,
    )
    credential = made.stdout.strip()
    assert credential.count(".") == 1 and "not shown again" in made.stderr

    db = Database(db_url)
    queue = TaskQueue(db)
    agent = start_agent(info.url, tmp_path / "agent-home", credential)
    bad = start_agent(info.url, tmp_path / "bad-home",
                      credential.split(".")[0] + "." + "x" * 43)
    try:
        # the agent with a bad credential is refused and exits
        code, err = stop_after(bad, 30)
        assert code == 2 and "refused this agent's credential" in err

        with db.write() as s:
            ids = [queue.enqueue(s, "agent-echo", {"text": f"hello {i}"}, host=HOST).id
                   for i in range(5)]
            ids.append(queue.enqueue(s, "agent-sleepy", {"steps": 3}, host=HOST).id)
            refused = queue.enqueue(s, "agent-refuse", {"why": "test"}, host=HOST).id
            elsewhere = queue.enqueue(s, "agent-echo", {"text": "not mine"},
                                      host="another-host").id
        wait_until(lambda: all(queue.get(i).done for i in [*ids, refused]))  # type: ignore[union-attr]
        tasks = [queue.get(i) for i in ids]
        assert all(t is not None and t.state == SUCCEEDED for t in tasks)
        results = [t.result for t in tasks if t is not None]
        assert [r["echo"] for r in results[:5]] == [f"hello {i}" for i in range(5)]
        assert {r["pid"] for r in results} == {agent.pid}
        assert not any(r["sqlalchemy_loaded"] for r in results)
        assert all(r["database_env"] == [] for r in results)
        assert tasks[0] is not None and tasks[0].progress == {"step": "echoing"}
        failed = queue.get(refused)
        assert failed is not None and (failed.state, failed.reason) == (FAILED, "refused: test")
        assert queue.get(elsewhere).state == QUEUED  # type: ignore[union-attr]

        # an idle agent reacts at once (its claim long-polls in the API)
        time.sleep(1.0)
        sent = time.monotonic()
        with db.write() as s:
            quick = queue.enqueue(s, "agent-echo", {"text": "quick"}, host=HOST).id
        wait_until(lambda: queue.get(quick).done)  # type: ignore[union-attr]
        assert time.monotonic() - sent < 6  # its long poll is 10 s

        # the agent's heartbeats show its host and service alive
        services = HostRegistry(db).services(60, host=HOST)
        assert [(s.binary, s.alive) for s in services] == [("onestack-test-agent", True)]
        assert services[0].configuration == {
            "kinds": ["agent-echo", "agent-refuse", "agent-sleepy"]}
    finally:
        code, err = stop(agent)
        stop(bad)
        db.dispose()
    assert code == 0, err


def stop_after(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the agent did not exit: {err[-2000:]}") from None
    return proc.returncode, err


def test_the_agent_command_says_what_is_missing(tmp_path: Path) -> None:
    env = agent_env(tmp_path, "")
    env.pop("ONESTACK_AGENT_CREDENTIAL")
    out = subprocess.run([sys.executable, "-m", "onestack.cli", "agent", "--url",
                          "http://127.0.0.1:9", "--role", "tests.clients.agent_handlers"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "onestack agent: no credential: set ONESTACK_AGENT_CREDENTIAL or give "
        "--credential-file (onestack agent-credential create makes one)")
    out = subprocess.run([sys.executable, "-m", "onestack.cli", "agent", "--url",
                          "http://127.0.0.1:9"], env=agent_env(tmp_path, "a.b"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "onestack agent: the agent has no task handlers: name a role (--role)")
