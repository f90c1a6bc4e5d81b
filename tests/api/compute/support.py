"""Helpers for the compute API tests: a cloud with an image and networks to
boot on (Compute's in-memory Networking stand-in and the fake driver), and
waits for servers to settle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.compute.virt.fake import _write_qcow2

V = {"OpenStack-API-Version": "compute 2.96"}
S = "/compute/v2.1/servers"


def version(v: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {v}"}


def nova_error(r: Any, status: int) -> str:
    """The message of a Nova error response, after checking its status and shape."""
    assert r.status_code == status, r.text
    body = r.json()
    assert len(body) == 1, body
    (fault, inner), = body.items()
    assert inner["code"] == status and set(inner) == {"code", "message"}, body
    assert isinstance(inner["message"], str) and inner["message"]
    return str(inner["message"])


@dataclass
class Env:
    api: Any
    image_id: str
    network_id: str
    demo_network_id: str

    @property
    def compute(self) -> Any:
        return self.api.cloud.service("compute")

    @property
    def driver(self) -> Any:
        return self.compute.agent.driver

    @property
    def network(self) -> Any:
        return self.compute.network


N = "/networking/v2.0"


def create_network(api: Any, name: str, cidr: str, who: str = "admin") -> dict[str, Any]:
    """A network with one subnet, through the Networking API."""
    r = api.post(f"{N}/networks", who=who, json={"network": {"name": name}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    r = api.post(f"{N}/subnets", who=who, json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4, "name": f"{name}-subnet"}})
    assert r.status_code == 201, r.text
    return dict(net)


def ports_of(env: Env, server_id: str) -> list[dict[str, Any]]:
    r = env.api.get(f"{N}/ports?device_id={server_id}")
    assert r.status_code == 200, r.text
    return list(r.json()["ports"])


def port_exists(env: Env, port_id: str) -> bool:
    return bool(env.api.get(f"{N}/ports/{port_id}").status_code == 200)


def port_count(env: Env) -> int:
    return len(env.api.get(f"{N}/ports").json()["ports"])


def make_image(api: Any, tmp: Path, name: str = "cirros", **props: Any) -> str:
    r = api.post("/image/v2/images", json={"name": name, "disk_format": "qcow2",
                                           "container_format": "bare",
                                           "visibility": "public", **props})
    assert r.status_code == 201, r.text
    image = r.json()
    path = tmp / f"{image['id']}.qcow2"
    _write_qcow2(path, 1 << 30)
    r = api.put(f"/image/v2/images/{image['id']}/file", content=path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return str(image["id"])


def setup(api: Any, tmp: Path) -> Env:
    image_id = make_image(api, tmp)
    compute = api.cloud.service("compute")
    admin = api.token("admin")
    demo = api.token("demo")
    r = api.client.get("/identity/v3/auth/tokens",
                       headers={"X-Auth-Token": admin, "X-Subject-Token": admin})
    admin_project = r.json()["token"]["project"]["id"]
    r = api.client.get("/identity/v3/auth/tokens",
                       headers={"X-Auth-Token": admin, "X-Subject-Token": demo})
    demo_project = r.json()["token"]["project"]["id"]
    del compute, admin_project
    found = api.get(f"{N}/networks?name=admin-net").json()["networks"]
    private = found[0] if found else create_network(api, "admin-net", "10.10.0.0/24")
    demo = api.get(f"{N}/networks?name=private&project_id={demo_project}").json()["networks"]
    wait_for_host(api)
    return Env(api, image_id, private["id"], demo[0]["id"])


def wait_for_host(api: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get("/compute/v2.1/os-availability-zone", headers=V)
        if r.status_code == 200 and any(z["zoneState"]["available"]
                                        for z in r.json()["availabilityZoneInfo"]):
            return
        time.sleep(0.05)
    raise AssertionError("the compute host did not come up")


def boot(env: Env, who: str = "admin", *, name: str = "vm", network: str | None = None,
         headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "imageRef": env.image_id, "flavorRef": "42"}
    if network is None:
        network = env.network_id if who == "admin" else env.demo_network_id
    body["networks"] = [{"uuid": network}] if network != "none" else "none"
    body.update(extra)
    r = env.api.post(S, who=who, json={"server": body}, headers=headers or V)
    assert r.status_code == 202, r.text
    return dict(r.json()["server"])


def show(env: Env, server_id: str, who: str = "admin",
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = env.api.get(f"{S}/{server_id}", who=who, headers=headers or V)
    assert r.status_code == 200, r.text
    return dict(r.json()["server"])


def wait(env: Env, server_id: str, status: str, who: str = "admin", timeout: float = 15.0,
         *, task_state_none: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    server: dict[str, Any] = {}
    while time.monotonic() < deadline:
        server = show(env, server_id, who)
        if server["status"] == status and (not task_state_none
                                           or server["OS-EXT-STS:task_state"] is None):
            return server
        if server["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server went to ERROR: {server.get('fault')}")
        time.sleep(0.03)
    raise AssertionError(f"server {server_id} is {server.get('status')} "
                         f"({server.get('OS-EXT-STS:task_state')}), not {status}")


def wait_gone(env: Env, server_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = env.api.get(f"{S}/{server_id}", headers=V)
        if r.status_code == 404:
            return
        time.sleep(0.03)
    raise AssertionError(f"server {server_id} was not deleted")


def action(env: Env, server_id: str, body: dict[str, Any], who: str = "admin",
           headers: dict[str, str] | None = None) -> Any:
    return env.api.post(f"{S}/{server_id}/action", who=who, json=body, headers=headers or V)


def eventually(check: Any, timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true (work finishing after the API answered)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} never became true")
        time.sleep(0.02)
