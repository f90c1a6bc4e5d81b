"""``os-instance-actions``: what was done to a server, by whom, with events.

Deleted servers' actions stay readable (2.21+); events show to everyone
from 2.51, their tracebacks and hosts to admins (Nova's ``events`` rule),
their ``hostId`` from 2.62 and ``details`` from 2.84.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, NotFound
from onestack.common.ids import parse_isotime
from onestack.common.microversions import APIVersion
from onestack.common.pagination import PageParams
from onestack.compute.models import InstanceAction, InstanceActionEvent, Server
from onestack.compute.service._common import not_found
from onestack.compute.service._paging import page_rows
from onestack.compute.views.times import micro

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-instance-actions:"


def _server(svc: ComputeService, ctx: AuthContext, server_id: str, version: APIVersion,
            rule: str) -> Server:
    with svc.db.read() as s:
        stmt = select(Server).where(Server.id == server_id)
        if not version.matches("2.21"):
            stmt = stmt.where(Server.deleted.is_(False))
        server = s.execute(stmt).scalars().first()
        if server is None or (server.project_id != ctx.project_id and not svc.is_admin(ctx)):
            raise not_found(server_id)
        svc.authorize(_ROOT + rule, ctx, {"project_id": server.project_id})
        s.expunge(server)
        return server


def _action(row: InstanceAction, version: APIVersion) -> dict[str, Any]:
    out = {"action": row.action, "instance_uuid": row.server_id, "request_id": row.request_id,
           "user_id": row.user_id, "project_id": row.project_id,
           "start_time": micro(row.start_time), "message": row.message}
    if version.matches("2.58"):
        out["updated_at"] = micro(row.updated_at)
    return out


def list_actions(svc: ComputeService, ctx: AuthContext, server_id: str, params: Any,
                 version: APIVersion) -> tuple[list[dict[str, Any]], int | None]:
    server = _server(svc, ctx, server_id, version, "list")
    stmt = select(InstanceAction).where(InstanceAction.server_id == server.id)
    page = PageParams()
    if version.matches("2.58"):
        page = PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False)
        since = before = None
        try:
            if "changes-since" in params:
                since = parse_isotime(params["changes-since"])
                stmt = stmt.where(InstanceAction.updated_at >= since)
            if "changes-before" in params:
                before = parse_isotime(params["changes-before"])
                stmt = stmt.where(InstanceAction.updated_at <= before)
        except ValueError:
            raise BadRequest("Invalid filter field: changes-since.") from None
        if since is not None and before is not None and before < since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
    with svc.db.read() as s:
        if page.marker is not None:
            found = s.execute(stmt.where(InstanceAction.request_id == page.marker)).first()
            if found is None:
                raise BadRequest(f"Marker {page.marker} could not be found.")
        rows = page_rows(s, stmt, InstanceAction, page, sort_keys=["start_time"],
                         sort_dirs=["desc"], marker_key="request_id")
        return [_action(r, version) for r in rows], page.limit


def show_action(svc: ComputeService, ctx: AuthContext, server_id: str, request_id: str,
                version: APIVersion) -> dict[str, Any]:
    server = _server(svc, ctx, server_id, version, "show")
    with svc.db.read() as s:
        row = s.execute(select(InstanceAction).where(InstanceAction.server_id == server.id,
                                                     InstanceAction.request_id == request_id)
                        .order_by(InstanceAction.id.desc())).scalars().first()
        if row is None:
            raise NotFound(f"Action {request_id} not found")
        out = _action(row, version)
        target = {"project_id": server.project_id}
        admin_events = svc.allowed(_ROOT + "events", ctx, target)
        if admin_events or version.matches("2.51"):
            details = version.matches("2.84") and svc.allowed(_ROOT + "events:details", ctx,
                                                              target)
            events = s.execute(select(InstanceActionEvent)
                               .where(InstanceActionEvent.action_id == row.id)
                               .order_by(InstanceActionEvent.id)).scalars()
            out["events"] = [_event(e, row.project_id or server.project_id, version,
                                    admin_events, details) for e in events]
        return out


def _event(event: InstanceActionEvent, project_id: str, version: APIVersion, admin: bool,
           details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event.event, "start_time": micro(event.start_time),
                           "finish_time": micro(event.finish_time), "result": event.result}
    if admin:
        out["traceback"] = event.traceback
        if version.matches("2.62"):
            out["host"] = event.host or ""
    if version.matches("2.62"):
        host = event.host or ""
        out["hostId"] = hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""
    if details:
        out["details"] = event.details
    return out
