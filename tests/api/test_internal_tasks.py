"""The internal task API and the HTTP broker, against the whole cloud served
by uvicorn in a thread (on SQLite and on PostgreSQL): authentication, what
an agent may touch, fencing over HTTP, long polls, and workers driven
through the HTTP broker the way a remote agent drives them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from onestack.app import Cloud, build_app, build_cloud, prepare
from onestack.common.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from onestack.common.tasks import credentials
from onestack.common.tasks.errors import BrokerError, LeaseLost, TaskCancelled, TaskFailed
from onestack.common.tasks.http_broker import HttpBroker
from onestack.common.tasks.kinds import KindRule
from onestack.common.tasks.worker import LEASE_LOST, LEASE_RAN_OUT, TaskContext, Worker
from onestack.config import load_settings
from tests.conftest import TEST_ENV, free_port

UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}


@dataclass
class Live:
    cloud: Cloud
    url: str
    host: str
    credential: str

    def post(self, path: str, body: Any, credential: str | None = None,
             **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential or self.credential}"}
        return httpx.post(self.url + "/internal/v1" + path, json=body, headers=headers,
                          timeout=30, **kw)

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> str:
        queue = self.cloud.tasks
        with queue.db.write() as s:
            return queue.enqueue(s, kind, payload or {}, **kw).id

    def task(self, task_id: str) -> Any:
        task = self.cloud.tasks.get(task_id)
        assert task is not None
        return task


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = dict(TEST_ENV, ONESTACK_TASKS_LONG_POLL_SECONDS="2")
    if request.param == "postgresql":
        env["ONESTACK_DATABASE_URL"] = request.getfixturevalue("pg_server").new_database()
    settings = load_settings(tmp_path_factory.mktemp("internal") / "state", env=env)
    settings.port = free_port()
    cloud = build_cloud(settings)
    prepare(cloud)
    server = uvicorn.Server(uvicorn.Config(
        build_app(cloud), host="127.0.0.1", port=settings.port, log_config=None,
        access_log=False, lifespan="on", ws="none", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    _, credential = credentials.create(cloud.db, "compute-7", "test agent")
    try:
        yield Live(cloud, f"http://127.0.0.1:{settings.port}", "compute-7", credential)
    finally:
        cloud.services["tasks"].begin_shutdown()
        server.should_exit = True
        thread.join(15)


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize("header", [
    None,
    "Bearer",
    "Basic Y29tcHV0ZS03OnNlY3JldA==",
    "Bearer nonsense",
    "Bearer 0123456789abcdef0123456789abcdef.wrong-secret-but-well-formed",
])
def test_no_valid_credential_no_answer(live: Live, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in [("POST", "/v1/tasks/claim"), ("POST", "/v1/tasks/x/complete"),
                         ("PUT", "/v1/services/onestack-compute"), ("GET", "/v1/tasks"),
                         ("GET", "/v1/no/such/route"), ("DELETE", "/v1/tasks/claim")]:
        r = httpx.request(method, live.url + "/internal" + path, headers=headers,
                          json={"owner": "w", "host": live.host, "kinds": ["boot"],
                                "lease_seconds": 60}, timeout=10)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json() == UNAUTHORIZED
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="onestack-internal"'


def test_a_wrong_secret_for_a_real_id_and_a_revoked_credential(live: Live) -> None:
    cred_id, good = credentials.create(live.cloud.db, "compute-8")
    wrong = cred_id + "." + "x" * 43
    body = {"owner": "w", "host": "compute-8", "kinds": ["nothing"], "lease_seconds": 60}
    assert live.post("/tasks/claim", body, credential=wrong).json() == UNAUTHORIZED
    assert live.post("/tasks/claim", body, credential=good).status_code == 200
    assert credentials.delete_one(live.cloud.db, cred_id)
    r = live.post("/tasks/claim", body, credential=good)
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)


def test_unknown_routes_and_methods_with_a_credential(live: Live) -> None:
    r = httpx.get(live.url + "/internal/v1/tasks/claim",
                  headers={"Authorization": f"Bearer {live.credential}"})
    assert (r.status_code, r.json()) == (405, {"error": {
        "code": 405, "title": "Method Not Allowed",
        "message": "The method is not allowed for the requested URL."}})
    r = httpx.get(live.url + "/internal/v1/tasks",
                  headers={"Authorization": f"Bearer {live.credential}"})
    assert (r.status_code, r.json()) == (404, {"error": {
        "code": 404, "title": "Not Found", "message": "The resource could not be found."}})


# ------------------------------------------------------------------ what an agent may touch


def claim_body(live: Live, kinds: list[str], **kw: Any) -> dict[str, Any]:
    return {"owner": "w1", "host": live.host, "kinds": kinds, "lease_seconds": 60, **kw}


def test_claim_report_and_fencing_over_http(live: Live) -> None:
    mine = live.enqueue("http-a", {"n": 1}, host=live.host)
    theirs = live.enqueue("http-a", {"n": 2}, host="compute-9")
    r = live.post("/tasks/claim", claim_body(live, ["http-a"]))
    assert r.status_code == 200
    task = r.json()["task"]
    assert 0 <= task.pop("waited") < 5  # seconds the long poll waited before claiming
    assert task == {"id": mine, "kind": "http-a", "claim_token": 1, "owner": "compute-7/w1",
                    "attempts": 1, "max_attempts": 3, "payload": {"n": 1},
                    "resource_key": None, "target_host": "compute-7"}
    # another host's task is not offered, and a claim for another host is refused
    assert live.post("/tasks/claim", claim_body(live, ["http-a"])).json() == {"task": None}
    r = live.post("/tasks/claim", claim_body(live, ["http-a"], host="compute-9"))
    assert (r.status_code, r.json()) == (403, {"error": {
        "code": 403, "title": "Forbidden",
        "message": "This credential is for host compute-7, not compute-9."}})
    held = {"owner": task["owner"], "claim_token": 1}
    r = live.post(f"/tasks/{mine}/heartbeat", {**held, "lease_seconds": 60})
    assert (r.status_code, r.json()) == (200, {"cancel_requested": False})
    # a stale token is refused with 409 and changes nothing
    r = live.post(f"/tasks/{mine}/complete", {**held, "claim_token": 7, "result": {"x": 1}})
    assert (r.status_code, r.json()) == (409, {"error": {
        "code": 409, "title": "Conflict",
        "message": f"Task {mine} is not held under this claim token."}})
    # so is an owner of another host
    r = live.post(f"/tasks/{mine}/complete", {**held, "owner": "compute-9/w1", "result": None})
    assert (r.status_code, r.json()["error"]["message"]) == (
        403, "This task is not held by an agent of this host.")
    assert live.task(mine).state == RUNNING
    r = live.post(f"/tasks/{mine}/complete", {**held, "result": {"booted": True}})
    assert (r.status_code, r.json()) == (200, {"recorded": True})
    done = live.task(mine)
    assert (done.state, done.result) == (SUCCEEDED, {"booted": True})
    assert live.task(theirs).state == QUEUED


@pytest.mark.parametrize(("body", "message"), [
    ({"owner": "w1", "kinds": ["k"], "lease_seconds": 60}, None),
    ({"owner": "", "kinds": ["k"], "lease_seconds": 60},
     "'owner' must be a string of 1 to 255 characters."),
    ({"owner": "w1", "kinds": [], "lease_seconds": 60},
     "'kinds' must be a list of 1 to 256 task kinds."),
    ({"owner": "w1", "kinds": ["k" * 65], "lease_seconds": 60},
     "'kinds' must be a list of 1 to 256 task kinds."),
    ({"owner": "w1", "kinds": ["k"], "lease_seconds": "60"},
     "'lease_seconds' must be a number from 1 to 86400."),
    ({"owner": "w1", "kinds": ["k"], "lease_seconds": 60, "wait": -1},
     "'wait' must be a number from 0 to 3600."),
    ({"owner": "w" * 250, "kinds": ["k"], "lease_seconds": 60},
     "'owner' is too long for host compute-7."),
])
def test_bad_claims_get_400(live: Live, body: dict[str, Any], message: str | None) -> None:
    if message is None:  # no host: it is required (and must be the credential's)
        r = live.post("/tasks/claim", body)
        assert (r.status_code, r.json()["error"]["message"]) == (
            400, "'host' must be a string of 1 to 255 characters.")
        return
    r = live.post("/tasks/claim", {**body, "host": live.host})
    assert (r.status_code, r.json()) == (400, {"error": {
        "code": 400, "title": "Bad Request", "message": message}})


def test_bad_bodies_get_400_and_huge_ones_413(live: Live) -> None:
    headers = {"Authorization": f"Bearer {live.credential}",
               "Content-Type": "application/json"}
    url = live.url + "/internal/v1/tasks/claim"
    r = httpx.post(url, content=b"{not json", headers=headers)
    assert (r.status_code, r.json()["error"]["message"]) == (
        400, "The request body is not valid JSON.")
    r = httpx.post(url, content=b"[1, 2]", headers=headers)
    assert (r.status_code, r.json()["error"]["message"]) == (
        400, "The request body must be a JSON object.")
    r = httpx.post(url, content=b"{" + b" " * (1 << 20) + b"}", headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (413, 413)
    r = live.post("/tasks/some-id/complete", {"owner": "compute-7/w", "claim_token": "1"})
    assert (r.status_code, r.json()["error"]["message"]) == (
        400, "'claim_token' must be a positive integer.")


def test_service_heartbeat_over_http(live: Live) -> None:
    r = httpx.put(live.url + "/internal/v1/services/onestack-compute",
                  json={"host": live.host, "agent_type": "compute",
                        "configuration": {"vcpus": 8}, "started": True},
                  headers={"Authorization": f"Bearer {live.credential}"})
    assert r.status_code == 204, r.text
    svc = next(s for s in live.cloud.hosts.services(60) if s.host == live.host
               and s.binary == "onestack-compute")
    assert svc.alive and svc.configuration == {"vcpus": 8} and svc.agent_type == "compute"
    r = httpx.put(live.url + "/internal/v1/services/onestack-compute",
                  json={"host": "compute-9"},
                  headers={"Authorization": f"Bearer {live.credential}"})
    assert r.status_code == 403


def test_the_cloud_heartbeats_its_own_host(live: Live) -> None:
    svc = live.cloud.services["tasks"]
    deadline = time.monotonic() + 10
    while (svc.host_name, "onestack-api") not in {
            (s.host, s.binary) for s in live.cloud.hosts.services(60) if s.alive}:
        assert time.monotonic() < deadline, "the cloud did not report its host"
        time.sleep(0.05)


# ------------------------------------------------------------------ long polls


def test_a_long_poll_returns_as_soon_as_a_task_is_enqueued(live: Live) -> None:
    def later() -> None:
        time.sleep(0.5)
        live.enqueue("http-long", {}, host=live.host)

    threading.Thread(target=later).start()
    start = time.monotonic()
    r = live.post("/tasks/claim", claim_body(live, ["http-long"], wait=30))
    elapsed = time.monotonic() - start
    assert r.status_code == 200 and r.json()["task"]["kind"] == "http-long"
    assert 0.4 < elapsed < 3


def test_a_long_poll_is_capped_and_can_be_interrupted(live: Live) -> None:
    start = time.monotonic()
    r = live.post("/tasks/claim", claim_body(live, ["http-never"], wait=30))
    assert r.json() == {"task": None}
    assert 1.8 < time.monotonic() - start < 5  # the server's long_poll_seconds (2)

    def interrupt() -> None:
        time.sleep(0.4)
        assert live.post("/claims/interrupt", {"owner": "w1"}).status_code == 204

    threading.Thread(target=interrupt).start()
    start = time.monotonic()
    assert live.post("/tasks/claim", claim_body(live, ["http-never"], wait=30)).json() == {
        "task": None}
    assert time.monotonic() - start < 3


# ------------------------------------------------------------------ workers over HTTP


def run(live: Live, handlers: dict[str, Any], check: Any, **kw: Any) -> None:
    async def main() -> None:
        broker = HttpBroker(live.url, live.credential)
        worker = Worker(broker, live.host, handlers, **{"poll_interval": 5, **kw})
        await worker.start()
        try:
            deadline = time.monotonic() + 20
            while not await asyncio.to_thread(check):
                assert time.monotonic() < deadline, "condition not reached"
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
            await broker.close()

    asyncio.run(main())


def test_a_worker_over_http_runs_tasks_and_reports_outcomes(live: Live) -> None:
    live.cloud.tasks.kinds.register("http-flaky", KindRule(backoff_base=0.1))

    async def boot(ctx: TaskContext) -> dict[str, Any]:
        await ctx.progress({"step": "spawning"})
        return {"booted": ctx.payload["n"]}

    def broken(ctx: TaskContext) -> None:
        ctx.check()
        raise TaskFailed("no such image")

    async def flaky(ctx: TaskContext) -> dict[str, int]:
        if ctx.attempt < 2:
            raise OSError("transient")
        return {"attempt": ctx.attempt}

    ids = [live.enqueue("http-boot", {"n": i}, host=live.host) for i in range(3)]
    ids.append(live.enqueue("http-broken", {}))
    ids.append(live.enqueue("http-flaky", {}, host=live.host))
    run(live, {"http-boot": boot, "http-broken": broken, "http-flaky": flaky},
        lambda: all(live.task(i).done for i in ids), concurrency=2)
    tasks = [live.task(i) for i in ids]
    assert [t.state for t in tasks] == [SUCCEEDED] * 3 + [FAILED, SUCCEEDED]
    assert [t.result for t in tasks[:3]] == [{"booted": i} for i in range(3)]
    assert tasks[0].progress == {"step": "spawning"}
    assert tasks[3].reason == "no such image"
    assert (tasks[4].result, tasks[4].error) == ({"attempt": 2}, "OSError: transient")
    assert tasks[0].lease_owner is None


def test_cancel_reaches_a_remote_handler(live: Live) -> None:
    started = threading.Event()

    async def long(ctx: TaskContext) -> None:
        started.set()
        await asyncio.sleep(60)

    task_id = live.enqueue("http-cancel", {}, host=live.host)

    def cancel_once_started() -> bool:
        if started.is_set():
            live.cloud.tasks.cancel(task_id, "Deleted while building.")
            return live.task(task_id).state == CANCELLED
        return False

    run(live, {"http-cancel": long}, cancel_once_started, lease_seconds=3,
        heartbeat_interval=0.1)
    assert live.task(task_id).reason == "Deleted while building."


def test_a_remote_holder_whose_lease_was_taken_is_stopped(live: Live) -> None:
    started = threading.Event()
    outcome: dict[str, str] = {}

    def steps(ctx: TaskContext) -> None:
        started.set()
        while True:
            try:
                ctx.check()
            except TaskCancelled as exc:
                outcome["stopped"] = str(exc)
                raise
            time.sleep(0.05)

    task_id = live.enqueue("http-lost", {}, host=live.host, max_attempts=5)

    def steal() -> bool:
        if started.is_set() and "thief" not in outcome:
            live.cloud.tasks.clock.advance(1000)
            thief = live.cloud.tasks.claim("thief", live.host, ["http-lost"], 1e6)
            live.cloud.tasks.clock.advance(-1000)
            if thief is not None:
                outcome["thief"] = thief.lease_owner or ""
        return "stopped" in outcome

    run(live, {"http-lost": steps}, steal, lease_seconds=3, heartbeat_interval=0.1)
    # told by a refused heartbeat - or, on a busy machine, by its own deadline
    # when no heartbeat got through in time: stopped either way
    assert outcome["stopped"] in (LEASE_LOST, LEASE_RAN_OUT)
    assert live.task(task_id).lease_owner == "thief"


def test_an_agent_cannot_use_a_fenced_database_write(live: Live) -> None:
    broker = HttpBroker(live.url, live.credential)
    with pytest.raises(RuntimeError, match="an agent has no database"):
        broker.fenced(None)  # type: ignore[arg-type]
    asyncio.run(broker.close())


def test_a_refused_credential_stops_the_worker(live: Live) -> None:
    async def main() -> BaseException | None:
        broker = HttpBroker(live.url, "0123456789abcdef0123456789abcdef." + "x" * 43)
        worker = Worker(broker, live.host, {"anything": lambda ctx: None}, poll_interval=1)
        await worker.start()
        await asyncio.wait_for(worker.wait_stopped(), 10)
        await broker.close()
        return worker.fatal

    fatal = asyncio.run(main())
    assert isinstance(fatal, BrokerError) and fatal.status == 401


def test_lease_lost_is_raised_for_a_stale_heartbeat(live: Live) -> None:
    task_id = live.enqueue("http-stale", {}, host=live.host)

    async def main() -> None:
        broker = HttpBroker(live.url, live.credential)
        try:
            claim = await broker.claim("w9", live.host, ["http-stale"], 60, 0)
            assert claim is not None and claim.id == task_id
            assert await broker.heartbeat(claim, 60) is False
            assert await broker.complete(claim, {"ok": 1})
            with pytest.raises(LeaseLost):
                await broker.heartbeat(claim, 60)
            assert await broker.fail(claim, "late", None) is False
        finally:
            await broker.close()

    asyncio.run(main())
    assert json.dumps(live.task(task_id).result) == '{"ok": 1}'


def test_kinds_kept_to_the_api_are_not_handed_to_agents(live: Live) -> None:
    live.cloud.tasks.kinds.register("http-local-only", KindRule(agents=False))
    task_id = live.enqueue("http-local-only", {"secret": "payload"})
    r = live.post("/tasks/claim", claim_body(live, ["http-a", "http-local-only"]))
    assert (r.status_code, r.json()) == (403, {"error": {
        "code": 403, "title": "Forbidden",
        "message": "Tasks of kind http-local-only are not run by agents on other hosts."}})
    assert live.task(task_id).state == QUEUED


def test_a_result_that_cannot_be_recorded_fails_the_task(live: Live) -> None:
    async def odd(ctx: TaskContext) -> Any:
        return {"when": object()} if ctx.payload["json"] else 42

    ids = [live.enqueue("http-odd", {"json": True}, host=live.host),
           live.enqueue("http-odd", {"json": False}, host=live.host)]
    run(live, {"http-odd": odd}, lambda: all(live.task(i).done for i in ids))
    reasons = [live.task(i).reason for i in ids]
    assert reasons[0].startswith("The handler's result is not JSON: ")
    assert reasons[1] == "The handler returned a value of type int, not a mapping or None."
