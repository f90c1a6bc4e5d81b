"""Server actions that change power and lock: reboot, stop, start, pause,
unpause, suspend, resume, rescue, unrescue, lock, unlock, reset state; and
the console output.

Each checks policy, the lock and Nova's allowed states (409 with Nova's
message otherwise), records an instance action, sets the task state and
hands the work to the server's host as a task; the task's outcome moves the
server to its next state (``service/outcomes.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict
from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.models import Server
from onestack.compute.service import specs
from onestack.compute.service._common import (
    SERVERS,
    check_locked,
    check_state,
    find,
    start_action,
)

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

ALLOW_SOFT_REBOOT = [states.ACTIVE]
ALLOW_HARD_REBOOT = [states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED, states.ERROR]
ALLOW_REBOOT_TASKS = [None, states.REBOOTING, states.REBOOT_PENDING, states.REBOOT_STARTED,
                      states.REBOOTING_HARD, states.RESUMING, states.UNPAUSING, states.PAUSING,
                      states.SUSPENDING]


def enqueue_host(svc: ComputeService, s: Session, server: Server, kind: str,
                 payload: dict[str, Any]) -> None:
    svc.cloud.tasks.enqueue(s, kind, {"server": server.id, **payload}, host=server.host,
                            resource_key=kinds.resource_key(server.id))


def _begin(svc: ComputeService, ctx: AuthContext, s: Session, server_id: str, rule: str,
           method: str, *, vm_states: Iterable[str] | None,
           task_states: Iterable[str | None] | None = (None,), lock: bool = True,
           must_have_launched: bool = True) -> Server:
    server = find(svc, ctx, s, server_id, rule, lock=True)
    if lock:
        check_locked(svc, ctx, server)
    check_state(server, method, vm_states=vm_states, task_states=task_states,
                must_have_launched=must_have_launched)
    return server


def _start(svc: ComputeService, ctx: AuthContext, s: Session, server: Server, action: str,
           task_state: str, kind: str, payload: dict[str, Any]) -> None:
    start_action(s, server, action, ctx)
    server.task_state = task_state
    server.updated_at = utcnow()
    enqueue_host(svc, s, server, kind, payload)


def reboot(svc: ComputeService, ctx: AuthContext, server_id: str, hard: bool) -> None:
    with svc.db.write() as s:
        if hard:
            server = _begin(svc, ctx, s, server_id, SERVERS + "reboot", "reboot",
                            vm_states=ALLOW_HARD_REBOOT, task_states=ALLOW_REBOOT_TASKS)
        else:
            server = _begin(svc, ctx, s, server_id, SERVERS + "reboot", "reboot",
                            vm_states=ALLOW_SOFT_REBOOT, task_states=[None])
        payload = specs.task_payload(svc, server, hard=hard)
        _start(svc, ctx, s, server, "reboot",
               states.REBOOTING_HARD if hard else states.REBOOTING, kinds.REBOOT, payload)


def stop(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, SERVERS + "stop", "stop",
                        vm_states=[states.ACTIVE, states.ERROR])
        _start(svc, ctx, s, server, "stop", states.POWERING_OFF, kinds.STOP, {})


def start(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, SERVERS + "start", "start",
                        vm_states=[states.STOPPED])
        _start(svc, ctx, s, server, "start", states.POWERING_ON, kinds.START,
               specs.task_payload(svc, server))


def pause(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-pause-server:pause",
                        "pause", vm_states=[states.ACTIVE])
        _start(svc, ctx, s, server, "pause", states.PAUSING, kinds.PAUSE, {})


def unpause(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-pause-server:unpause",
                        "unpause", vm_states=[states.PAUSED])
        _start(svc, ctx, s, server, "unpause", states.UNPAUSING, kinds.UNPAUSE, {})


def suspend(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-suspend-server:suspend",
                        "suspend", vm_states=[states.ACTIVE])
        _start(svc, ctx, s, server, "suspend", states.SUSPENDING, kinds.SUSPEND, {})


def resume(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-suspend-server:resume",
                        "resume", vm_states=[states.SUSPENDED])
        _start(svc, ctx, s, server, "resume", states.RESUMING, kinds.RESUME,
               specs.task_payload(svc, server))


def rescue(svc: ComputeService, ctx: AuthContext, server_id: str,
           rescue_image: str | None) -> None:
    from onestack.compute.service.boot_checks import get_image

    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-rescue", "rescue",
                        vm_states=[states.ACTIVE, states.STOPPED, states.ERROR])
        image_id = rescue_image or server.image_ref
        if not image_id:
            raise BadRequest("Cannot rescue a volume-backed instance")
        image = get_image(svc, ctx, image_id)
        # a stable device rescue when the rescue image asks for one
        stable = {k: str(image[k]) for k in ("hw_rescue_device", "hw_rescue_bus")
                  if image.get(k) is not None}
        payload = specs.task_payload(svc, server, previous_vm_state=server.vm_state,
                                     rescue_image=specs._image_ref(image), rescue_devices=stable)
        _start(svc, ctx, s, server, "rescue", states.RESCUING, kinds.RESCUE, payload)


def unrescue(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-unrescue", "unrescue",
                        vm_states=[states.RESCUED])
        _start(svc, ctx, s, server, "unrescue", states.UNRESCUING, kinds.UNRESCUE,
               specs.task_payload(svc, server))


def lock(svc: ComputeService, ctx: AuthContext, server_id: str, reason: str | None) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-lock-server:lock", lock=True)
        start_action(s, server, "lock", ctx)
        server.locked = True
        server.locked_by = "admin" if svc.is_admin(ctx) and ctx.project_id != server.project_id \
            else "owner"
        server.locked_reason = reason
        server.updated_at = utcnow()


def unlock(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-lock-server:unlock", lock=True)
        expected = "owner" if server.project_id == ctx.project_id else "admin"
        if server.locked and server.locked_by != expected:
            svc.authorize("os_compute_api:os-lock-server:unlock:unlock_override", ctx,
                          {"project_id": server.project_id, "user_id": server.user_id})
        start_action(s, server, "unlock", ctx)
        server.locked = False
        server.locked_by = None
        server.locked_reason = None
        server.updated_at = utcnow()


def reset_state(svc: ComputeService, ctx: AuthContext, server_id: str, state: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-admin-actions:reset_state",
                      lock=True)
        start_action(s, server, "resetState", ctx)
        server.vm_state = states.ERROR if state == "error" else states.ACTIVE
        server.task_state = None
        server.updated_at = utcnow()


def console_output_target(svc: ComputeService, ctx: AuthContext, server_id: str) -> Server:
    """The server whose console is asked for, if it can have one (409 otherwise)."""
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-console-output")
        s.expunge(server)
    if server.host is None or server.vm_state == states.BUILDING:
        raise Conflict("Instance not yet ready")
    if server.task_state in (states.DELETING, states.MIGRATING):
        raise Conflict(f"Cannot 'get_console_output' instance {server.id} while it is in "
                       f"task_state {server.task_state}")
    return server


# --- changePassword: the host's driver is called while the API waits ----------------------


def change_password_begin(svc: ComputeService, ctx: AuthContext,
                          server_id: str) -> tuple[str, str | None, str]:
    """Nova's ``set_admin_password`` up to the host call: policy, the lock, an
    ACTIVE server with no task, the instance action, ``updating_password``.
    Returns the server's id and host, and the user whose password is set (the image's
    ``os_admin_user``, else Administrator on Windows, root elsewhere)."""
    with svc.db.write() as s:
        server = _begin(svc, ctx, s, server_id, "os_compute_api:os-admin-password",
                        "changePassword", vm_states=[states.ACTIVE])
        start_action(s, server, "changePassword", ctx)
        server.task_state = states.UPDATING_PASSWORD
        server.updated_at = utcnow()
        sysmeta = server.system_metadata or {}
        user = sysmeta.get("image_os_admin_user") or (
            "Administrator" if sysmeta.get("image_os_type") == "windows" else "root")
        return server.id, server.host, str(user)


def change_password_end(svc: ComputeService, server_id: str, password: str | None) -> None:
    """The task state back to none, whatever the host call gave; a password
    that was set is kept encrypted with the server's SSH RSA key, for
    ``os-server-password`` (Nova's libvirt driver does so)."""
    with svc.db.write() as s:
        server = s.get(Server, server_id)
        if server is None:
            return
        if server.task_state == states.UPDATING_PASSWORD:
            server.task_state = None
            server.updated_at = utcnow()
        key = server.key_data or ""
        if password is not None and key.startswith("ssh-rsa"):
            import base64

            from onestack.compute.keys import ssh_encrypt_text

            encrypted = ssh_encrypt_text(key, password)
            if encrypted is not None:
                server.password = base64.b64encode(encrypted).decode()
