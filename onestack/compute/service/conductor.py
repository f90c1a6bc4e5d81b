"""Conductor work: the task handlers that run in an API process because they
need the database and the other services.

* ``build``: schedule and claim a host, make and bind the ports, then hand the
  spawn (with the driver spec) to the host's agent - or fail the server with
  Nova's fault.
* ``release_network``: delete the ports Compute made for a server, unbind
  the user's own (after a delete or a failed boot).
* ``upload_image``: stream a snapshot the agent wrote into the image service
  (``createImage``, ``shelve``; ``createBackup``, which then rotates the
  server's older backups out).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onestack.common.errors import ApiError
from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import Server
from onestack.compute.service import netinfo, scheduling, specs
from onestack.compute.service._common import event_finish, event_start, latest_action, load

if TYPE_CHECKING:
    from onestack.common.auth import AuthContext
    from onestack.common.tasks.worker import TaskContext
    from onestack.compute.core import ComputeService
    from onestack.compute.scheduler.hosts import HostState

LOG = logging.getLogger(__name__)

SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
BUILD_EVENT = "compute__do_build_and_run_instance"


def _task_failed(message: str) -> Exception:
    from onestack.common.tasks.errors import TaskFailed

    return TaskFailed(message, retry=False)


def build(svc: ComputeService, tctx: TaskContext) -> dict[str, Any] | None:
    server_id = tctx.payload["server"]
    unshelve = bool(tctx.payload.get("unshelve"))

    def claimed(s: Any, server: Server, host: HostState) -> None:
        server.host = host.host
        server.node = host.node
        if not server.availability_zone:
            server.availability_zone = host.zone
        if not unshelve:
            server.task_state = states.NETWORKING
        server.updated_at = utcnow()
        action = latest_action(s, server.id, "unshelve" if unshelve else "create")
        if action is not None:
            event_finish(s, action.id, SCHEDULE_EVENT, host=host.host,
                         started_at=action.start_time)
            event_start(s, action.id, "compute_unshelve_instance" if unshelve else BUILD_EVENT,
                        host.host)

    try:
        with svc.db.read() as s:
            server = load(s, server_id)
            if server is None or server.task_state == states.DELETING:
                return {"skipped": True}
            host_name = server.host
        if host_name is None:
            placed = scheduling.place(svc, server_id, tctx.fenced_write, on_claimed=claimed)
            if placed is None:
                return {"skipped": True}
            host_name = placed.host
        tctx.check()
        with svc.db.read() as s:
            server = load(s, server_id)
            if server is None or server.task_state == states.DELETING:
                return {"skipped": True}
            s.expunge(server)
        network_info = netinfo.allocate(svc, server, host_name)
        tctx.check()
        with tctx.fenced_write() as s:
            current = load(s, server_id, lock=True)
            if current is None or current.task_state == states.DELETING:
                return {"skipped": True}
            current.network_info = network_info
            if not unshelve:
                current.task_state = states.SPAWNING
            current.updated_at = utcnow()
            s.flush()
            image_id = (current.system_metadata or {}).get("shelved_image_id") if unshelve \
                else None
            payload = specs.task_payload(svc, current, image_id=image_id, unshelve=unshelve)
            svc.cloud.tasks.enqueue(s, kinds.SPAWN, payload, host=host_name,
                                    resource_key=kinds.resource_key(server_id))
        return {"host": host_name}
    except scheduling.NoValidHost as exc:
        raise _task_failed(exc.message) from None
    except ApiError as exc:
        LOG.info("build of %s failed: %s", server_id, exc.message)
        raise _task_failed(f"Build of instance {server_id} aborted: {exc.message}") from None


def release_network(svc: ComputeService, tctx: TaskContext) -> dict[str, Any] | None:
    server_id = tctx.payload["server"]
    network_info = tctx.payload.get("network_info") or []
    netinfo.release(svc, server_id, network_info, partial=bool(tctx.payload.get("partial")))
    if tctx.payload.get("partial"):
        return None
    with tctx.fenced_write() as s:
        server = s.get(Server, server_id)
        if server is not None and not server.deleted:
            server.network_info = []
    return None


async def _chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    import asyncio

    with open(path, "rb") as fh:
        while True:
            data = await asyncio.to_thread(fh.read, size)
            if not data:
                return
            yield data


async def upload_image(svc: ComputeService, tctx: TaskContext) -> dict[str, Any] | None:
    """Stream the snapshot file at ``path`` into image ``image_id``, then remove the file."""
    import asyncio

    from onestack.common.auth import AuthContext
    from onestack.image import interface as image_api

    payload = tctx.payload
    ctx = AuthContext(token="", user_id=payload["user_id"], project_id=payload["project_id"],
                      roles=("member", "reader"))
    if payload.get("delete"):
        try:
            await asyncio.to_thread(image_api.delete_image, svc.cloud, ctx, payload["image_id"])
        except ApiError:
            pass
        return None
    path = Path(payload["path"])
    try:
        if not path.exists():
            raise _task_failed(f"the snapshot of {payload['server']} is gone")
        await image_api.upload_image_data(svc.cloud, ctx, payload["image_id"], _chunks(path),
                                          size=path.stat().st_size)
    except ApiError as exc:
        try:
            await asyncio.to_thread(image_api.delete_image, svc.cloud, ctx, payload["image_id"])
        except ApiError:
            pass
        raise _task_failed(f"Uploading the snapshot failed: {exc.message}") from None
    finally:
        path.unlink(missing_ok=True)
    if "rotation" in payload:
        await asyncio.to_thread(rotate_backups, svc, ctx, payload)
    return {"image_id": payload["image_id"]}


def rotate_backups(svc: ComputeService, ctx: AuthContext, payload: dict[str, Any]) -> None:
    """Nova's backup rotation: of the server's backups of this type, keep the
    ``rotation`` newest, delete the rest."""
    from onestack.image import interface as image_api

    backups = image_api.list_images(svc.cloud, ctx, {
        "instance_uuid": payload["server"], "image_type": "backup",
        "backup_type": str(payload["backup_type"]), "sort_key": "created_at",
        "sort_dir": "desc"})
    for image in backups[int(payload["rotation"]):]:
        try:
            image_api.delete_image(svc.cloud, ctx, image["id"])
        except ApiError as exc:
            LOG.warning("backup %s of %s not rotated out: %s", image["id"], payload["server"],
                        exc.message)
