"""Imports and uploads that a process left behind when it died.

The state is written as a killed process leaves it (an image ``importing``
with its ``image.import`` task running under the dead process's lease; images
``saving`` under uploads of processes alive or gone), then a cloud starts on
the same state directory - deterministic, where killing a real process at the
right moment is not (tests/clients/test_image_import_restart.py does that too).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import update

from onestack.common.ids import utcnow
from onestack.common.models import RUNNING, Process, Task
from onestack.image.models import Image, ImageTask
from tests.api.conftest import Api, make_api
from tests.api.test_image import OCTET, V2, create
from tests.api.test_image_import import wait_status
from tests.unit.test_image_formats import GiB, make_qcow2


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def interrupted_import(api: Api, image_id: str, owner: str) -> str:
    """What a process killed mid-import leaves: the image importing, Glance's task
    processing, the image.import task running under the dead process's lease."""
    cloud = api.cloud
    with cloud.db.write() as s:
        img = s.get(Image, image_id)
        assert img is not None and img.status == "uploading" and img.staging
        img.status = "importing"
        now = utcnow()
        glance = ImageTask(id=f"{image_id[:30]}-task", type="api_image_import", status="processing",
                           owner=img.owner, image_id=image_id, input={}, message="",
                           created_at=now, updated_at=now)
        s.add(glance)
        s.flush()
        task = cloud.tasks.enqueue(s, "image.import",
                                   {"image_id": image_id, "image_task": glance.id, "staging": img.staging},
                                   host=cloud.host_name, resource_key=f"image:{image_id}",
                                   idempotency_key=f"image.import:{glance.id}")
        task_id = task.id
    with cloud.db.write() as s:
        s.execute(update(Task).where(Task.id == task_id).values(
            state=RUNNING, attempts=1, claim_token=1, lease_owner=f"{owner}/local/0",
            lease_expires_at=utcnow() + timedelta(hours=1)))
    return glance.id


def set_saving(api: Api, image_id: str, owner: str) -> None:
    with api.cloud.db.write() as s:
        s.execute(update(Image).where(Image.id == image_id).values(status="saving", upload_owner=owner))


def started(state: Path, extra_env: dict[str, str] | None = None) -> Generator[Api, None, None]:
    """A cloud on ``state``: ``next()`` starts it, ``close()`` stops it."""
    return cast("Generator[Api, None, None]", make_api(state, extra_env=extra_env))


def test_work_of_a_dead_process_is_recovered_and_a_live_ones_is_not(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = started(state)
    api = next(first)
    host = api.cloud.host_name
    ghost = f"{host}:{dead_pid()}:0badf00d"  # killed: its pid is gone, its row still fresh
    data = make_qcow2(GiB) + os.urandom(200_000)

    def staged_image() -> dict[str, Any]:
        img = create(api, disk_format="qcow2")
        assert api.put(f"{V2}/images/{img['id']}/stage", content=data, headers=OCTET).status_code == 204
        return img

    to_finish, moved, lost = staged_image(), staged_image(), staged_image()
    uploads = {name: create(api) for name in ("ghost", "live", "unknown", "silent")}
    first.close()  # the cloud stops; what follows is what a killed process would have left

    api.cloud.processes.beat(ghost, host, int(ghost.split(":")[1]), started=True)
    api.cloud.processes.beat("elsewhere:41:live", "elsewhere", 41, started=True)
    api.cloud.processes.beat("elsewhere:42:silent", "elsewhere", 42, started=True)
    with api.cloud.db.write() as s:  # silent for longer than the down time
        s.execute(update(Process).where(Process.id == "elsewhere:42:silent")
                  .values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    tasks = {name: interrupted_import(api, img["id"], ghost)
             for name, img in (("finish", to_finish), ("moved", moved), ("lost", lost))}
    staging = state / "images" / "staging"
    # killed between moving the data into the store and recording it
    os.replace(staging / moved["id"], state / "images" / moved["id"])
    (staging / lost["id"]).unlink()  # the staged data is gone altogether
    set_saving(api, uploads["ghost"]["id"], ghost)
    set_saving(api, uploads["live"]["id"], "elsewhere:41:live")
    set_saving(api, uploads["unknown"]["id"], "elsewhere:43:never-registered")
    set_saving(api, uploads["silent"]["id"], "elsewhere:42:silent")

    second = started(state)
    api = next(second)
    try:
        status = {name: api.get(f"{V2}/images/{img['id']}").json()["status"] for name, img in uploads.items()}
        assert status == {"ghost": "queued", "live": "saving", "unknown": "queued", "silent": "queued"}
        for img in (to_finish, moved):  # the lease of the dead process was released at start
            got = wait_status(api, img["id"], {"active", "queued"}, timeout=30)
            assert got["status"] == "active", got
            assert got["os_hash_value"] == hashlib.sha512(data).hexdigest() and got["size"] == len(data)
            assert api.get(f"{V2}/images/{img['id']}/file").content == data
        got = wait_status(api, lost["id"], {"active", "queued"}, timeout=30)
        assert got["status"] == "queued" and got["os_glance_failed_import"] == "file", got
        glance = {name: api.get(f"{V2}/tasks/{tid}").json() for name, tid in tasks.items()}
        assert [glance[n]["status"] for n in ("finish", "moved", "lost")] == ["success", "success", "failure"]
        assert glance["lost"]["message"] == "The staged image data is gone."
        with api.cloud.db.read() as s:
            rows = {t.payload["image_task"]: t for t in s.query(Task).filter(Task.kind == "image.import")}
            assert [(rows[tasks[n]].state, rows[tasks[n]].attempts) for n in ("finish", "moved", "lost")] == [
                ("succeeded", 2), ("succeeded", 2), ("failed", 2)]
        assert sorted(os.listdir(staging)) == []
        assert not (state / "images" / lost["id"]).exists()
    finally:
        second.close()


def test_a_clean_stop_unregisters_the_process(tmp_path: Path) -> None:
    gen = started(tmp_path / "state")
    api = next(gen)
    me = api.cloud.process_identity
    with api.cloud.db.read() as s:
        row = s.get(Process, me)
        assert row is not None and row.pid == os.getpid() and row.host == api.cloud.host_name
    deadline = time.monotonic() + 5
    gen.close()
    assert time.monotonic() < deadline
    with api.cloud.db.read() as s:
        assert s.get(Process, me) is None


def test_uploads_of_a_replica_that_dies_while_this_one_runs_are_reset(tmp_path: Path) -> None:
    """Without a restart here: every down time, uploads whose owner stopped
    heartbeating are reset; a live owner's are not."""
    gen = started(tmp_path / "state", extra_env={"ONESTACK_HOSTS_SERVICE_DOWN_TIME": "1"})
    api = next(gen)
    try:
        registry = api.cloud.processes
        registry.beat("elsewhere:7:dies", "elsewhere", 7, started=True)
        registry.beat("elsewhere:8:lives", "elsewhere", 8, started=True)
        dies, lives = create(api), create(api)
        set_saving(api, dies["id"], "elsewhere:7:dies")
        set_saving(api, lives["id"], "elsewhere:8:lives")
        deadline = time.monotonic() + 15
        while api.get(f"{V2}/images/{dies['id']}").json()["status"] == "saving":
            registry.beat("elsewhere:8:lives", "elsewhere", 8)  # only this one heartbeats
            assert time.monotonic() < deadline, "the dead replica's upload was never reset"
            time.sleep(0.1)
        assert api.get(f"{V2}/images/{dies['id']}").json()["status"] == "queued"
        assert api.get(f"{V2}/images/{lives['id']}").json()["status"] == "saving"
    finally:
        gen.close()


def test_an_import_left_without_a_task_goes_back_to_uploading(tmp_path: Path) -> None:
    """A cloud upgraded from before imports were tasks: an image left importing with
    no task is put back where the user can import it again."""
    state = tmp_path / "state"
    gen = started(state)
    api = next(gen)
    img = create(api)
    assert api.put(f"{V2}/images/{img['id']}/stage", content=b"y" * 4096, headers=OCTET).status_code == 204
    gen.close()
    with api.cloud.db.write() as s:
        s.execute(update(Image).where(Image.id == img["id"]).values(status="importing"))
    gen = started(state)
    api = next(gen)
    try:
        assert api.get(f"{V2}/images/{img['id']}").json()["status"] == "uploading"
        r = api.post(f"{V2}/images/{img['id']}/import", json={"method": {"name": "glance-direct"}})
        assert r.status_code == 202, r.text
        assert wait_status(api, img["id"], {"active", "queued"})["status"] == "active"
    finally:
        gen.close()


def test_an_import_running_when_the_cloud_stops_is_never_lost(tmp_path: Path) -> None:
    """A clean stop in the middle of an import: the worker lets the handler finish
    (up to its stop timeout) or gives the task back unfinished (the handler, told,
    stops at its next chunk: tests/unit/test_tasks_worker.py); either way the
    next start leaves the image active."""
    state = tmp_path / "state"
    gen = started(state)
    api = next(gen)
    data = os.urandom(1 << 20) * 64
    img = create(api)
    url = f"{V2}/images/{img['id']}"
    assert api.put(f"{url}/stage", content=data, headers=OCTET).status_code == 204
    assert api.post(f"{url}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    key = f"image:{img['id']}"
    deadline = time.monotonic() + 20
    while True:
        with api.cloud.db.read() as s:
            state_now = s.query(Task.state).filter(Task.resource_key == key).scalar()
        if state_now != "queued":
            break
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert state_now == RUNNING, "the import ran before the stop: make the data bigger"
    begun = time.monotonic()
    gen.close()
    assert time.monotonic() - begun < 15  # the worker's stop timeout (10 s), then it gives up
    with api.cloud.db.read() as s:
        left = tuple(s.query(Task.state, Task.lease_owner).filter(Task.resource_key == key).one())
        status = s.query(Image.status).filter(Image.id == img["id"]).scalar()
        assert (left, status) in ((("succeeded", None), "active"), (("queued", None), "importing"))
    if status == "importing":
        assert (state / "images" / "staging" / img["id"]).exists()  # kept until the task is done
    gen = started(state)
    api = next(gen)
    try:
        got = wait_status(api, img["id"], {"active", "queued"}, timeout=60)
        assert got["status"] == "active" and got["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert os.listdir(state / "images" / "staging") == []
    finally:
        gen.close()
