"""Interoperable image import: stage, then glance-direct import."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from tests.api.conftest import Api
from tests.api.test_image import OCTET, V2, assert_glance_error, create
from tests.unit.test_image_formats import GiB, make_qcow2


def wait_status(api: Api, image_id: str, wanted: set[str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        img = dict(api.get(f"{V2}/images/{image_id}").json())
        if img["status"] in wanted or time.monotonic() > deadline:
            return img
        time.sleep(0.05)


def test_glance_direct_import(api: Api) -> None:
    data = make_qcow2(4 * GiB) + os.urandom(100_000)
    img = create(api, disk_format="qcow2")
    url = f"{V2}/images/{img['id']}"
    assert api.put(f"{url}/stage", content=data, headers=OCTET).status_code == 204
    assert api.get(url).json()["status"] == "uploading"
    assert_glance_error(api.put(f"{url}/stage", content=data, headers=OCTET), 409)
    r = api.post(f"{url}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    got = wait_status(api, img["id"], {"active", "queued"})
    assert got["status"] == "active" and got["stores"] == "file"
    tasks = api.get(f"{url}/tasks").json()["tasks"]
    assert len(tasks) == 1 and tasks[0]["status"] == "success"
    assert tasks[0]["request_id"] == r.headers["X-OpenStack-Request-ID"]
    assert tasks[0]["input"]["import_req"]["method"]["name"] == "glance-direct"
    assert api.get(f"{V2}/tasks/{tasks[0]['id']}").json()["id"] == tasks[0]["id"]
    assert got["virtual_size"] == 4 * GiB and got["size"] == len(data)
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert api.get(f"{url}/file").content == data
    assert os.listdir(api.cloud.state_dir / "images" / "staging") == []


def test_import_needs_staged_data(api: Api) -> None:
    img = create(api)
    r = api.post(f"{V2}/images/{img['id']}/import", json={"method": {"name": "glance-direct"}})
    assert_glance_error(r, 409)


def test_web_download_is_not_available(api: Api) -> None:
    img = create(api)
    body = {"method": {"name": "web-download", "uri": "http://127.0.0.1:1/x"}}
    r = api.post(f"{V2}/images/{img['id']}/import", json=body)
    assert_glance_error(r, 400)
    assert "web-download" in r.json()["message"]
    assert_glance_error(api.post(f"{V2}/images/{img['id']}/import", json={}), 400)
    assert_glance_error(api.post(f"{V2}/images/{img['id']}/import", json={"method": {"name": "x"}}), 400)


def test_stage_needs_octet_stream(api: Api) -> None:
    img = create(api)
    r = api.put(f"{V2}/images/{img['id']}/stage", content=b"x", headers={"Content-Type": "text/plain"})
    assert_glance_error(r, 415)


def test_import_of_unsafe_data_fails_back_to_queued(api: Api) -> None:
    img = create(api, disk_format="qcow2")
    url = f"{V2}/images/{img['id']}"
    assert api.put(f"{url}/stage", content=make_qcow2(backing_file=b"/etc/passwd"), headers=OCTET).status_code == 204
    assert api.post(f"{url}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    got = wait_status(api, img["id"], {"active", "queued"})
    assert got["status"] == "queued" and got["size"] is None
    assert got["os_glance_failed_import"] == "file"
    tasks = api.get(f"{url}/tasks").json()["tasks"]
    assert [t["status"] for t in tasks] == ["failure"] and tasks[0]["message"] == "Image failed safety checks"
    assert img["id"] not in os.listdir(api.cloud.state_dir / "images")
    assert os.listdir(api.cloud.state_dir / "images" / "staging") == []
