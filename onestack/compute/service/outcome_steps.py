"""The kind-specific part of an outcome: flavors swapped by a resize and its
confirm or revert (with their claims), a snapshot's upload handed to the
conductor, a shelved server offloaded, a NIC dropped from the network cache.

:func:`apply` returns whether the action is finished (the server reaches its
stable state now) or continues in another task (a snapshot's upload).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import Server
from onestack.compute.scheduler import claims
from onestack.compute.service import migrations
from onestack.compute.service._common import event_finish, fault, latest_action
from onestack.compute.virt.base import PowerState

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

MIGRATION = "migration:"
# The instance-action event an upload finishes, by what it was for.
_EVENTS = {"shelve": "compute_shelve_offload_instance", "backup": "compute_backup_instance",
           "snapshot": "compute_snapshot_instance"}


def _sizes(server: Server, flavor: dict[str, Any]) -> None:
    server.vcpus = int(flavor["vcpus"])
    server.memory_mb = int(flavor["memory_mb"])
    server.root_gb = int(flavor["root_gb"])
    server.flavor_id = str(flavor["flavorid"])


def _upload(svc: ComputeService, s: Session, server: Server, payload: Mapping[str, Any],
            result: Mapping[str, Any], then: str) -> None:
    upload = {
        "server": server.id, "image_id": payload["image_id"], "path": result["path"],
        "user_id": payload.get("user_id") or server.user_id,
        "project_id": payload.get("project_id") or server.project_id, "then": then,
    }
    if "rotation" in payload:  # createBackup: keep the newest ``rotation`` backups
        upload.update(rotation=payload["rotation"], backup_type=payload["backup_type"])
    svc.cloud.tasks.enqueue(s, kinds.UPLOAD_IMAGE, upload, resource_key=f"upload:{server.id}")


def apply(svc: ComputeService, s: Session, server: Server, kind: str,
          payload: Mapping[str, Any], result: Mapping[str, Any]) -> bool:
    if kind == kinds.RESIZE:
        if server.new_flavor:
            server.old_flavor = server.flavor
            server.flavor = server.new_flavor
            server.new_flavor = None
            _sizes(server, server.flavor)
        migrations.set_status(s, server.id, "finished", was=("migrating",))
        return True
    if kind == kinds.CONFIRM_RESIZE:
        claims.release(s, MIGRATION + server.id)
        server.old_flavor = None
        migrations.set_status(s, server.id, "confirmed", was=("confirming", "finished"))
        return True
    if kind == kinds.REVERT_RESIZE:
        if server.old_flavor:
            server.flavor = server.old_flavor
            server.old_flavor = None
            _sizes(server, server.flavor)
        claims.release(s, server.id)
        claims.move(s, MIGRATION + server.id, server.id)
        migrations.set_status(s, server.id, "reverted", was=("reverting", "finished"))
        return True
    if kind == kinds.SNAPSHOT:
        server.task_state = states.IMAGE_UPLOADING
        _upload(svc, s, server, payload, result,
                "backup" if "rotation" in payload else "snapshot")
        return False
    if kind == kinds.SHELVE:
        server.task_state = states.SHELVING_IMAGE_UPLOADING
        server.power_state = int(PowerState.SHUTDOWN)
        _upload(svc, s, server, payload, result, "shelve")
        return False
    if kind == kinds.DETACH_INTERFACE:
        port_id = payload.get("port_id")
        gone = [v for v in server.network_info or [] if v["port_id"] == port_id]
        server.network_info = [v for v in server.network_info or [] if v["port_id"] != port_id]
        if gone:
            svc.cloud.tasks.enqueue(s, kinds.RELEASE_NETWORK, {
                "server": server.id, "network_info": gone, "partial": True,
            }, resource_key=kinds.resource_key(server.id))
        return True
    if kind == kinds.RESCUE:
        sysmeta = dict(server.system_metadata or {})
        sysmeta["rescue_previous_vm_state"] = payload.get("previous_vm_state", states.ACTIVE)
        server.system_metadata = sysmeta
        return True
    if kind == kinds.UNRESCUE:
        sysmeta = dict(server.system_metadata or {})
        sysmeta.pop("rescue_previous_vm_state", None)
        server.system_metadata = sysmeta
        return True
    return True


def failed(svc: ComputeService, s: Session, server: Server, kind: str,
           payload: Mapping[str, Any]) -> None:
    """Undo what the API did ahead of a host action that failed for good."""
    if kind == kinds.RESIZE:
        server.new_flavor = None
        claims.release(s, server.id)
        claims.move(s, MIGRATION + server.id, server.id)
        migrations.set_status(s, server.id, "error", was=("migrating",))
    elif kind in (kinds.CONFIRM_RESIZE, kinds.REVERT_RESIZE):
        migrations.set_status(s, server.id, "error", was=("confirming", "reverting"))
    elif kind == kinds.ATTACH_INTERFACE:
        port_id = payload.get("port_id")
        gone = [v for v in server.network_info or [] if v["port_id"] == port_id]
        server.network_info = [v for v in server.network_info or [] if v["port_id"] != port_id]
        if gone:
            svc.cloud.tasks.enqueue(s, kinds.RELEASE_NETWORK, {
                "server": server.id, "network_info": gone, "partial": True,
            }, resource_key=kinds.resource_key(server.id))
    elif kind in (kinds.SNAPSHOT, kinds.SHELVE) and payload.get("image_id"):
        _delete_image_later(svc, s, server, payload)


def _delete_image_later(svc: ComputeService, s: Session, server: Server,
                        payload: Mapping[str, Any]) -> None:
    svc.cloud.tasks.enqueue(s, kinds.UPLOAD_IMAGE, {
        "server": server.id, "image_id": payload["image_id"], "path": "", "delete": True,
        "user_id": payload.get("user_id") or server.user_id,
        "project_id": payload.get("project_id") or server.project_id,
    }, resource_key=f"upload:{server.id}")


def uploaded(svc: ComputeService, s: Session, payload: Mapping[str, Any]) -> None:
    server = s.get(Server, payload.get("server"))
    if server is None or server.deleted or payload.get("delete"):
        return
    now = utcnow()
    then = payload.get("then")
    action = latest_action(s, server.id)
    if then == "shelve":
        claims.release(s, server.id)
        sysmeta = dict(server.system_metadata or {})
        sysmeta.update(shelved_at=now.isoformat(), shelved_image_id=payload["image_id"],
                       shelved_host=server.host or "")
        server.system_metadata = sysmeta
        server.vm_state = states.SHELVED_OFFLOADED
        server.host = None
        server.node = None
        server.power_state = int(PowerState.SHUTDOWN)
        if action is not None:
            event_finish(s, action.id, "compute_shelve_offload_instance", host=None)
    elif action is not None:
        event_finish(s, action.id, _EVENTS.get(then or "", "compute_snapshot_instance"),
                     host=server.host)
    if server.task_state != states.DELETING:
        server.task_state = None
    server.updated_at = now


def upload_failed(svc: ComputeService, s: Session, payload: Mapping[str, Any],
                  reason: str) -> None:
    server = s.get(Server, payload.get("server"))
    if server is None or server.deleted or payload.get("delete"):
        return
    action = latest_action(s, server.id)
    if action is not None:
        event = _EVENTS.get(payload.get("then") or "", "compute_snapshot_instance")
        event_finish(s, action.id, event, host=server.host, error=reason)
    if server.task_state != states.DELETING:
        server.task_state = None
    server.fault = fault(reason)
    server.updated_at = utcnow()
