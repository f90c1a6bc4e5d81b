"""The real `openstack` CLI and openstacksdk driving Compute on a running
onestack (its fake driver: the API, tasks, scheduler and agent are real)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from onestack.compute.virt.fake import _write_qcow2
from tests.clients.test_identity_cli import osc, osc_json, unique
from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def image(running_cloud: CloudInfo, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("guest") / "disk.qcow2"
    _write_qcow2(path, 1 << 30)
    name = unique("guest")
    osc(running_cloud, "image", "create", "--file", str(path), "--disk-format", "qcow2",
        "--container-format", "bare", "--public", name)
    return name


class Rest:
    """Cheap polling over HTTP (each `openstack` run costs seconds)."""

    def __init__(self, info: CloudInfo) -> None:
        auth = info.cloud("onestack")["auth"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
            "scope": {"project": {"name": auth["project_name"],
                                  "domain": {"name": auth.get("project_domain_name",
                                                              "Default")}}}}}
        r = httpx.post(info.url + "/identity/v3/auth/tokens", json=body, timeout=30)
        self.headers = {"X-Auth-Token": r.headers["X-Subject-Token"],
                        "OpenStack-API-Version": "compute 2.96"}
        self.url = info.url + "/compute/v2.1"

    def server(self, name: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/servers/detail", params={"name": f"^{name}$"},
                      headers=self.headers, timeout=30)
        (found,) = r.json()["servers"]
        return dict(found)

    def wait(self, name: str, wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            server = self.server(name)
            if server["status"] == wanted and server["OS-EXT-STS:task_state"] is None:
                return server
            assert time.monotonic() < deadline, f"{name} never became {wanted}"
            time.sleep(0.1)


def test_server_life_cycle_through_the_cli(running_cloud: CloudInfo, image: str,
                                           tmp_path: Path) -> None:
    info = running_cloud
    rest = Rest(info)
    key = unique("key")
    private = osc(info, "keypair", "create", key, cloud="onestack").stdout
    assert private.startswith("-----BEGIN")
    name = unique("vm")
    created = osc_json(info, "server", "create", "--image", image, "--flavor", "m1.nano",
                       "--nic", "none", "--key-name", key, "--property", "role=web", "--wait",
                       name, cloud="onestack")
    assert created["status"] == "ACTIVE" and created["key_name"] == key
    assert created["flavor"]["original_name"] == "m1.nano"
    listed = osc_json(info, "server", "list", "--long", cloud="onestack")
    row = [r for r in listed if r["Name"] == name][0]
    assert row["Status"] == "ACTIVE" and row["Power State"] == 1
    log = osc(info, "console", "log", "show", name, cloud="onestack").stdout
    assert f"{name} login:" in log

    osc(info, "server", "stop", name, cloud="onestack")
    rest.wait(name, "SHUTOFF")
    osc(info, "server", "start", name, cloud="onestack")
    rest.wait(name, "ACTIVE")
    osc(info, "server", "resize", "--flavor", "m1.micro", name, cloud="onestack")
    assert rest.wait(name, "VERIFY_RESIZE")["flavor"]["original_name"] == "m1.micro"
    osc(info, "server", "resize", "revert", name, cloud="onestack")
    assert rest.wait(name, "ACTIVE")["flavor"]["original_name"] == "m1.nano"

    snapshot = unique("snap")
    osc(info, "server", "image", "create", "--name", snapshot, "--wait", name, cloud="onestack")
    assert osc_json(info, "image", "show", snapshot, cloud="onestack")["status"] == "active"
    other = unique("from-snap")
    osc(info, "server", "create", "--image", snapshot, "--flavor", "m1.nano", "--nic", "none",
        other, cloud="onestack")
    rest.wait(other, "ACTIVE")

    osc(info, "server", "shelve", name, cloud="onestack")
    rest.wait(name, "SHELVED_OFFLOADED")
    osc(info, "server", "unshelve", name, cloud="onestack")
    rest.wait(name, "ACTIVE")

    url = osc_json(info, "console", "url", "show", "--serial", name, cloud="onestack")
    assert url["url"].startswith(info.url.replace("http://", "ws://", 1)
                                 + "/compute/console/serial?token=")
    # the URL as given opens a websocket to the guest's serial console on
    # the cloud's own listener (the fake guest replays its log, then echoes)
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    with connect(url["url"], subprotocols=[Subprotocol("binary")], open_timeout=30) as ws:
        assert ws.subprotocol == "binary"
        banner = b""
        while b"login:" not in banner:
            frame = ws.recv(timeout=30)
            assert isinstance(frame, bytes)
            banner += frame
        assert f"{name} login:".encode() in banner
        ws.send(b"root\r\n")
        assert ws.recv(timeout=30) == b"root\r\n"

    osc(info, "server", "delete", "--wait", name, other, cloud="onestack")
    names = [r["Name"] for r in osc_json(info, "server", "list", cloud="onestack")]
    assert name not in names and other not in names
    osc(info, "keypair", "delete", key, cloud="onestack")


def test_bad_requests_get_novas_errors_through_the_cli(running_cloud: CloudInfo,
                                                        image: str) -> None:
    info = running_cloud
    r = osc(info, "server", "create", "--image", image, "--flavor", "m1.nano", "--nic", "none",
            "--key-name", "no-such-key", unique("vm"), cloud="onestack", check=False)
    assert r.returncode != 0 and "400" in r.stderr and "Invalid key_name provided." in r.stderr
    r = osc(info, "server", "show", "no-such-server", cloud="onestack", check=False)
    assert r.returncode != 0 and "No Server found for no-such-server" in r.stderr


def test_admin_views_of_the_compute_host(running_cloud: CloudInfo) -> None:
    info = running_cloud
    (hyp,) = osc_json(info, "hypervisor", "list")
    assert hyp["State"] == "up" and hyp["Hypervisor Type"] == "QEMU"
    services = osc_json(info, "compute", "service", "list", "--service", "nova-compute")
    assert [s["State"] for s in services] == ["up"]
    zones = osc_json(info, "availability", "zone", "list", "--compute", cloud="onestack")
    assert zones == [{"Zone Name": "nova", "Zone Status": "available"}]
    flavors = {f["Name"] for f in osc_json(info, "flavor", "list")}
    assert {"m1.nano", "m1.micro", "m1.tiny", "m1.small", "m1.xlarge"} <= flavors
    group = osc_json(info, "server", "group", "create", "--policy", "soft-anti-affinity",
                     unique("grp"), cloud="onestack")
    assert group["policy"] == "soft-anti-affinity"
    osc(info, "server", "group", "delete", group["id"], cloud="onestack")


@pytest.fixture
def sdk(running_cloud: CloudInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(running_cloud.clouds_yaml))
    conn = openstack.connect(cloud="onestack")
    yield conn
    conn.close()


def test_openstacksdk_create_and_wait(sdk: Any, image: str) -> None:
    img = sdk.image.find_image(image)
    flavor = sdk.compute.find_flavor("m1.nano")
    server = sdk.compute.create_server(name=unique("sdk"), image_id=img.id,
                                       flavor_id=flavor.id, networks="none")
    server = sdk.compute.wait_for_server(server, wait=60, interval=0.5)
    assert server.status == "ACTIVE" and server.flavor.original_name == "m1.nano"
    sdk.compute.stop_server(server)
    sdk.compute.wait_for_server(server, status="SHUTOFF", wait=60, interval=0.5)
    sdk.compute.delete_server(server)
    sdk.compute.wait_for_delete(server, wait=60, interval=0.5)
