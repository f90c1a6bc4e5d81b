"""Moves of servers: the migration records of resizes (``os-migrations``),
and the cold and live migration actions, which need another host.

Resizes stay on the server's host here (Nova's allow_resize_to_same_host), so
a migration record is written for each (Nova's ``resize`` type) and follows
it: ``migrating`` while the host works, ``finished`` awaiting confirmation,
then ``confirming``/``confirmed`` or ``reverting``/``reverted`` (``error`` if
the host failed it). Moving a server to another host (its disks copied over)
is not offered: with no other host up, Nova's own answer is given (no valid
host); with one, the refusal says migration is not offered.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, NotFound, NotImplementedYet
from onestack.common.ids import parse_isotime, utcnow
from onestack.common.microversions import APIVersion
from onestack.common.pagination import PageParams
from onestack.compute import states
from onestack.compute.models import Migration, Server
from onestack.compute.service import scheduling
from onestack.compute.service._common import SERVERS, check_locked, check_state, find
from onestack.compute.service._paging import page_rows
from onestack.compute.views.times import micro

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-migrations:"
_MOVE = "os_compute_api:os-migrate-server:"
RESIZE = "resize"


# --- the records of resizes ---------------------------------------------------------------


def begin_resize(s: Session, server: Server, new_flavor: dict[str, Any]) -> None:
    now = utcnow()
    s.add(Migration(
        uuid=str(uuid.uuid4()), server_id=server.id, project_id=server.project_id,
        user_id=server.user_id, migration_type=RESIZE, status="migrating",
        source_compute=server.host, dest_compute=server.host, source_node=server.node,
        dest_node=server.node, dest_host=None,
        old_instance_type_id=(server.flavor or {}).get("id"),
        new_instance_type_id=new_flavor.get("id"), created_at=now, updated_at=now))


def set_status(s: Session, server_id: str, status: str, *, was: tuple[str, ...]) -> None:
    """The server's latest resize record, if it is in one of ``was``, moves to ``status``."""
    row = s.execute(select(Migration).where(Migration.server_id == server_id)
                    .order_by(Migration.id.desc()).limit(1)).scalars().first()
    if row is not None and row.status in was:
        row.status = status
        row.updated_at = utcnow()


# --- os-migrations ---------------------------------------------------------------------


def view(row: Migration, version: APIVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created_at": micro(row.created_at), "dest_compute": row.dest_compute,
        "dest_host": row.dest_host, "dest_node": row.dest_node, "id": row.id,
        "instance_uuid": row.server_id, "new_instance_type_id": row.new_instance_type_id,
        "old_instance_type_id": row.old_instance_type_id,
        "source_compute": row.source_compute, "source_node": row.source_node,
        "status": row.status, "updated_at": micro(row.updated_at),
    }
    if version.matches("2.23"):
        out["migration_type"] = row.migration_type
    if version.matches("2.59"):
        out["uuid"] = row.uuid
    if version.matches("2.80"):
        out["user_id"] = row.user_id
        out["project_id"] = row.project_id
    return out


def _time(name: str, value: str) -> datetime:
    try:
        return parse_isotime(value)
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                         f"'{value}' is not a 'date-time'") from None


def list_migrations(svc: ComputeService, ctx: AuthContext, params: Any,
                    version: APIVersion) -> tuple[list[dict[str, Any]], int | None]:
    svc.authorize(_ROOT + "index", ctx, {"project_id": ctx.project_id})
    stmt: Select[Any] = select(Migration)
    project = params.get("project_id") if version.matches("2.80") else None
    if not svc.allowed(_ROOT + "index:all_projects", ctx, {"project_id": ctx.project_id}):
        if project is not None and project != ctx.project_id:
            svc.authorize(_ROOT + "index:all_projects", ctx, {"project_id": project})
        project = ctx.project_id
    if project is not None:
        stmt = stmt.where(Migration.project_id == project)
    if version.matches("2.80") and params.get("user_id"):
        stmt = stmt.where(Migration.user_id == params["user_id"])
    if params.get("host"):
        svc.authorize(_ROOT + "index:host", ctx, {"project_id": ctx.project_id})
        stmt = stmt.where((Migration.source_compute == params["host"])
                          | (Migration.dest_compute == params["host"]))
    for name, column in (("status", Migration.status), ("instance_uuid", Migration.server_id),
                         ("migration_type", Migration.migration_type),
                         ("source_compute", Migration.source_compute)):
        if params.get(name):
            stmt = stmt.where(column == params[name])
    page = PageParams()
    if version.matches("2.59"):
        page = PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False)
        since = _time("changes-since", params["changes-since"]) \
            if "changes-since" in params else None
        before = _time("changes-before", params["changes-before"]) \
            if version.matches("2.66") and "changes-before" in params else None
        if since is not None and before is not None and before < since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
        if since is not None:
            stmt = stmt.where(Migration.updated_at >= since)
        if before is not None:
            stmt = stmt.where(Migration.updated_at <= before)
    with svc.db.read() as s:
        if page.marker is not None and s.execute(
                stmt.where(Migration.uuid == page.marker)).first() is None:
            raise BadRequest(f"Marker {page.marker} could not be found.")
        rows = page_rows(s, stmt, Migration, page, sort_keys=["created_at"],
                         sort_dirs=["desc"], marker_key="uuid")
        return [view(r, version) for r in rows], page.limit


# --- a server's live migrations in progress (none ever is) --------------------------------


def server_migrations(svc: ComputeService, ctx: AuthContext, server_id: str) -> list[Any]:
    with svc.db.read() as s:
        find(svc, ctx, s, server_id, SERVERS + "migrations:index")
    return []


def server_migration(svc: ComputeService, ctx: AuthContext, server_id: str, migration_id: str,
                     rule: str) -> NoReturn:
    with svc.db.read() as s:
        find(svc, ctx, s, server_id, SERVERS + "migrations:" + rule)
    raise NotFound(f"Migration {migration_id} could not be found for instance {server_id}.")


# --- migrate, os-migrateLive --------------------------------------------------------------


def _other_hosts(svc: ComputeService, server: Server) -> list[str]:
    return [h.host for h in scheduling.iter_hosts(svc)
            if h.alive and not h.disabled and h.host != server.host]


def migrate(svc: ComputeService, ctx: AuthContext, server_id: str, host: str | None) -> None:
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, _MOVE + "migrate")
        if host is not None:
            svc.authorize(_MOVE + "migrate:host", ctx, {"project_id": server.project_id})
        check_locked(svc, ctx, server)
        check_state(server, "migrate", vm_states=[states.ACTIVE, states.STOPPED])
        s.expunge(server)
    _refuse_move(svc, server, host, "cold migrate")


def live_migrate(svc: ComputeService, ctx: AuthContext, server_id: str,
                 host: str | None) -> None:
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, _MOVE + "migrate_live")
        if host is not None:
            svc.authorize(_MOVE + "migrate_live:host", ctx, {"project_id": server.project_id})
        check_locked(svc, ctx, server)
        check_state(server, "os-migrateLive", vm_states=[states.ACTIVE, states.PAUSED])
        s.expunge(server)
    if host is not None and host == server.host:
        raise BadRequest(f"Unable to migrate instance ({server.id}) to current host "
                         f"({server.host}).")
    _refuse_move(svc, server, host, "live migrate")


def _refuse_move(svc: ComputeService, server: Server, host: str | None,
                 what: str) -> NoReturn:
    others = _other_hosts(svc, server)
    if host is not None:
        known = {h.host for h in scheduling.iter_hosts(svc)}
        if host not in known:
            raise BadRequest(f"Compute host {host} could not be found.")
        if host == server.host:
            raise BadRequest("The target host can't be the same one.")
        others = [h for h in others if h == host]
    if not others:
        raise BadRequest(f"No valid host was found. No valid host found for {what}")
    raise NotImplementedYet(f"Moving a server to another host ({what}) is not offered by this "
                            "cloud.")
