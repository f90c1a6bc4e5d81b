"""Several `onestack up` processes on one PostgreSQL database (scale-out).

* Two processes started at the same moment on an empty database: one creates
  the schema and bootstraps, the other waits for it (the schema lock) and
  joins; nothing is made twice.
* A process that restarts while the other streams an image upload leaves
  that upload alone (its owner heartbeats), and the upload completes.
* Two processes serving 200 concurrent mixed writes, many of them to the same
  rows from both processes: no 5xx, no deadlock or serialization error
  reaching a client, and no lost update (every tag, property, extra attribute,
  grant and member written by a concurrent request is there at the end).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from onestack.common.masterkey import new_key_text
from tests.conftest import TEST_ENV, free_port

pytestmark = pytest.mark.clients


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    url: str
    state: Path
    log: Path
    s3_url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def launch(state: Path, database_url: str, master_key: str, public_url: str | None = None) -> Node:
    """Start a node: nodes on one database share its URL and the master key."""
    port, s3_port = free_port(), free_port()
    state.parent.mkdir(parents=True, exist_ok=True)
    log = state.parent / f"{state.name}-{port}.log"
    env = dict(os.environ, **TEST_ENV, ONESTACK_DATABASE_URL=database_url, ONESTACK_MASTER_KEY=master_key)
    cmd = [sys.executable, "-m", "onestack.cli", "up", "--port", str(port), "--s3-port", str(s3_port),
           "--state-dir", str(state)]
    if public_url:
        cmd += ["--public-url", public_url]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Node(proc, f"http://127.0.0.1:{port}", state, log, f"http://127.0.0.1:{s3_port}")


def wait_up(node: Node, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError(f"onestack up exited: {node.output()[-3000:]}")
        try:
            if httpx.get(node.url + "/identity/v3", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"onestack up did not answer within {timeout} s: {node.output()[-2000:]}")


def stop(*nodes: Node) -> None:
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.terminate()
    for node in nodes:
        try:
            node.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()


def admin_token(url: str, clouds_yaml: Path) -> str:
    auth = yaml.safe_load(clouds_yaml.read_text())["clouds"]["onestack-admin"]["auth"]
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}},
    }}
    r = httpx.post(url + "/identity/v3/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def test_two_nodes_started_together_on_an_empty_database(tmp_path: Path, pg_server: Any) -> None:
    url, key = pg_server.new_database(), new_key_text()
    a = launch(tmp_path / "a" / "state", url, key)
    b = launch(tmp_path / "b" / "state", url, key)
    try:
        wait_up(a)
        wait_up(b)
        markers = [json.loads((n.state / "bootstrap.json").read_text()) for n in (a, b)]
        assert markers[0]["cloud"] == markers[1]["cloud"]
        assert sorted(m["bootstrapped_here"] for m in markers) == [False, True]
        owner, member = (a, b) if markers[0]["bootstrapped_here"] else (b, a)
        assert (owner.state / "clouds.yaml").exists() and not (member.state / "clouds.yaml").exists()
        token = admin_token(owner.url, owner.state / "clouds.yaml")
        for node in (a, b):  # the same keys, the same cloud, through either process
            r = httpx.get(node.url + "/identity/v3/auth/tokens",
                          headers={"X-Auth-Token": token, "X-Subject-Token": token})
            assert r.status_code == 200, r.text
            catalog = r.json()["token"]["catalog"]
            assert sorted(s["type"] for s in catalog) == [
                "compute", "identity", "image", "network", "object-store", "s3"]  # once each
            for service in catalog:
                assert sorted(e["interface"] for e in service["endpoints"]) == ["admin", "internal", "public"]
                at = owner.s3_url if service["type"] == "s3" else owner.url  # S3: a port of its own
                assert {e["url"].split("/")[2] for e in service["endpoints"]} == {at.split("/")[2]}
            r = httpx.get(node.url + "/identity/v3/users", params={"name": "admin"},
                          headers={"X-Auth-Token": token})
            assert len(r.json()["users"]) == 1
            # the all-in-one networks were made once, by the node that bootstrapped
            r = httpx.get(node.url + "/networking/v2.0/networks", headers={"X-Auth-Token": token})
            assert sorted(n["name"] for n in r.json()["networks"]) == ["private", "public"]
            r = httpx.get(node.url + "/networking/v2.0/routers", headers={"X-Auth-Token": token})
            assert [x["name"] for x in r.json()["routers"]] == ["router1"]
        for node in (a, b):
            out = node.output()
            assert "Traceback" not in out and "duplicate key" not in out, out[-3000:]
    finally:
        stop(a, b)


# --- 200 concurrent mixed writes through two processes --------------------------------


@dataclass
class Call:
    kind: str
    node: int
    status: int
    body: str


class Mix:
    """The shared targets, the requests, and what each answered."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.urls = urls
        self.headers = {"X-Auth-Token": token}
        self.clients = [httpx.Client(base_url=u, headers=self.headers, timeout=120,
                                     limits=httpx.Limits(max_connections=250)) for u in urls]
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.tag = uuid.uuid4().hex[:6]

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def ok(self, r: httpx.Response, *codes: int) -> dict[str, Any]:
        assert r.status_code in codes, (r.request.method, r.request.url, r.status_code, r.text)
        return r.json() if r.content else {}

    def setup(self) -> dict[str, Any]:
        c = self.clients[0]
        idn = "/identity/v3"
        made: dict[str, Any] = {}
        made["project"] = self.ok(c.post(idn + "/projects", json={"project": {"name": f"mx-{self.tag}"}}),
                                  201)["project"]["id"]
        made["doomed"] = [self.ok(c.post(idn + "/projects", json={"project": {"name": f"mx-{self.tag}-d{i}"}}),
                                  201)["project"]["id"] for i in range(10)]
        made["users"] = [self.ok(c.post(idn + "/users", json={"user": {"name": f"mx-{self.tag}-u{i}"}}),
                                 201)["user"]["id"] for i in range(20)]
        made["member"] = self.ok(c.get(idn + "/roles", params={"name": "member"}), 200)["roles"][0]["id"]
        made["image"] = self.ok(c.post("/image/v2/images", json={
            "name": f"mx-{self.tag}", "visibility": "shared", "disk_format": "raw",
            "container_format": "bare"}), 201)["id"]
        return made

    def requests(self, made: dict[str, Any]) -> list[tuple[str, Callable[[httpx.Client], httpx.Response]]]:
        idn, img, t = "/identity/v3", f"/image/v2/images/{made['image']}", self.tag
        project, member = made["project"], made["member"]
        patch = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
        out: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = []
        for i in range(40):  # tags of one project, from both processes
            out.append(("project-tag", lambda c, i=i: c.put(f"{idn}/projects/{project}/tags/t{i}")))
        for i in range(30):  # properties of one image (its JSON column)
            out.append(("image-property", lambda c, i=i: c.patch(
                img, headers=patch, content=json.dumps([{"op": "add", "path": f"/p{i}", "value": f"v{i}"}]))))
        for i in range(20):  # tags of the same image (the same row)
            out.append(("image-tag", lambda c, i=i: c.put(f"{img}/tags/it{i}")))
        for i in range(20):  # extra attributes of one project (read-modify-write of its JSON)
            out.append(("project-extra", lambda c, i=i: c.patch(
                f"{idn}/projects/{project}", json={"project": {f"x{i}": str(i)}})))
        for i in range(20):  # grants on one project, and each one twice (from both processes)
            user = made["users"][i]
            out.append(("grant", lambda c, u=user: c.put(f"{idn}/projects/{project}/users/{u}/roles/{member}")))
            if i < 10:
                out.append(("grant", lambda c, u=user: c.put(f"{idn}/projects/{project}/users/{u}/roles/{member}")))
        for i in range(20):  # new projects
            out.append(("project-create", lambda c, i=i: c.post(
                f"{idn}/projects", json={"project": {"name": f"mx-{t}-n{i}"}})))
        for i, doomed in enumerate(made["doomed"]):  # deletes, the first project three times over
            kind = "project-delete-same" if i == 0 else "project-delete"
            out += [(kind, lambda c, d=doomed: c.delete(f"{idn}/projects/{d}"))] * (3 if i == 0 else 1)
        for i in range(10):  # members of the shared image
            out.append(("image-member", lambda c, i=i: c.post(f"{img}/members", json={"member": f"tenant-{t}-{i}"})))
        for i in range(18):  # new images
            out.append(("image-create", lambda c, i=i: c.post("/image/v2/images", json={
                "name": f"mx-{t}-i{i}", "disk_format": "raw", "container_format": "bare"})))
        return out

    def fire(self, work: list[tuple[str, Callable[[httpx.Client], httpx.Response]]]) -> None:
        barrier = threading.Barrier(len(work))
        errors: list[BaseException] = []

        def one(i: int, kind: str, fn: Callable[[httpx.Client], httpx.Response]) -> None:
            node = i % 2
            try:
                barrier.wait(60)
                r = fn(self.clients[node])
                with self.lock:
                    self.calls.append(Call(kind, node, r.status_code, r.text[:500]))
            except BaseException as exc:  # reported below
                with self.lock:
                    errors.append(exc)

        threads = [threading.Thread(target=one, args=(i, k, f)) for i, (k, f) in enumerate(work)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        assert not errors, errors[:3]
        assert len(self.calls) == len(work)


EXPECTED = {
    "project-tag": {201}, "image-property": {200}, "image-tag": {204}, "project-extra": {200},
    "grant": {204}, "project-create": {201}, "project-delete": {204},
    "project-delete-same": {204, 404}, "image-member": {200}, "image-create": {201},
}


def test_two_nodes_keep_every_concurrent_write(tmp_path: Path, pg_server: Any) -> None:
    url, key = pg_server.new_database(), new_key_text()
    a = launch(tmp_path / "a" / "state", url, key)
    try:
        wait_up(a)
        b = launch(tmp_path / "b" / "state", url, key, public_url=a.url)
    except BaseException:
        stop(a)
        raise
    try:
        wait_up(b)
        mix = Mix([a.url, b.url], admin_token(a.url, a.state / "clouds.yaml"))
        try:
            made = mix.setup()
            work = mix.requests(made)
            assert len(work) == 200
            mix.fire(work)
            check(mix, made, a, b)
        finally:
            mix.close()
    finally:
        stop(a, b)


def check(mix: Mix, made: dict[str, Any], a: Node, b: Node) -> None:
    fivexx = [c for c in mix.calls if c.status >= 500]
    assert not fivexx, fivexx[:5]
    for c in mix.calls:
        assert c.status in EXPECTED[c.kind], c
        low = c.body.lower()
        assert "deadlock" not in low and "serializ" not in low and "lock" not in low, c
    same = sorted(c.status for c in mix.calls if c.kind == "project-delete-same")
    assert same == [204, 404, 404], same  # one delete, two "Could not find project"
    assert {c.node for c in mix.calls} == {0, 1}

    idn = "/identity/v3"
    for client in mix.clients:  # the same answers through either process
        tags = mix.ok(client.get(f"{idn}/projects/{made['project']}/tags"), 200)["tags"]
        assert sorted(tags) == sorted(f"t{i}" for i in range(40))
        project = mix.ok(client.get(f"{idn}/projects/{made['project']}"), 200)["project"]
        assert {k: project.get(k) for k in (f"x{i}" for i in range(20))} == {f"x{i}": str(i) for i in range(20)}
        image = mix.ok(client.get(f"/image/v2/images/{made['image']}"), 200)
        assert {f"p{i}": f"v{i}" for i in range(30)}.items() <= image.items()
        assert sorted(image["tags"]) == sorted(f"it{i}" for i in range(20))
        members = mix.ok(client.get(f"/image/v2/images/{made['image']}/members"), 200)["members"]
        assert sorted(m["member_id"] for m in members) == sorted(f"tenant-{mix.tag}-{i}" for i in range(10))
        listed = mix.ok(client.get(f"{idn}/role_assignments", params={"scope.project.id": made["project"]}),
                        200)["role_assignments"]
        assert sorted(x["user"]["id"] for x in listed) == sorted(made["users"])
        names = {p["name"] for p in mix.ok(client.get(f"{idn}/projects"), 200)["projects"]}
        assert {f"mx-{mix.tag}-n{i}" for i in range(20)} <= names
        assert not {f"mx-{mix.tag}-d{i}" for i in range(10)} & names
        images = mix.ok(client.get("/image/v2/images", params={"limit": 1000}), 200)["images"]
        assert {f"mx-{mix.tag}-i{i}" for i in range(18)} <= {i["name"] for i in images}
    for node in (a, b):
        out = node.output()
        assert "Traceback" not in out and "deadlock" not in out.lower(), out[-3000:]


# --- a replica that restarts leaves the other's upload in flight alone -----------------


def test_a_restarting_node_leaves_the_other_nodes_upload_alone(tmp_path: Path, pg_server: Any) -> None:
    """Node a streams an image upload (saving, owned by a's process); node b is
    restarted meanwhile and recovers interrupted uploads at start: it must leave
    a's alone (a heartbeats), and the upload completes."""
    url, key = pg_server.new_database(), new_key_text()
    a = launch(tmp_path / "a" / "state", url, key)
    wait_up(a)
    b = launch(tmp_path / "b" / "state", url, key)
    nodes = [a, b]
    try:
        wait_up(b)
        headers = {"X-Auth-Token": admin_token(a.url, a.state / "clouds.yaml")}
        r = httpx.post(a.url + "/image/v2/images", headers=headers,
                       json={"name": "in-flight", "disk_format": "raw", "container_format": "bare"})
        image = f"/image/v2/images/{r.json()['id']}"
        chunk = os.urandom(1 << 16)
        halfway, finish = threading.Event(), threading.Event()

        def body() -> Any:
            for _ in range(8):
                yield chunk
            halfway.set()
            finish.wait(120)
            for _ in range(8):
                yield chunk

        answer: list[httpx.Response] = []
        upload = threading.Thread(target=lambda: answer.append(httpx.put(
            a.url + image + "/file", content=body(), timeout=180,
            headers={**headers, "Content-Type": "application/octet-stream"})))
        upload.start()
        try:
            assert halfway.wait(60)
            deadline = time.monotonic() + 30
            while httpx.get(b.url + image, headers=headers).json()["status"] != "saving":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            stop(b)  # b restarts while a's upload is in flight
            b = launch(tmp_path / "b" / "state", url, key)
            nodes.append(b)
            wait_up(b)
            assert httpx.get(b.url + image, headers=headers).json()["status"] == "saving"
        finally:
            finish.set()
            upload.join(180)
        assert answer and answer[0].status_code == 204, answer[0].text if answer else "no answer"
        got = httpx.get(b.url + image, headers=headers).json()
        assert got["status"] == "active" and got["size"] == 16 * len(chunk), got
        assert got["checksum"] == hashlib.md5(chunk * 16).hexdigest()
    finally:
        stop(*nodes)
