"""The ``image.import`` durable task: a ``glance-direct`` import, run by the
cloud's own worker (``common/tasks``), so that it survives a restart.

``begin_import`` (``imports``) moves the image to ``importing``, records
Glance's task (``image_task``) and enqueues this task in one transaction
(resource key ``image:<id>``: one import at a time per image; idempotency key
the Glance task, i.e. the import request). The handler runs in a thread:

1. the staged data (in this host's state directory, which is why the task is
   pinned to the host that staged it) is read, hashed and inspected as an
   upload is - the cancel flag checked between chunks;
2. in a fenced write (committed only while this attempt's lease holds) the
   staged file is renamed into the store and the image goes ``active``, the
   Glance task ``success``.

A process killed at any point leaves the task running under a lease of a
process that is gone: the next process to start releases it
(``common.tasks.processes``) and the import runs again from the staged data -
or from the store, if the kill fell between the rename and the commit. Bad
data (unsafe, not the disk format, over the quota) fails at once; anything
else is retried with backoff. When the task gives up (or is cancelled, or its
host is down for good) the image is ``queued`` again with
``os_glance_failed_import``, the Glance task ``failure`` with the reason, and
the staged data is deleted, as Glance reverts a failed import.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.common.tasks.errors import TaskFailed
from onestack.common.tasks.kinds import KindRule
from onestack.image.models import Image, ImageTask
from onestack.image.service.quotas import data_limit

if TYPE_CHECKING:
    from onestack.common.models import Task
    from onestack.common.tasks.worker import TaskContext
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)

KIND = "image.import"
# The host service whose heartbeat says the staging host is alive.
BINARY = "onestack-api"
CHUNK = 4 << 20
GONE = "The image was deleted during the import."


def rule(svc: ImageService) -> KindRule:
    """How the queue treats imports: a few attempts for what may pass (a
    database or disk hiccup), none for bad data; never handed to agents."""

    def give_up(session: Session, task: Task) -> None:
        failed(svc, session, task.payload, task.reason or "The import failed.")

    return KindRule(max_attempts=3, backoff_base=2.0, backoff_cap=60.0, retry_unexpected=True,
                    binary=BINARY, on_host_down="fail", agents=False,
                    on_give_up=give_up, on_cancel=give_up)


def staged_path(payload: dict[str, Any]) -> Path | None:
    staging = payload.get("staging")
    if not isinstance(staging, str) or not staging.startswith("file://"):
        return None
    return Path(staging[len("file://"):])


def finish_image_task(s: Session, task_id: str | None, status: str, message: str = "") -> None:
    """Glance's task record: success or failure, kept 48 hours as Glance does."""
    task = s.get(ImageTask, task_id) if task_id else None
    if task is None or task.status in ("success", "failure"):
        return
    now = utcnow()
    task.status = status
    task.message = message
    task.result = {"image_id": task.image_id} if status == "success" else None
    task.updated_at = now
    task.expires_at = now + timedelta(hours=48)


def mark_failed(img: Image) -> None:
    """importing -> queued, the staged data gone, as Glance marks a failed import."""
    img.status = "queued"
    img.staging = None
    props = dict(img.properties or {})
    props["os_glance_failed_import"] = "file"
    props["os_glance_importing_to_stores"] = ""
    img.properties = props
    img.updated_at = utcnow()


def failed(svc: ImageService, s: Session, payload: dict[str, Any], reason: str) -> None:
    """The import ended without data (in the transaction recording it): the
    image back to ``queued``, Glance's task failed, the staged data dropped."""
    image_id = str(payload.get("image_id", ""))
    img = s.get(Image, image_id) if image_id else None
    if img is not None and img.status == "importing":
        mark_failed(img)
        try:  # the data may have been renamed into the store before a crash
            svc.file_store.path_for(image_id).unlink(missing_ok=True)
        except (OSError, ValueError):
            pass
    finish_image_task(s, payload.get("image_task"), "failure", reason)
    staged = staged_path(payload)
    if staged is not None:
        staged.unlink(missing_ok=True)
    log.warning("import of image %s failed: %s", image_id, reason)


def run(svc: ImageService, ctx: TaskContext) -> dict[str, Any]:
    """The handler (in a thread): inspect the staged data, then adopt it."""
    from onestack.image.data import DataSink, TooLarge
    from onestack.image.formats import FormatError, Inspector

    payload = ctx.payload
    image_id = str(payload["image_id"])
    with svc.db.read() as s:
        img = s.get(Image, image_id)
        if img is None or img.status != "importing":
            return _gone(svc, ctx)
        disk_format, container_format = img.disk_format, img.container_format
        limit, _ = data_limit(svc, s, img, lock=False)  # fail early; checked again below
    staged = staged_path(payload)
    stored = svc.file_store.path_for(image_id)
    if staged is not None and staged.exists():
        source = staged
    elif stored.exists():  # renamed into the store by an attempt that died before its commit
        source = stored
    else:
        raise TaskFailed("The staged image data is gone.", retry=False)
    try:
        sink = DataSink(None, Inspector(disk_format, container_format), limit)
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                ctx.check()
                sink.write(chunk)
        got = sink.finish()
    except (FormatError, TooLarge) as exc:
        raise TaskFailed(str(exc), retry=False) from None
    imported = drop = False
    with ctx.fenced_write() as s:
        img = s.get(Image, image_id)
        if img is None or img.status != "importing":
            finish_image_task(s, payload.get("image_task"), "failure", GONE)
            drop = img is None or source == staged  # the data is no image's
        else:
            imported = True
            limit, message = data_limit(svc, s, img)
            if got.size > limit:  # the quota was used up while the data was inspected
                raise TaskFailed(message, retry=False)
            location = stored.as_uri() if source == stored else svc.store.adopt(image_id, source)
            finish_image_task(s, payload.get("image_task"), "success")
            img.status = "active"
            img.staging = None
            img.size = got.size
            img.virtual_size = got.virtual_size
            img.checksum = got.checksum
            img.os_hash_algo = "sha512"
            img.os_hash_value = got.os_hash_value
            img.location = location
            props = dict(img.properties or {})
            props.pop("os_glance_failed_import", None)
            props["os_glance_importing_to_stores"] = ""
            img.properties = props
            img.updated_at = utcnow()
    if drop:
        source.unlink(missing_ok=True)
    return {"image_id": image_id, "imported": imported}


def _gone(svc: ImageService, ctx: TaskContext) -> dict[str, Any]:
    """The image was deleted (or its import ended) before this attempt ran."""
    with ctx.fenced_write() as s:
        finish_image_task(s, ctx.payload.get("image_task"), "failure", GONE)
    staged = staged_path(ctx.payload)
    if staged is not None:
        staged.unlink(missing_ok=True)
    return {"image_id": ctx.payload["image_id"], "imported": False}
