"""Interoperable import (glance-direct) through openstacksdk, and an import that
survives the cloud process being killed in the middle of it."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import openstack.exceptions
import pytest

from tests.clients.test_scaleout import admin_token
from tests.conftest import CloudInfo, start_cloud, stop_cloud
from tests.unit.test_image_formats import GiB, make_qcow2

pytestmark = pytest.mark.clients


@pytest.fixture
def admin(running_cloud: CloudInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(running_cloud.clouds_yaml))
    conn = openstack.connect(cloud="onestack-admin")
    yield conn
    conn.close()


def wait_active(get: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        image = get()
        if image.status not in ("uploading", "importing") or time.monotonic() > deadline:
            return image
        time.sleep(0.2)


def test_sdk_stage_and_import(admin: Any) -> None:
    data = make_qcow2(2 * GiB) + os.urandom(300_000)
    image = admin.image.create_image(name=f"sdk-import-{uuid.uuid4().hex[:8]}", disk_format="qcow2",
                                     container_format="bare")
    try:
        # nothing staged yet: Glance's 409 (the SDK hands back the response as it is)
        r = admin.image.import_image(image, method="glance-direct")
        assert r.status_code == 409 and r.json() == {
            "message": "Image needs to be staged before 'glance-direct' method can be used",
            "code": "409 Conflict", "title": "Conflict"}
        admin.image.stage_image(image, data=data)
        assert admin.image.get_image(image).status == "uploading"
        r = admin.image.import_image(image, method="web-download", uri="http://127.0.0.1:1/x")
        assert r.status_code == 400 and r.json()["message"] == "Unknown import method name 'web-download'."
        assert admin.image.import_image(image, method="glance-direct").status_code == 202
        done = wait_active(lambda: admin.image.get_image(image))
        assert done.status == "active", done
        assert done.checksum == hashlib.md5(data).hexdigest()
        assert done.hash_value == hashlib.sha512(data).hexdigest() and done.hash_algo == "sha512"
        assert done.virtual_size == 2 * GiB and done.size == len(data)
        assert b"".join(admin.image.download_image(image, stream=True).iter_content(1 << 20)) == data
        tasks = list(admin.image.get(f"/images/{image.id}/tasks").json()["tasks"])
        assert [(t["type"], t["status"]) for t in tasks] == [("api_image_import", "success")]
        r = admin.image.import_image(image, method="glance-direct")
        assert r.status_code == 409
        assert r.json()["message"] == "Image with status active cannot be target for import"
    finally:
        admin.image.delete_image(image, ignore_missing=True)


def test_an_import_survives_the_process_being_killed(tmp_path: Path) -> None:
    """`kill -9` right after the import was accepted; the next `onestack up` on the
    same state directory finishes it (the dead process's task lease is released at start)."""
    state = tmp_path / "state"
    first = start_cloud(state)
    second: CloudInfo | None = None
    try:
        token = admin_token(first.url, first.clouds_yaml)
        headers = {"X-Auth-Token": token}
        data = os.urandom(1 << 20) * 96  # 96 MiB: hashing it takes a moment
        r = httpx.post(first.url + "/image/v2/images", headers=headers,
                       json={"name": "killed-import", "disk_format": "raw", "container_format": "bare"})
        image_id = r.json()["id"]
        url = f"/image/v2/images/{image_id}"
        r = httpx.put(first.url + url + "/stage", content=data, timeout=120,
                      headers={**headers, "Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        r = httpx.post(first.url + url + "/import", headers=headers, json={"method": {"name": "glance-direct"}})
        assert r.status_code == 202, r.text
        assert first.process is not None
        query = "SELECT state, attempts FROM task WHERE kind = 'image.import'"
        deadline = time.monotonic() + 30
        with sqlite3.connect(f"file:{state / 'onestack.db'}?mode=ro", uri=True) as db:
            while db.execute(query).fetchall() != [("running", 1)]:  # the worker is at it
                assert time.monotonic() < deadline
                time.sleep(0.002)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        with sqlite3.connect(state / "onestack.db") as db:  # what the killed process left
            left = db.execute(query).fetchall()
        assert left == [("running", 1)], left  # the import in the middle of its run

        second = start_cloud(state)
        deadline = time.monotonic() + 90
        while (got := httpx.get(second.url + url, headers=headers).json())["status"] == "importing":
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
        assert got["status"] == "active", got
        assert got["os_hash_value"] == hashlib.sha512(data).hexdigest() and got["size"] == len(data)
        tasks = httpx.get(second.url + url + "/tasks", headers=headers).json()["tasks"]
        assert [t["status"] for t in tasks] == ["success"]
        with sqlite3.connect(state / "onestack.db") as db:
            done = db.execute("SELECT state, attempts FROM task WHERE kind = 'image.import'").fetchall()
        assert done == [("succeeded", 2)]  # run again, from the start, by the new process
        assert os.listdir(state / "images" / "staging") == []
        r = httpx.get(second.url + url + "/file", headers=headers, timeout=60)
        assert hashlib.sha512(r.content).hexdigest() == got["os_hash_value"]
    finally:
        stop_cloud(first)
        if second is not None:
            stop_cloud(second)
