"""Personality files (before 2.57): Nova's injected-file quotas at boot and
rebuild, the files on the config drive (``openstack/content/NNNN`` and
``files`` in ``meta_data.json``), and the field gone from 2.57."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.api.compute.support import (
    Env,
    S,
    action,
    boot,
    nova_error,
    version,
    wait,
)

C = "/compute/v2.1"
OLD = version("2.56")


def _files(*items: tuple[str, bytes]) -> list[dict[str, str]]:
    return [{"path": p, "contents": base64.b64encode(c).decode()} for p, c in items]


def _drive(env: Env, server_id: str) -> dict[str, bytes]:
    drive = env.driver.instances[server_id].spec.config_drive
    assert drive is not None
    return dict(drive)


def test_personality_files_go_on_the_config_drive(env: Env) -> None:
    files = _files(("/etc/motd", b"hello\n"), ("/root/b.bin", b"\x00\xff"))
    sid = boot(env, headers=OLD, config_drive=True, personality=files)["id"]
    wait(env, sid, "ACTIVE")
    drive = _drive(env, sid)
    assert drive["openstack/content/0000"] == b"hello\n"
    assert drive["openstack/content/0001"] == b"\x00\xff"
    meta = json.loads(drive["openstack/latest/meta_data.json"])
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"},
                             {"path": "/root/b.bin", "content_path": "/content/0001"}]
    r = action(env, sid, {"rebuild": {"imageRef": env.image_id,
                                      "personality": _files(("/etc/issue", b"new"))}},
               headers=OLD)
    assert r.status_code == 202, r.text
    wait(env, sid, "ACTIVE")
    drive = _drive(env, sid)
    assert drive["openstack/content/0000"] == b"new" and "openstack/content/0001" not in drive
    assert json.loads(drive["openstack/latest/meta_data.json"])["files"] == [
        {"path": "/etc/issue", "content_path": "/content/0000"}]
    r = action(env, sid, {"rebuild": {"imageRef": env.image_id}}, headers=OLD)
    assert r.status_code == 202, r.text
    wait(env, sid, "ACTIVE")
    drive = _drive(env, sid)
    assert "openstack/content/0000" not in drive
    assert "files" not in json.loads(drive["openstack/latest/meta_data.json"])
    assert env.api.delete(f"{S}/{sid}").status_code == 204


def test_injected_file_quotas(env: Env) -> None:
    api = env.api
    body: dict[str, Any] = {"name": "p", "imageRef": env.image_id, "flavorRef": "42",
                            "networks": "none"}
    six = _files(*[(f"/f{i}", b"x") for i in range(6)])
    r = api.post(S, json={"server": {**body, "personality": six}}, headers=OLD)
    assert nova_error(r, 403) == "Personality file limit exceeded"
    long_path = _files(("/" + "p" * 255, b"x"), ("/a", b"y" * 20000))
    r = api.post(S, json={"server": {**body, "personality": long_path}}, headers=OLD)
    assert nova_error(r, 403) == "Personality file path exceeds maximum 255"
    big = [{"path": "/a", "contents": base64.b64encode(b"y" * 7681).decode()}]  # 10244 chars
    r = api.post(S, json={"server": {**body, "personality": big}}, headers=OLD)
    assert nova_error(r, 403) == "Personality file content exceeds maximum 10240"
    assert api.get(f"{S}?name=^p$", headers=OLD).json()["servers"] == []  # nothing left
    r = api.post(S, json={"server": {**body, "personality": [
        {"path": "/a", "contents": "not base64!"}]}}, headers=OLD)
    assert nova_error(r, 400).startswith("Invalid input for field/attribute contents.")
    r = api.post(S, json={"server": {**body, "personality": _files(("/a", b"x"))}},
                 headers=version("2.57"))
    assert nova_error(r, 400).endswith(
        "Additional properties are not allowed ('personality' was unexpected)")
    # the project's quota set is what limits them
    project = api.get("/identity/v3/projects?name=demo").json()["projects"][0]["id"]
    r = api.put(f"{C}/os-quota-sets/{project}", headers=OLD,
                json={"quota_set": {"injected_files": 1}})
    assert r.status_code == 200, r.text
    r = api.post(S, who="demo", headers=OLD, json={"server": {
        **body, "personality": _files(("/a", b"x"), ("/b", b"y"))}})
    assert nova_error(r, 403) == "Personality file limit exceeded"
    sid = boot(env, "demo", headers=OLD, personality=_files(("/a", b"x")))["id"]
    wait(env, sid, "ACTIVE", "demo")
    r = action(env, sid, {"rebuild": {"imageRef": env.image_id, "personality": _files(
        ("/a", b"x"), ("/b", b"y"))}}, who="demo", headers=OLD)
    assert nova_error(r, 403) == "Personality file limit exceeded"
    assert api.delete(f"{C}/os-quota-sets/{project}").status_code == 202
    assert api.delete(f"{S}/{sid}", who="demo").status_code == 204
