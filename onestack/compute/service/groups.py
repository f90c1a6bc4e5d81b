"""Server groups (``os-server-groups``): affinity, anti-affinity and their
soft variants; members are the group's servers that are not deleted. The
scheduler reads them (``service/scheduling.py``)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.common.ids import utcnow
from onestack.compute.models import Server, ServerGroup, ServerGroupMember

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-server-groups:"


def _members(svc: ComputeService, group_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {g: [] for g in group_ids}
    if not group_ids:
        return out
    with svc.db.read() as s:
        rows = s.execute(
            select(ServerGroupMember.group_id, ServerGroupMember.server_id)
            .join(Server, Server.id == ServerGroupMember.server_id)
            .where(ServerGroupMember.group_id.in_(group_ids), Server.deleted.is_(False))
        )
        for group_id, server_id in rows:
            out[group_id].append(server_id)
    return out


def view(group: ServerGroup, members: list[str], *, v264: bool, v213: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": group.id, "name": group.name}
    if v264:
        out["policy"] = group.policy
        out["rules"] = dict(group.rules or {})
    else:
        out["policies"] = [group.policy]
        out["metadata"] = {}
    out["members"] = members
    if v213:
        out["project_id"] = group.project_id
        out["user_id"] = group.user_id
    return out


def get(svc: ComputeService, ctx: AuthContext, group_id: str) -> tuple[ServerGroup, list[str]]:
    with svc.db.read() as s:
        group = s.get(ServerGroup, group_id)
        if group is None:
            raise NotFound(f"Instance group {group_id} could not be found.")
        svc.authorize(_ROOT + "show", ctx, {"project_id": group.project_id})
        s.expunge(group)
    return group, _members(svc, [group.id])[group.id]


def list_groups(svc: ComputeService, ctx: AuthContext, all_projects: bool, limit: int | None,
                offset: int) -> list[tuple[ServerGroup, list[str]]]:
    svc.authorize(_ROOT + "index", ctx, {"project_id": ctx.project_id})
    stmt = select(ServerGroup).order_by(ServerGroup.created_at, ServerGroup.id)
    if all_projects and svc.is_admin(ctx):
        svc.authorize(_ROOT + "index:all_projects", ctx, {"project_id": ctx.project_id})
    else:
        stmt = stmt.where(ServerGroup.project_id == ctx.project_id)
    limit = min(limit if limit is not None else svc.conf.max_limit, svc.conf.max_limit)
    with svc.db.read() as s:
        groups = list(s.execute(stmt.offset(offset).limit(limit)).scalars())
        s.expunge_all()
    members = _members(svc, [g.id for g in groups])
    return [(g, members[g.id]) for g in groups]


def create(svc: ComputeService, ctx: AuthContext, name: str, policy: str,
           rules: dict[str, Any]) -> ServerGroup:
    svc.authorize(_ROOT + "create", ctx, {"project_id": ctx.project_id})
    if rules and policy != "anti-affinity":
        raise BadRequest("Only anti-affinity policy supports rules.")
    with svc.db.write() as s:
        limit = svc.quotas.limits(s, ctx.project_id)["server_groups"]
        if limit >= 0:
            used = int(s.scalar(select(func.count()).select_from(ServerGroup)
                                .where(ServerGroup.project_id == ctx.project_id)) or 0)
            if used + 1 > limit:
                raise Forbidden("Quota exceeded, too many server groups.")
        group = ServerGroup(id=str(uuid.uuid4()), name=name, project_id=ctx.project_id or "",
                            user_id=ctx.user_id, policy=policy,
                            rules={k: int(v) for k, v in rules.items()}, created_at=utcnow())
        s.add(group)
        s.flush()
        s.expunge(group)
        return group


def delete_group(svc: ComputeService, ctx: AuthContext, group_id: str) -> None:
    with svc.db.write() as s:
        group = s.get(ServerGroup, group_id)
        if group is None:
            raise NotFound(f"Instance group {group_id} could not be found.")
        svc.authorize(_ROOT + "delete", ctx, {"project_id": group.project_id})
        s.execute(delete(ServerGroupMember).where(ServerGroupMember.group_id == group_id))
        s.delete(group)
