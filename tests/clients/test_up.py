"""`onestack up`: first start bootstraps and writes clouds.yaml, a second start on
the same state directory is fast and keeps everything, SIGTERM / SIGINT shut down
cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import TEST_ENV, free_port

pytestmark = pytest.mark.clients


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    log: Path
    started_in: float  # seconds from process start to the first answered request
    cpu_to_start: float  # CPU seconds the process used until then (load-independent)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"onestack up did not stop within {timeout} s") from None
        return code, time.monotonic() - t0


def up(state_dir: Path, port: int | None = None, extra_env: dict[str, str] | None = None) -> Up:
    port = port or free_port()
    log = state_dir.parent / f"up-{port}-{time.monotonic_ns()}.log"
    env = dict(os.environ, **TEST_ENV, **(extra_env or {}))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onestack.cli", "up", "--port", str(port),
         "--state-dir", str(state_dir)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    request = b"GET /identity/v3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while time.monotonic() - t0 < 60:
        if proc.poll() is not None:
            raise AssertionError(f"onestack up exited: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(request)
                if s.recv(32).startswith(b"HTTP/1.1 200"):
                    return Up(proc, f"http://127.0.0.1:{port}", state_dir, log,
                              time.monotonic() - t0, cpu_seconds(proc.pid))
        except OSError:
            time.sleep(0.005)
    proc.kill()
    proc.wait()
    raise AssertionError("onestack up did not answer within 60 s")


def assert_clean_exit(cloud: Up, code: int, sig: int) -> None:
    """Graceful: the application's shutdown ran, no traceback, exit status 0."""
    out = cloud.output()
    assert code == 0, f"exit code {code} after {signal.Signals(sig).name}: {out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    if "started server process" in out.lower():  # uvicorn logs at info level
        assert "shutdown complete" in out.lower(), out[-2000:]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def password_token(url: str, auth: dict[str, Any]) -> httpx.Response:
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth.get("project_domain_name", "Default")}}},
    }}
    return httpx.post(url + "/identity/v3/auth/tokens", json=body)


def clouds(state_dir: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((state_dir / "clouds.yaml").read_text())["clouds"])


def test_first_start_bootstraps_and_writes_clouds_yaml(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cloud = up(state)
    try:
        conf = clouds(state)
        assert set(conf) >= {"onestack-admin", "onestack"}
        admin, demo = conf["onestack-admin"], conf["onestack"]
        for c in (admin, demo):
            assert str(c["auth"]["auth_url"]).startswith(cloud.url + "/identity")
            assert c.get("region_name") == "RegionOne"
            assert str(c.get("identity_api_version", "3")) == "3"
        assert demo["auth"]["username"] == "demo"
        assert demo["auth"]["project_name"] == "demo"
        assert admin["auth"]["username"] == "admin"
        assert admin["auth"]["project_name"] == "admin"
        assert admin["auth"]["password"] != demo["auth"]["password"]

        r = password_token(cloud.url, admin["auth"])
        assert r.status_code == 201, r.text
        token = r.headers["X-Subject-Token"]
        body = r.json()["token"]
        assert {role["name"] for role in body["roles"]} >= {"admin", "member", "reader"}
        assert "identity" in {e["type"] for e in body["catalog"]}
        r = password_token(cloud.url, demo["auth"])
        assert r.status_code == 201, r.text
        assert {role["name"] for role in r.json()["token"]["roles"]} >= {"member", "reader"}
        assert "admin" not in {role["name"] for role in r.json()["token"]["roles"]}

        headers = {"X-Auth-Token": token}
        regions = httpx.get(cloud.url + "/identity/v3/regions", headers=headers).json()
        assert "RegionOne" in {reg["id"] for reg in regions["regions"]}
        roles = httpx.get(cloud.url + "/identity/v3/roles", headers=headers).json()["roles"]
        by_name = {role["name"]: role["id"] for role in roles}
        # keystone-manage bootstrap's chain: admin > manager > member > reader
        for prior, implied in (("admin", "manager"), ("manager", "member"), ("member", "reader")):
            implies = httpx.get(cloud.url + f"/identity/v3/roles/{by_name[prior]}/implies",
                                headers=headers).json()["role_inference"]
            assert [r["name"] for r in implies["implies"]] == [implied]

        # the state (token keys, password hashes, passwords in clouds.yaml) is the owner's only
        assert state.stat().st_mode & 0o077 == 0, oct(state.stat().st_mode)
        for name in ("clouds.yaml", "onestack.db"):
            mode = (state / name).stat().st_mode
            assert mode & 0o077 == 0, f"{name}: {oct(mode)}"

        # it tells the user how to use it
        deadline = time.monotonic() + 5
        while "clouds.yaml" not in cloud.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert str(state / "clouds.yaml") in cloud.output()
    finally:
        code, took = cloud.stop()
    assert_clean_exit(cloud, code, signal.SIGTERM)


def test_second_start_is_fast_and_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    first = up(state, port)
    try:
        admin = clouds(state)["onestack-admin"]["auth"]
        token = password_token(first.url, admin).headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token}
        r = httpx.post(first.url + "/identity/v3/projects", headers=headers,
                       json={"project": {"name": "kept-project", "description": "still here"}})
        assert r.status_code == 201, r.text
        project_id = r.json()["project"]["id"]
        r = httpx.post(first.url + "/identity/v3/users", headers=headers,
                       json={"user": {"name": "kept-user", "password": "kept-password",
                                      "default_project_id": project_id}})
        assert r.status_code == 201, r.text
        user_id = r.json()["user"]["id"]
        roles = httpx.get(first.url + "/identity/v3/roles", params={"name": "member"},
                          headers=headers).json()["roles"]
        r = httpx.put(first.url + f"/identity/v3/projects/{project_id}/users/{user_id}"
                      f"/roles/{roles[0]['id']}", headers=headers)
        assert r.status_code == 204, r.text
        roles_before = httpx.get(first.url + "/identity/v3/roles", headers=headers).json()
        yaml_before = (state / "clouds.yaml").read_text()
    finally:
        code, _ = first.stop()
    assert_clean_exit(first, code, signal.SIGTERM)

    second = up(state, port)
    try:
        assert (state / "clouds.yaml").read_text() == yaml_before
        # a token issued before the restart is still valid: the keys were kept
        r = httpx.get(second.url + "/identity/v3/auth/tokens",
                      headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert r.status_code == 200, r.text
        r = httpx.get(second.url + f"/identity/v3/projects/{project_id}", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["project"]["description"] == "still here"
        r = httpx.get(second.url + f"/identity/v3/users/{user_id}", headers=headers)
        assert r.status_code == 200, r.text
        # the bootstrap did not run twice, and the passwords still work
        roles_after = httpx.get(second.url + "/identity/v3/roles", headers=headers).json()
        assert sorted(r["id"] for r in roles_after["roles"]) == sorted(
            r["id"] for r in roles_before["roles"])
        assert password_token(second.url, admin).status_code == 201
        user = {"username": "kept-user", "password": "kept-password",
                "project_name": "kept-project"}
        assert password_token(second.url, user).status_code == 201
    finally:
        code, _ = second.stop()
    assert_clean_exit(second, code, signal.SIGTERM)

    # "well under 2 s". The machine may be shared: the CPU the start needs is checked
    # always, the wall time (best of two starts) when the machine is not overloaded.
    third = up(state, port)
    code, _ = third.stop()
    assert_clean_exit(third, code, signal.SIGTERM)
    cpu = min(second.cpu_to_start, third.cpu_to_start)
    assert cpu < 1.5, f"a warm start used {cpu:.2f} s of CPU"
    best = min(second.started_in, third.started_in)
    if os.getloadavg()[0] < (os.cpu_count() or 1):
        assert best < 2.0, (
            f"warm starts took {second.started_in:.2f} s and {third.started_in:.2f} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly(tmp_path: Path, sig: int) -> None:
    state = tmp_path / "state"
    cloud = up(state)
    admin = clouds(state)["onestack-admin"]["auth"]
    assert password_token(cloud.url, admin).status_code == 201
    # a client with an open keep-alive connection does not hold the shutdown up
    client = httpx.Client()
    assert client.get(cloud.url + "/identity/v3").status_code == 200
    try:
        code, took = cloud.stop(sig)
    finally:
        client.close()
    assert_clean_exit(cloud, code, sig)
    assert took < 10
    port = int(cloud.url.rsplit(":", 1)[1])
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


# --- what `onestack up` refuses, before it creates anything -------------------------------


def run_up(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onestack.cli", "up", *args], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, **TEST_ENV, **(env or {})))


# The running cloud's own database: it writes there by itself at any moment
# (heartbeats of the API and of the compute agent, which reports right after start).
LIVE_DB = ("onestack.db", "onestack.db-wal", "onestack.db-shm")


def snapshot(state: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int, bytes]]:
    """Every file under the state directory: size, mtime and (for small files) content,
    except ``skip`` and the object store's devices (its periodic jobs write there by
    themselves; the catalog and keys are checked through the API and here)."""
    out = {}
    for path in sorted(state.rglob("*")):
        rel = path.relative_to(state)
        if str(rel) in skip or rel.parts[0] == "objectstore":
            continue
        if path.is_file():
            st = path.stat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns,
                                                 path.read_bytes() if st.st_size < 65536 else b"")
    return out


def test_a_second_up_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = up(state)
    try:
        # (the refused process stops at the state directory's lock, before it
        # imports the cloud: it cannot open the database)
        before = snapshot(state, skip=LIVE_DB)
        other_port = free_port()
        r = run_up("--port", str(other_port), "--state-dir", str(state))
        assert r.returncode == 1
        assert r.stdout == ""
        assert r.stderr == (f"onestack up: the state directory {state} is in use by process {first.proc.pid} "
                            "(another onestack up); stop it first, or give this one its own --state-dir\n")
        assert snapshot(state, skip=LIVE_DB) == before
        with socket.socket() as s:  # the refused process did not keep the other port
            s.bind(("127.0.0.1", other_port))
        # the first cloud still hands out a catalog pointing at itself
        r2 = password_token(first.url, clouds(state)["onestack-admin"]["auth"])
        catalog = r2.json()["token"]["catalog"]
        urls = {e["url"] for s in catalog if s["type"] != "s3" for e in s["endpoints"]}
        assert urls and all(u.startswith(first.url + "/") for u in urls), urls
        s3_port = int(first.url.rsplit(":", 1)[1]) + 1  # S3 has a listener of its own, the next port
        assert {e["url"] for s in catalog if s["type"] == "s3" for e in s["endpoints"]} == {
            f"http://127.0.0.1:{s3_port}"}
    finally:
        code, _ = first.stop()
    assert_clean_exit(first, code, signal.SIGTERM)


def test_the_lock_goes_with_the_process_however_it_ends(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    first = up(state, port)
    first.proc.kill()  # no clean-up ran: the kernel drops the lock
    first.proc.wait()
    second = up(state, port)
    code, _ = second.stop()
    assert_clean_exit(second, code, signal.SIGTERM)


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    (["--port", "99999"], {}, 2,
     "onestack up: argument --port: 99999 is not a TCP port number (1-65535) (see onestack up --help)"),
    (["--port", "0"], {}, 2,
     "onestack up: argument --port: 0 is not a TCP port number (1-65535) (see onestack up --help)"),
    (["--port", "http"], {}, 2,
     "onestack up: argument --port: http is not a TCP port number (1-65535) (see onestack up --help)"),
    ([], {"ONESTACK_PORT": "70000"}, 1, "onestack up: port 70000 is not a TCP port number (1-65535)"),
    ([], {"ONESTACK_PORT": "many"}, 1, "onestack up: ONESTACK_PORT='many': not an integer"),
])
def test_a_bad_address_is_one_line_and_creates_nothing(
        tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str) -> None:
    state = tmp_path / "state"
    r = run_up(*args, "--state-dir", str(state), env=env)
    assert (r.returncode, r.stdout, r.stderr) == (code, "", message + "\n")
    assert not state.exists()


def test_a_busy_port_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_up("--port", str(port), "--state-dir", str(state))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (f"onestack up: 127.0.0.1:{port} is already in use (another onestack or another "
                        "program); choose another with --port\n")
    assert not state.exists()


def test_the_banner_commands_work_as_printed(tmp_path: Path) -> None:
    """The start banner names this process, how to stop it, and commands that work when
    pasted into the shell it was started from, here one whose PATH does not have the
    virtual environment (so the banner must name the client's full path)."""
    state = tmp_path / "state"
    shell_path = "/usr/bin:/bin"
    cloud = up(state, extra_env={"PATH": shell_path})
    try:
        deadline = time.monotonic() + 5
        while "as the demo user" not in cloud.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        banner = cloud.output()[cloud.output().index("onestack is up at"):].splitlines()
        pid = cloud.proc.pid
        assert banner[0].startswith(f"onestack is up at {cloud.url} (")
        assert banner[1] == f"  state:    {state} (locked by this process, pid {pid})"
        types = {e["type"] for e in password_token(cloud.url, clouds(state)["onestack-admin"]["auth"])
                 .json()["token"]["catalog"]}
        assert banner[2] == f"  services: {', '.join(sorted(types))}"
        assert banner[3] == f"  stop it:  Ctrl-C here, or kill {pid}"
        assert banner[4] == f"  use it:   export OS_CLIENT_CONFIG_FILE={state / 'clouds.yaml'}"
        commands = [line.strip().split("   # ")[0] for line in banner[5:7]]
        client = str(Path(sys.executable).parent / "openstack")
        assert commands[0] == f"{client} --os-cloud onestack-admin catalog list"
        assert commands[1] == f"{client} --os-cloud onestack image list"
        # the test clouds run without a data plane (TEST_ENV), and the banner says so
        assert banner[7] == '  network:  data plane off ([network] dataplane = "off")'
        shell_env = {"PATH": shell_path, "HOME": str(tmp_path)}
        script = f"{banner[4].split('use it:')[1].strip()}\n" + "\n".join(commands)
        r = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, env=shell_env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "identity" in r.stdout and "image" in r.stdout
    finally:
        code, _ = cloud.stop()
    assert_clean_exit(cloud, code, signal.SIGTERM)
