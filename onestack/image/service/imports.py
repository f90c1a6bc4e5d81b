"""Interoperable import (``glance-direct``): staged data inspected, hashed and
moved into the store in the background; interrupted transfers after a restart."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.db import retrying
from onestack.common.errors import (
    BadRequest,
    Conflict,
)
from onestack.common.ids import utcnow
from onestack.image import schemas
from onestack.image.models import Image, ImageTask
from onestack.image.service._access import authorize, visible_image
from onestack.image.service.quotas import data_limit

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


def begin_import(
    svc: ImageService, ctx: AuthContext, image_id: str, body: Any, request_id: str | None = None
) -> tuple[Path, str]:
    """Validate an import request; uploading -> importing. Returns the staged file and the task id."""
    if not isinstance(body, dict) or not isinstance(body.get("method"), dict):
        raise BadRequest("The import request must name a method: {\"method\": {\"name\": ...}}.")
    method = body["method"].get("name")
    if method not in schemas.ALL_IMPORT_METHODS:
        raise BadRequest(f"Unknown import method name '{method}'.")
    if method not in schemas.IMPORT_METHODS:
        raise BadRequest(f"Import method {method} is not enabled at this site.")
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "import_image", ctx, tgt)
        if img.disk_format is None or img.container_format is None:
            raise Conflict(f"The image {image_id} has no container_format or disk_format, cannot import.")
        if img.status != "uploading" or not img.staging:
            if img.status == "queued":
                raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
            raise Conflict(f"Image status transition from {img.status} to importing is not allowed")
        img.status = "importing"
        now = utcnow()
        img.updated_at = now
        task = ImageTask(
            id=str(uuid.uuid4()), type="api_image_import", status="processing", owner=img.owner,
            image_id=img.id, request_id=request_id, user_id=ctx.user_id,
            input={"image_id": img.id, "import_req": body, "backend": [svc.store.name]},
            result=None, message="", created_at=now, updated_at=now, expires_at=None,
        )
        s.add(task)
        return Path(img.staging[len("file://") :]), task.id


def _finish_task(s: Session, task_id: str | None, status: str, message: str = "") -> None:
    task = s.get(ImageTask, task_id) if task_id else None
    if task is None:
        return
    now = utcnow()
    task.status = status
    task.message = message
    task.result = {"image_id": task.image_id} if status == "success" else None
    task.updated_at = now
    task.expires_at = now + timedelta(hours=48)


def run_import(svc: ImageService, image_id: str, staged: Path, task_id: str | None = None) -> None:
    """Inspect and hash the staged data, then move it into the store (importing -> active)."""
    from onestack.image.data import DataSink, TooLarge
    from onestack.image.formats import FormatError, Inspector

    with svc.db.read() as s:
        img = s.get(Image, image_id)
        if img is None:
            staged.unlink(missing_ok=True)
            return
        disk_format, container_format = img.disk_format, img.container_format
        limit, _ = data_limit(svc, s, img, lock=False)  # fail early; checked again below
    try:
        sink = DataSink(None, Inspector(disk_format, container_format), limit)
        with open(staged, "rb") as fh:
            while chunk := fh.read(4 << 20):
                sink.write(chunk)
        got = sink.finish()
        location = svc.store.adopt(image_id, staged)
    except (FormatError, TooLarge, OSError) as exc:
        log.warning("import of image %s failed: %s", image_id, exc)
        staged.unlink(missing_ok=True)
        reason = str(exc)

        def failed() -> None:
            with svc.db.write() as s:
                img = s.get(Image, image_id)
                if img is not None:
                    _failed(img)
                _finish_task(s, task_id, "failure", reason)

        retrying(failed)  # a scope of its own: the staged data is gone, the call cannot run again
        return

    def done() -> None:
        with svc.db.write() as s:
            img = s.get(Image, image_id)
            if img is None or img.status != "importing":
                svc.store.delete(location)
                _finish_task(s, task_id, "failure", "The image was deleted during the import.")
                return
            limit, message = data_limit(svc, s, img)
            if got.size > limit:  # the quota was used up while the data was inspected
                log.warning("import of image %s failed: %s", image_id, message)
                svc.store.delete(location)
                _failed(img)
                _finish_task(s, task_id, "failure", message)
                return
            _finish_task(s, task_id, "success")
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

    retrying(done)  # a scope of its own: the staged data has moved into the store


def _failed(img: Image) -> None:
    """importing -> queued, the staged data gone, as Glance marks a failed import."""
    img.status = "queued"
    img.staging = None
    props = dict(img.properties or {})
    props["os_glance_failed_import"] = "file"
    img.properties = props
    img.updated_at = utcnow()


def recover_interrupted(svc: ImageService) -> None:
    """After a restart: transfers that were running are gone; back to queued."""
    with svc.db.read() as s:
        stuck = s.scalar(select(func.count(Image.id)).where(Image.status.in_(("saving", "importing"))))
    if not stuck:
        return
    with svc.db.write() as s:
        for img in s.scalars(select(Image).where(Image.status.in_(("saving", "importing")))):
            if img.status == "importing" and img.staging and Path(img.staging[len("file://"):]).exists():
                img.status = "uploading"
            else:
                img.status = "queued"
                img.staging = None
            img.updated_at = utcnow()
