"""What the server service modules share: finding a server as the caller may
see it, Nova's state and lock checks, instance actions and their events, and
the request id they are recorded under."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.compute.models import InstanceAction, InstanceActionEvent, Server

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# The id of the API request being served (set by the API for each call).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("compute_request_id",
                                                                 default="")

SERVERS = "os_compute_api:servers:"


def not_found(server_id: str) -> NotFound:
    return NotFound(f"Instance {server_id} could not be found.")


def target(server: Server) -> dict[str, Any]:
    return {"project_id": server.project_id, "user_id": server.user_id}


def load(s: Session, server_id: str, *, lock: bool = False) -> Server | None:
    stmt = select(Server).where(Server.id == server_id, Server.deleted.is_(False))
    if lock and s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return s.execute(stmt).scalars().first()


def find(svc: ComputeService, ctx: AuthContext, s: Session, server_id: str, rule: str,
         *, lock: bool = False) -> Server:
    """The server, if it exists and ``rule`` allows ``ctx`` on it; 404 if it
    does not exist or belongs to a project the caller cannot see (as Nova
    answers), 403 if the rule refuses an admin-visible one."""
    server = load(s, server_id, lock=lock)
    if server is None:
        raise not_found(server_id)
    if server.project_id != ctx.project_id and not svc.is_admin(ctx):
        raise not_found(server_id)
    svc.authorize(rule, ctx, target(server))
    return server


def get(svc: ComputeService, ctx: AuthContext, server_id: str, rule: str) -> Server:
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, rule)
        s.expunge(server)
        return server


def check_state(server: Server, method: str, *, vm_states: Iterable[str] | None = None,
                task_states: Iterable[str | None] | None = (None,),
                must_have_launched: bool = True) -> None:
    """Nova's ``check_instance_state``: 409 ``Cannot '<method>' instance <id>
    while it is in <attr> <state>``."""
    if vm_states is not None and server.vm_state not in set(vm_states):
        raise Conflict(f"Cannot '{method}' instance {server.id} while it is in vm_state "
                       f"{server.vm_state}")
    if task_states is not None and server.task_state not in set(task_states):
        raise Conflict(f"Cannot '{method}' instance {server.id} while it is in task_state "
                       f"{server.task_state}")
    if must_have_launched and server.launched_at is None:
        raise Conflict(f"Cannot '{method}' instance {server.id} while it is in launched_at None")


def check_locked(svc: ComputeService, ctx: AuthContext, server: Server) -> None:
    """Nova's ``check_instance_lock``: a locked server may be changed only by
    an admin (or, when its owner locked it, by the owner's project)."""
    if not server.locked:
        return
    if svc.is_admin(ctx):
        return
    raise Conflict(f"Instance {server.id} is locked")


def start_action(s: Session, server: Server, action: str, ctx: AuthContext | None,
                 *, message: str | None = None) -> InstanceAction:
    """Record an instance action (``os-instance-actions``) for this request."""
    now = utcnow()
    row = InstanceAction(
        server_id=server.id, action=action, request_id=REQUEST_ID.get() or _new_request_id(),
        user_id=ctx.user_id if ctx is not None else None,
        project_id=ctx.project_id if ctx is not None else server.project_id,
        start_time=now, message=message, updated_at=now,
    )
    s.add(row)
    s.flush()
    return row


def _new_request_id() -> str:
    from onestack.common.requestid import new_request_id

    return new_request_id()


def latest_action(s: Session, server_id: str, action: str | None = None) -> InstanceAction | None:
    stmt = select(InstanceAction).where(InstanceAction.server_id == server_id)
    if action is not None:
        stmt = stmt.where(InstanceAction.action == action)
    return s.execute(stmt.order_by(InstanceAction.id.desc()).limit(1)).scalars().first()


def event_start(s: Session, action_id: int, event: str, host: str | None) -> InstanceActionEvent:
    row = InstanceActionEvent(action_id=action_id, event=event, start_time=utcnow(), host=host)
    s.add(row)
    s.flush()
    return row


def event_finish(s: Session, action_id: int, event: str, *, host: str | None,
                 error: str | None = None, details: str | None = None,
                 started_at: datetime | None = None) -> None:
    """Finish the event (starting it if it was not), and the action with it:
    ``Success`` or ``Error`` (the action's message ``Error`` too, as Nova)."""
    now = utcnow()
    row = s.execute(
        select(InstanceActionEvent).where(InstanceActionEvent.action_id == action_id,
                                          InstanceActionEvent.event == event)
        .order_by(InstanceActionEvent.id.desc()).limit(1)
    ).scalars().first()
    if row is None:
        row = InstanceActionEvent(action_id=action_id, event=event,
                                  start_time=started_at or now, host=host)
        s.add(row)
    row.finish_time = now
    row.result = "Error" if error else "Success"
    row.host = host
    if error:
        row.traceback = error
        row.details = details or error
    action = s.get(InstanceAction, action_id)
    if action is not None:
        action.finish_time = now
        action.updated_at = now
        if error:
            action.message = "Error"
    s.flush()


def fault(message: str, code: int = 500, details: str = "") -> dict[str, Any]:
    return {"code": code, "message": message[:255], "details": details,
            "created": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


def touch(server: Server) -> None:
    server.updated_at = utcnow()
