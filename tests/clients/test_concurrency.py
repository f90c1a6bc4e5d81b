"""Concurrent writers through the HTTP API against a running cloud: SQLite never
answers "database is locked", nothing fails with a 500, and every write is kept."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients

WRITERS = 20
ROUNDS = 3


@dataclass
class Outcome:
    calls: list[tuple[str, str, int, str]] = field(default_factory=list)
    made: list[dict[str, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, r: httpx.Response) -> httpx.Response:
        with self.lock:
            self.calls.append((r.request.method, r.request.url.path, r.status_code, r.text[:300]))
        return r


def admin_token(info: CloudInfo) -> str:
    auth = info.cloud("onestack-admin")["auth"]
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth.get("project_domain_name", "Default")}}},
    }}
    r = httpx.post(info.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def run_writers(n: int, work: Callable[[int], None], outcome: Outcome) -> None:
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with outcome.lock:
                outcome.errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "writers did not finish"


def server_log(info: CloudInfo) -> str:
    port = info.url.rsplit(":", 1)[1]
    path = info.state_dir.parent / f"onestack-{port}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def assert_clean(outcome: Outcome, info: CloudInfo) -> None:
    assert not outcome.errors, outcome.errors[:3]
    bad = [c for c in outcome.calls if c[2] >= 500]
    assert not bad, bad[:5]
    locked = [c for c in outcome.calls if "locked" in c[3].lower()]
    assert not locked, locked[:5]
    assert "database is locked" not in server_log(info)


def test_twenty_concurrent_writers_keep_every_write(running_cloud: CloudInfo) -> None:
    url = running_cloud.url + "/identity/v3"
    headers = {"X-Auth-Token": admin_token(running_cloud)}
    roles = httpx.get(url + "/roles", params={"name": "member"}, headers=headers).json()["roles"]
    member = roles[0]["id"]
    tag = uuid.uuid4().hex[:6]
    outcome = Outcome()

    def writer(i: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            for n in range(ROUNDS):
                name = f"cc-{tag}-{i}-{n}"
                r = outcome.record(c.post("/projects", json={"project": {"name": name}}))
                assert r.status_code == 201, r.text
                project = r.json()["project"]["id"]
                r = outcome.record(c.post("/users", json={"user": {
                    "name": name, "password": "pw-" + name, "default_project_id": project}}))
                assert r.status_code == 201, r.text
                user = r.json()["user"]["id"]
                r = outcome.record(c.post("/groups", json={"group": {"name": name}}))
                assert r.status_code == 201, r.text
                group = r.json()["group"]["id"]
                r = outcome.record(c.put(f"/groups/{group}/users/{user}"))
                assert r.status_code == 204, r.text
                r = outcome.record(c.put(f"/projects/{project}/users/{user}/roles/{member}"))
                assert r.status_code == 204, r.text
                r = outcome.record(c.patch(f"/projects/{project}", json={
                    "project": {"description": f"written by {i}"}}))
                assert r.status_code == 200, r.text
                with outcome.lock:
                    outcome.made.append({"name": name, "project": project, "user": user,
                                         "group": group, "writer": str(i)})

    run_writers(WRITERS, writer, outcome)
    assert_clean(outcome, running_cloud)
    assert len(outcome.made) == WRITERS * ROUNDS
    assert len(outcome.calls) == WRITERS * ROUNDS * 6

    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        for made in outcome.made:
            project = c.get(f"/projects/{made['project']}").json()["project"]
            assert project["name"] == made["name"]
            assert project["description"] == f"written by {made['writer']}"
            user = c.get(f"/users/{made['user']}").json()["user"]
            assert user["name"] == made["name"]
            assert user["default_project_id"] == made["project"]
            r = c.head(f"/groups/{made['group']}/users/{made['user']}")
            assert r.status_code == 204
            r = c.head(f"/projects/{made['project']}/users/{made['user']}/roles/{member}")
            assert r.status_code == 204
            listed = c.get("/role_assignments", params={"scope.project.id": made["project"]})
            assert [(a["user"]["id"], a["role"]["id"])
                    for a in listed.json()["role_assignments"]] == [(made["user"], member)]


def test_concurrent_creates_of_one_name_make_exactly_one(running_cloud: CloudInfo) -> None:
    url = running_cloud.url + "/identity/v3"
    headers = {"X-Auth-Token": admin_token(running_cloud)}
    name = f"cc-same-{uuid.uuid4().hex[:8]}"
    outcome = Outcome()
    statuses: list[int] = []

    def writer(_: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            r = outcome.record(c.post("/projects", json={"project": {"name": name}}))
            with outcome.lock:
                statuses.append(r.status_code)

    run_writers(WRITERS, writer, outcome)
    assert_clean(outcome, running_cloud)
    assert sorted(statuses) == [201] + [409] * (WRITERS - 1), statuses
    conflict = next(c for c in outcome.calls if c[2] == 409)
    assert '"code": 409' in conflict[3] or '"code":409' in conflict[3]
    listed: list[Any] = httpx.get(url + "/projects", params={"name": name},
                                  headers=headers).json()["projects"]
    assert len(listed) == 1
