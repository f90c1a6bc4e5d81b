"""``os-simple-tenant-usage``: hours, vCPU-hours, MiB-hours and GiB-hours of
each project's servers over a period (deleted servers included)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest
from onestack.common.ids import utcnow
from onestack.common.pagination import PageParams
from onestack.compute.models import Server
from onestack.compute.service._paging import page_rows
from onestack.compute.views.times import micro

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-simple-tenant-usage:"


def parse_time(text: str | None) -> datetime:
    if not text:
        return utcnow()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise BadRequest("Invalid datetime string: Datetime is in invalid format")


def _hours(server: Server, start: datetime, stop: datetime) -> float:
    launched, terminated = server.launched_at, server.terminated_at
    if terminated is not None and terminated < start:
        return 0.0
    if launched is None or launched > stop:
        return 0.0
    begin = max(launched, start)
    end = min(stop, terminated) if terminated is not None else stop
    return (end - begin).total_seconds() / 3600.0


def usages(svc: ComputeService, ctx: AuthContext, params: Any, *, tenant_id: str | None,
           detailed: bool, paged: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                 int | None]:
    if tenant_id is None:
        svc.authorize(_ROOT + "list", ctx, {})
    else:
        svc.authorize(_ROOT + "show", ctx, {"project_id": tenant_id})
    start = parse_time(params.get("start"))
    stop = parse_time(params.get("end"))
    if not start < stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
    stop = min(stop, utcnow())
    page = (PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False) if paged
            else PageParams(limit=svc.conf.max_limit))
    stmt = select(Server).where(
        Server.launched_at.is_not(None), Server.launched_at < stop,
        or_(Server.terminated_at.is_(None), Server.terminated_at > start))
    if tenant_id is not None:
        stmt = stmt.where(Server.project_id == tenant_id)
    with svc.db.read() as s:
        servers = page_rows(s, stmt, Server, page, sort_keys=["created_at"], sort_dirs=["asc"])
        s.expunge_all()
    now = utcnow()
    summaries: OrderedDict[str, dict[str, Any]] = OrderedDict()
    server_usages: list[dict[str, Any]] = []
    for server in servers:
        flavor = server.flavor or {}
        hours = _hours(server, start, stop)
        info: dict[str, Any] = {
            "hours": hours, "flavor": flavor.get("name", ""), "instance_id": server.id,
            "name": server.name, "tenant_id": server.project_id,
            "memory_mb": int(flavor.get("memory_mb") or 0),
            "local_gb": int(flavor.get("root_gb") or 0) + int(flavor.get("ephemeral_gb") or 0),
            "vcpus": int(flavor.get("vcpus") or 0),
            "started_at": micro(server.launched_at),
            "ended_at": micro(server.terminated_at),
            "state": "terminated" if server.terminated_at else server.vm_state,
        }
        assert server.launched_at is not None
        end = server.terminated_at or now
        info["uptime"] = int((end - server.launched_at).total_seconds())
        summary = summaries.get(server.project_id)
        if summary is None:
            summary = summaries[server.project_id] = {
                "tenant_id": server.project_id, "total_local_gb_usage": 0.0,
                "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_hours": 0.0,
                "start": micro(start), "stop": micro(stop)}
            if detailed:
                summary["server_usages"] = []
        summary["total_local_gb_usage"] += info["local_gb"] * hours
        summary["total_vcpus_usage"] += info["vcpus"] * hours
        summary["total_memory_mb_usage"] += info["memory_mb"] * hours
        summary["total_hours"] += hours
        server_usages.append(info)
        if detailed:
            summary["server_usages"].append(info)
    return list(summaries.values()), server_usages, page.limit
