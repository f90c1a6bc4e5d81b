"""Interoperable import (``glance-direct``): the request, checked as Glance
checks it, becomes the durable ``image.import`` task (``import_task``); and,
when a process starts, the transfers whose owning process is gone."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict
from onestack.common.ids import utcnow
from onestack.image import schemas
from onestack.image.models import Image, ImageTask
from onestack.image.service._access import authorize, visible_image

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


def _check_body(body: Any) -> str:
    """The import request's body, as Glance's deserializer checks it; the method name."""
    if not isinstance(body, dict) or "method" not in body:
        raise BadRequest("Import request requires a 'method' field.")
    method = body["method"]
    if not isinstance(method, dict) or "name" not in method:
        raise BadRequest("Import request requires a 'name' field.")
    name = method["name"]
    if not isinstance(name, str) or name not in schemas.IMPORT_METHODS:
        raise BadRequest(f"Unknown import method name '{name}'.")
    for key, default in (("all_stores_must_succeed", True), ("all_stores", False)):
        if not isinstance(body.get(key, default), bool):
            raise BadRequest(f"'{key}' must be boolean value only")
    if body.get("all_stores") and "stores" in body:
        raise BadRequest("All_stores parameter can't be used with x-image-meta-store header "
                         "or stores parameter")
    stores = body.get("stores", [])
    if not isinstance(stores, list) or not all(isinstance(x, str) for x in stores):
        raise BadRequest("'stores' must be a list of store names")
    return name


def begin_import(
    svc: ImageService, ctx: AuthContext, image_id: str, body: Any, request_id: str | None = None
) -> str:
    """Validate an import request; uploading -> importing, and the import enqueued
    as a durable task in the same transaction. Returns Glance's task id."""
    from onestack.image.service import import_task

    method = _check_body(body)
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        if img.status == "active":
            raise Conflict("Image with status active cannot be target for import")
        if img.status != "uploading" or not img.staging:
            raise Conflict(f"Image needs to be staged before '{method}' method can be used")
        if not img.container_format:
            raise Conflict("'container_format' needs to be set before import")
        if not img.disk_format:
            raise Conflict("'disk_format' needs to be set before import")
        authorize(svc, "import_image", ctx, tgt)
        for store in body.get("stores") or ():
            if store != svc.store.name:
                raise Conflict(f"Unknown scheme '{store}' found in URI")
        img.status = "importing"
        now = utcnow()
        img.updated_at = now
        props = dict(img.properties or {})
        props.pop("os_glance_failed_import", None)
        props["os_glance_importing_to_stores"] = svc.store.name
        img.properties = props
        task = ImageTask(
            id=str(uuid.uuid4()), type="api_image_import", status="processing", owner=img.owner,
            image_id=img.id, request_id=request_id, user_id=ctx.user_id,
            input={"image_id": img.id, "import_req": body, "backend": [svc.store.name]},
            result=None, message="", created_at=now, updated_at=now, expires_at=None,
        )
        s.add(task)
        s.flush()
        svc.cloud.tasks.enqueue(
            s, import_task.KIND,
            {"image_id": img.id, "image_task": task.id, "staging": img.staging},
            host=svc.cloud.host_name,  # the staged data is on this host's disk
            resource_key=f"image:{img.id}",
            idempotency_key=f"{import_task.KIND}:{task.id}",
        )
        return task.id


def recover_interrupted(svc: ImageService) -> int:
    """Transfers whose owning process is gone: back to where Glance would have them.

    An upload (``saving``) or a stage in flight (``uploading`` with nothing
    staged yet) is reset to ``queued`` once the process named in its
    ``upload_owner`` is gone (``common.tasks.processes``); uploads of live
    processes - another API replica's - are left alone. An ``importing``
    image is its ``image.import`` task's: only one left without any task
    (a cloud upgraded from before imports were tasks) goes back to
    ``uploading`` (data staged) or ``queued``. Returns how many were reset.
    """
    from onestack.common.models import Task

    in_flight = (Image.status == "saving") | ((Image.status == "uploading") & Image.staging.is_(None))
    with svc.db.read() as s:
        owners = set(s.scalars(select(Image.upload_owner).where(in_flight).distinct()))
        importing = list(s.scalars(select(Image.id).where(Image.status == "importing")))
        if importing:
            keys = {f"image:{i}" for i in importing}
            tasked = set(s.scalars(select(Task.resource_key).where(Task.resource_key.in_(keys))))
            importing = [i for i in importing if f"image:{i}" not in tasked]
    if not owners and not importing:
        return 0
    cloud = svc.cloud
    gone = cloud.processes.gone({o for o in owners if o}, here=cloud.host_name,
                                down_after=svc.settings.hosts.service_down_time)
    gone.discard(cloud.process_identity)  # this process's own uploads are in flight
    stale = in_flight & (Image.upload_owner.is_(None) | Image.upload_owner.in_(sorted(gone)))
    count = 0
    with svc.db.write() as s:
        for img in s.scalars(select(Image).where(stale | Image.id.in_(importing))):
            if img.status == "importing":
                if img.staging and Path(img.staging[len("file://"):]).exists():
                    img.status = "uploading"
                else:
                    img.status = "queued"
                    img.staging = None
            else:
                log.warning("image %s: its %s by %s was interrupted", img.id,
                            "upload" if img.status == "saving" else "stage", img.upload_owner)
                img.status = "queued"
            img.upload_owner = None
            img.updated_at = utcnow()
            count += 1
    return count
