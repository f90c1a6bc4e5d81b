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


def glance_error(r: Any, status: int, message: str) -> None:
    """The exact error Glance answers: status, and its JSON body."""
    titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    assert r.status_code == status, r.text
    assert r.json() == {"message": message, "code": f"{status} {titles[status]}", "title": titles[status]}


def test_import_request_errors_are_glances(api: Api) -> None:
    img = create(api, disk_format="qcow2")
    url = f"{V2}/images/{img['id']}/import"
    cases: list[tuple[Any, str]] = [
        ({}, "Import request requires a 'method' field."),
        ({"method": "glance-direct"}, "Import request requires a 'name' field."),
        ({"method": {}}, "Import request requires a 'name' field."),
        ({"method": {"name": "x"}}, "Unknown import method name 'x'."),
        ({"method": {"name": "web-download", "uri": "http://127.0.0.1:1/x"}},
         "Unknown import method name 'web-download'."),
        ({"method": {"name": "copy-image"}}, "Unknown import method name 'copy-image'."),
        ({"method": {"name": "glance-direct"}, "all_stores_must_succeed": "yes"},
         "'all_stores_must_succeed' must be boolean value only"),
        ({"method": {"name": "glance-direct"}, "all_stores": 1},
         "'all_stores' must be boolean value only"),
    ]
    for body, message in cases:
        glance_error(api.post(url, json=body), 400, message)
    assert api.get(f"{V2}/images/{img['id']}").json()["status"] == "queued"  # nothing changed


def test_import_in_the_wrong_state_is_409(api: Api) -> None:
    body = {"method": {"name": "glance-direct"}}
    staged_msg = "Image needs to be staged before 'glance-direct' method can be used"
    queued = create(api, disk_format="qcow2")
    glance_error(api.post(f"{V2}/images/{queued['id']}/import", json=body), 409, staged_msg)
    active = create(api)
    assert api.put(f"{V2}/images/{active['id']}/file", content=b"x" * 512, headers=OCTET).status_code == 204
    glance_error(api.post(f"{V2}/images/{active['id']}/import", json=body), 409,
                 "Image with status active cannot be target for import")
    # staged, but never given its formats
    bare = create(api, disk_format=None, container_format=None)
    assert api.put(f"{V2}/images/{bare['id']}/stage", content=b"x" * 512, headers=OCTET).status_code == 204
    glance_error(api.post(f"{V2}/images/{bare['id']}/import", json=body), 409,
                 "'container_format' needs to be set before import")
    # a store this cloud does not have
    staged = create(api)
    assert api.put(f"{V2}/images/{staged['id']}/stage", content=b"x" * 512, headers=OCTET).status_code == 204
    glance_error(api.post(f"{V2}/images/{staged['id']}/import", json={**body, "stores": ["ceph"]}), 409,
                 "Unknown scheme 'ceph' found in URI")
    assert api.get(f"{V2}/images/{staged['id']}").json()["status"] == "uploading"
    assert api.post(f"{V2}/images/{staged['id']}/import", json={**body, "stores": ["file"]}).status_code == 202
    assert wait_status(api, staged["id"], {"active", "queued"})["status"] == "active"
    # imported already: a second request is refused, nothing runs twice
    glance_error(api.post(f"{V2}/images/{staged['id']}/import", json=body), 409,
                 "Image with status active cannot be target for import")
    missing = "00000000-0000-4000-8000-000000000000"
    r = api.post(f"{V2}/images/{missing}/import", json=body)
    assert r.status_code == 404 and r.json()["code"] == "404 Not Found", r.text


def test_import_runs_as_a_durable_task(api: Api) -> None:
    """The import is a row of the task table: kind image.import, one per image at a time,
    deduplicated by the import request (Glance's task), done by the cloud's own worker."""
    from onestack.common.models import Task

    img = create(api)
    url = f"{V2}/images/{img['id']}"
    assert api.put(f"{url}/stage", content=os.urandom(300_000), headers=OCTET).status_code == 204
    assert api.post(f"{url}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    assert wait_status(api, img["id"], {"active", "queued"})["status"] == "active"
    glance_task = api.get(f"{url}/tasks").json()["tasks"][0]
    with api.cloud.db.read() as s:
        rows = s.query(Task).filter(Task.resource_key == f"image:{img['id']}").all()
        assert [(t.kind, t.state, t.idempotency_key, t.attempts) for t in rows] == [
            ("image.import", "succeeded", f"image.import:{glance_task['id']}", 1)]
        assert rows[0].payload["image_task"] == glance_task["id"]
        assert rows[0].target_host == api.cloud.host_name  # where the data was staged
        assert rows[0].result == {"image_id": img["id"], "imported": True}
