"""Server actions about disks and images: rebuild, resize (with confirm and
revert), ``createImage``, ``createBackup``, shelve (and shelve-offload), unshelve.

Snapshots become images through the image service's interface: the image
record is made here (queued, owned by the server's project, with the boot
image's properties as Nova copies them), the host writes the disk to a file
and the conductor streams it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, BadRequest, Conflict
from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import INJECTED_FILES, Server
from onestack.compute.scheduler import claims
from onestack.compute.service import boot_checks as checks
from onestack.compute.service import migrations, scheduling, specs
from onestack.compute.service._common import SERVERS, check_state, find, start_action
from onestack.compute.service.actions import _begin, enqueue_host
from onestack.compute.service.outcome_steps import MIGRATION
from onestack.compute.views.flavors import snapshot as flavor_snapshot

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# system_metadata image_* keys that are not image properties to copy.
_NOT_PROPERTIES = {"min_ram", "min_disk", "disk_format", "container_format", "base_image_ref",
                   "size", "checksum"}


def rebuild(svc: ComputeService, ctx: AuthContext, server_id: str, image_ref: str,
            changes: dict[str, Any]) -> Server:
    image_id = checks.image_id_from_ref(image_ref)
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, SERVERS + "rebuild", "rebuild",
                        vm_states=[states.ACTIVE, states.STOPPED, states.ERROR])
        if "trusted_certs" in changes:
            svc.authorize(SERVERS + "rebuild:trusted_certs", ctx,
                          {"project_id": server.project_id, "user_id": server.user_id})
        try:
            image = checks.get_image(svc, ctx, image_id)
        except BadRequest:
            raise BadRequest("Cannot find image for rebuild") from None
        _check_image_against(server.flavor, image)
        if "metadata" in changes:
            checks.check_metadata(svc, s, server.project_id, changes["metadata"])
        if "user_data" in changes:
            checks.check_user_data(changes["user_data"])
        personality = changes.pop("personality", None) or []
        checks.check_injected_files(svc, s, server.project_id, personality)
        if "key_name" in changes:
            key_name = changes.pop("key_name")
            if key_name is None:
                server.key_name = None
                server.key_data = None
            else:
                server.key_name = key_name
                server.key_data = checks.find_keypair(s, ctx.user_id, key_name).public_key
        auto_disk_config = changes.pop("auto_disk_config", None)
        for field, value in changes.items():
            setattr(server, "metadata_" if field == "metadata" else field, value)
        props = checks.image_properties(image)
        # the rebuilt server's config drive has the files given now, if any
        sysmeta = {k: v for k, v in (server.system_metadata or {}).items()
                   if not k.startswith("image_") and k != INJECTED_FILES}
        if personality:
            sysmeta[INJECTED_FILES] = [list(f) for f in personality]
        if auto_disk_config is not None:
            sysmeta["auto_disk_config"] = auto_disk_config
        sysmeta.update({f"image_{k}": v for k, v in props.items()})
        for key in ("min_ram", "min_disk", "disk_format", "container_format"):
            if image.get(key) is not None:
                sysmeta[f"image_{key}"] = str(image[key])
        sysmeta["image_base_image_ref"] = image_id
        server.system_metadata = sysmeta
        server.image_ref = image_id
        stopped = server.vm_state == states.STOPPED
        start_action(s, server, "rebuild", ctx)
        server.task_state = states.REBUILDING
        server.updated_at = utcnow()
        s.flush()
        payload = specs.task_payload(svc, server, image_id=image_id, power_on=not stopped)
        if stopped:
            payload["vm_state_after"] = states.STOPPED
            payload["power_after"] = 4
        enqueue_host(svc, s, server, kinds.REBUILD, payload)
        s.flush()
        s.expunge(server)
        return server


def _check_image_against(flavor: dict[str, Any], image: dict[str, Any]) -> None:
    if image.get("status") != "active":
        raise BadRequest(f"Image {image['id']} is not active.")
    if int(flavor.get("memory_mb") or 0) < int(image.get("min_ram") or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    dest = int(flavor.get("root_gb") or 0) << 30
    if dest:
        size = int(image.get("size") or 0)
        min_disk = int(image.get("min_disk") or 0) << 30
        if size > dest:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk is "
                             f"{dest} bytes, image is {size} bytes.")
        if min_disk > dest:
            raise BadRequest(f"Flavor's disk is smaller than the minimum size specified in image "
                             f"metadata. Flavor disk is {dest} bytes, minimum size is "
                             f"{min_disk} bytes.")


def resize(svc: ComputeService, ctx: AuthContext, server_id: str, flavor_ref: Any,
           auto_disk_config: bool | None = None) -> None:
    """Resize on the server's own host (Nova's allow_resize_to_same_host): the
    old flavor's claim moves to the migration, the new one is claimed."""
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, SERVERS + "resize", "resize",
                        vm_states=[states.ACTIVE, states.STOPPED])
        try:
            flavor = checks.find_flavor(svc, ctx, s, flavor_ref)
        except BadRequest as exc:
            raise BadRequest(exc.message) from None
        if flavor.flavorid == server.flavor_id:
            raise BadRequest("When resizing, instances must change flavor!")
        if flavor.root_gb < int(server.flavor.get("root_gb") or 0) and flavor.root_gb != 0:
            raise BadRequest("Resize error: Unable to resize disk down.")
        new = flavor_snapshot(flavor)
        _check_resize_quota(svc, s, server, new)
        image_min = (server.system_metadata or {})
        if flavor.memory_mb < int(image_min.get("image_min_ram") or 0):
            raise BadRequest("Flavor's memory is too small for requested image.")
        _claim_same_host(svc, s, server, new)
        migrations.begin_resize(s, server, new)
        if auto_disk_config is not None:
            server.system_metadata = {**(server.system_metadata or {}),
                                      "auto_disk_config": auto_disk_config}
        start_action(s, server, "resize", ctx)
        server.new_flavor = new
        server.task_state = states.RESIZE_PREP
        server.updated_at = utcnow()
        s.flush()
        stopped = server.vm_state == states.STOPPED
        payload = specs.task_payload(svc, server, flavor=new, power_on=not stopped)
        if stopped:
            payload["power_after"] = 4
        enqueue_host(svc, s, server, kinds.RESIZE, payload)


def _check_resize_quota(svc: ComputeService, s: Session, server: Server,
                        new: dict[str, Any]) -> None:
    cores = int(new["vcpus"]) - int(server.flavor.get("vcpus") or 0)
    ram = int(new["memory_mb"]) - int(server.flavor.get("memory_mb") or 0)
    deltas = {k: v for k, v in (("cores", cores), ("ram", ram)) if v > 0}
    if not deltas:
        return
    from onestack.common.quota import OverQuota

    try:
        svc.quotas.check(s, server.project_id, deltas)
    except OverQuota as exc:
        over = exc.overs[0]
        raise _quota_error(over.resource, over.requested, over.in_use, over.limit) from None


def _quota_error(resource: str, requested: int, used: int, limit: int) -> ApiError:
    from onestack.common.errors import Forbidden

    return Forbidden(f"Quota exceeded for {resource}: Requested {requested}, but already used "
                     f"{used} of {limit} {resource}")


def _claim_same_host(svc: ComputeService, s: Session, server: Server,
                     new: dict[str, Any]) -> None:
    if server.host is None:
        raise Conflict(f"Cannot 'resize' instance {server.id} while it is in vm_state "
                       f"{server.vm_state}")
    states_ = [h for h in scheduling.iter_hosts(svc) if h.host == server.host]
    if not states_ or not states_[0].alive:
        raise BadRequest("No valid host was found. The server's host is not available.")
    claims.move(s, server.id, MIGRATION + server.id)
    if not claims.claim(s, states_[0], server.id, server.id, int(new["vcpus"]),
                        int(new["memory_mb"]), scheduling.disk_gb(new)):
        raise BadRequest("No valid host was found. There are not enough hosts available.")


def confirm_resize(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, SERVERS + "confirm_resize", lock=True)
        check_state(server, "confirmResize", vm_states=[states.RESIZED], task_states=None)
        if not server.old_flavor:
            raise BadRequest("Instance has not been resized.")
        _confirm_or_revert(svc, ctx, s, server, "confirmResize", kinds.CONFIRM_RESIZE, None)


def revert_resize(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, SERVERS + "revert_resize", lock=True)
        check_state(server, "revertResize", vm_states=[states.RESIZED], task_states=None)
        if not server.old_flavor:
            raise BadRequest("Instance has not been resized.")
        _confirm_or_revert(svc, ctx, s, server, "revertResize", kinds.REVERT_RESIZE,
                           states.RESIZE_REVERTING)


def _confirm_or_revert(svc: ComputeService, ctx: AuthContext, s: Session, server: Server,
                       action: str, kind: str, task_state: str | None) -> None:
    from onestack.compute.service._common import check_locked

    check_locked(svc, ctx, server)
    if server.task_state is not None:
        raise Conflict(f"Cannot '{action}' instance {server.id} while it is in task_state "
                       f"{server.task_state}")
    stopped = server.power_state == 4
    migrations.set_status(s, server.id, "confirming" if kind == kinds.CONFIRM_RESIZE
                          else "reverting", was=("finished",))
    start_action(s, server, action, ctx)
    server.task_state = task_state
    server.updated_at = utcnow()
    s.flush()
    payload: dict[str, Any] = {"vm_state_after": states.STOPPED if stopped else states.ACTIVE}
    if kind == kinds.REVERT_RESIZE:
        payload.update(specs.task_payload(svc, server, flavor=server.old_flavor,
                                          power_on=not stopped))
        if stopped:
            payload["power_after"] = 4
    enqueue_host(svc, s, server, kind, payload)


def _snapshot_image(svc: ComputeService, ctx: AuthContext, server: Server, name: str,
                    metadata: dict[str, Any], image_type: str) -> dict[str, Any]:
    from onestack.image import interface as image_api

    sysmeta = server.system_metadata or {}
    props: dict[str, Any] = {
        k[len("image_"):]: v for k, v in sysmeta.items()
        if k.startswith("image_") and k[len("image_"):] not in _NOT_PROPERTIES
    }
    props.update(instance_uuid=server.id, user_id=ctx.user_id, image_type=image_type,
                 owner_project_name=ctx.project_name or "", owner_user_name=ctx.user_name or "")
    if sysmeta.get("image_base_image_ref"):
        props["base_image_ref"] = sysmeta["image_base_image_ref"]
    props.update({k: str(v) for k, v in metadata.items()})
    body: dict[str, Any] = {
        "name": name, "disk_format": "qcow2", "container_format": "bare",
        "min_ram": int(sysmeta.get("image_min_ram") or 0),
        "min_disk": max(int(sysmeta.get("image_min_disk") or 0),
                        int((server.flavor or {}).get("root_gb") or 0)),
        **{k: v for k, v in props.items() if k not in ("name",)},
    }
    if ctx.project_id != server.project_id:
        body["visibility"] = "shared"
    owner = ctx if ctx.project_id == server.project_id else ctx
    return image_api.create_image(svc.cloud, owner, body)


def create_image(svc: ComputeService, ctx: AuthContext, server_id: str, name: str,
                 metadata: dict[str, Any]) -> str:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, SERVERS + "create_image", lock=True)
        check_state(server, "createImage", vm_states=[states.ACTIVE, states.STOPPED,
                                                      states.PAUSED, states.SUSPENDED])
        checks.check_metadata(svc, s, server.project_id, metadata)
        image = _snapshot_image(svc, ctx, server, name, metadata, "snapshot")
        start_action(s, server, "createImage", ctx)
        server.task_state = states.IMAGE_SNAPSHOT
        server.updated_at = utcnow()
        enqueue_host(svc, s, server, kinds.SNAPSHOT, {
            "image_id": image["id"], "user_id": ctx.user_id, "project_id": ctx.project_id})
        return str(image["id"])


def create_backup(svc: ComputeService, ctx: AuthContext, server_id: str, name: str,
                  backup_type: str, rotation: int, metadata: dict[str, Any]) -> str:
    """A snapshot kept as a backup of ``backup_type``; once uploaded, only
    the ``rotation`` newest backups of that type are kept (Nova's rotation)."""
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-create-backup", lock=True)
        check_state(server, "createBackup", vm_states=[states.ACTIVE, states.STOPPED])
        checks.check_metadata(svc, s, server.project_id, metadata)
        image = _snapshot_image(svc, ctx, server, name,
                                {**metadata, "backup_type": backup_type}, "backup")
        start_action(s, server, "createBackup", ctx)
        server.task_state = states.IMAGE_BACKUP
        server.updated_at = utcnow()
        enqueue_host(svc, s, server, kinds.SNAPSHOT, {
            "image_id": image["id"], "user_id": ctx.user_id, "project_id": ctx.project_id,
            "backup_type": backup_type, "rotation": rotation})
        return str(image["id"])


def shelve(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-shelve:shelve", "shelve",
                        vm_states=[states.ACTIVE, states.STOPPED, states.PAUSED,
                                   states.SUSPENDED])
        image = _snapshot_image(svc, ctx, server, f"{server.name}-shelved", {}, "snapshot")
        start_action(s, server, "shelve", ctx)
        server.task_state = states.SHELVING
        server.updated_at = utcnow()
        enqueue_host(svc, s, server, kinds.SHELVE, {
            "image_id": image["id"], "user_id": ctx.user_id, "project_id": ctx.project_id})


def shelve_offload(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    """Shelved servers are offloaded at once here (Nova's shelved_offload_time 0)."""
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-shelve:shelve_offload")
        if server.vm_state not in (states.SHELVED, states.SHELVED_OFFLOADED):
            raise Conflict(f"Cannot 'shelveOffload' instance {server.id} while it is in "
                           f"vm_state {server.vm_state}")


def unshelve(svc: ComputeService, ctx: AuthContext, server_id: str,
             zone: str | None, host: str | None) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-shelve:unshelve", "unshelve",
                        vm_states=[states.SHELVED, states.SHELVED_OFFLOADED])
        if host is not None:
            svc.authorize("os_compute_api:os-shelve:unshelve_to_host", ctx,
                          {"project_id": server.project_id, "user_id": server.user_id})
        if zone is not None:
            checks.check_zone(svc, zone)
            server.requested_availability_zone = zone
            server.availability_zone = zone
        hints = dict(server.scheduler_hints or {})
        hints.pop("_requested_host", None)
        if host is not None:
            hints["_requested_host"] = host
        server.scheduler_hints = hints
        start_action(s, server, "unshelve", ctx)
        server.task_state = states.UNSHELVING
        server.updated_at = utcnow()
        svc.cloud.tasks.enqueue(s, kinds.BUILD, {"server": server.id, "unshelve": True},
                                resource_key=kinds.resource_key(server.id))
