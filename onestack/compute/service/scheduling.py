"""Choosing and claiming a host for a server (Nova's conductor asking its
scheduler): read the hosts, filter, weigh, then claim on the best one in a
fenced write that also re-checks the server and its group's policy, so
concurrent boots never overcommit a host nor break an anti-affinity group."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from onestack.common.errors import ApiError
from onestack.compute import states
from onestack.compute.models import Server, ServerGroup, ServerGroupMember
from onestack.compute.scheduler import claims, filters, hosts, weighers

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

Writer = Callable[[], AbstractContextManager[Session]]


class NoValidHost(ApiError):
    status = 500

    def __init__(self, reason: str = "") -> None:
        super().__init__(f"No valid host was found. {reason}".rstrip())


def disk_gb(flavor: dict[str, Any]) -> int:
    return int(flavor.get("root_gb") or 0) + int(flavor.get("ephemeral_gb") or 0) + \
        -(-int(flavor.get("swap") or 0) // 1024)


def group_of(s: Session, server_id: str) -> ServerGroup | None:
    return s.execute(
        select(ServerGroup).join(ServerGroupMember, ServerGroupMember.group_id == ServerGroup.id)
        .where(ServerGroupMember.server_id == server_id)
    ).scalars().first()


def group_hosts(s: Session, group_id: str, server_id: str) -> tuple[str, ...]:
    """The hosts of the group's other live members, one entry per member."""
    rows = s.execute(
        select(Server.host).join(ServerGroupMember, and_(
            ServerGroupMember.server_id == Server.id, ServerGroupMember.group_id == group_id))
        .where(Server.id != server_id, Server.deleted.is_(False), Server.host.is_not(None))
    ).scalars()
    return tuple(h for h in rows if h)


def _hint_hosts(s: Session, value: Any) -> tuple[str, ...]:
    ids = [value] if isinstance(value, str) else list(value or [])
    if not ids:
        return ()
    rows = s.execute(select(Server.host).where(Server.id.in_(ids), Server.host.is_not(None)))
    return tuple(h for h in rows.scalars() if h)


def request_for(s: Session, server: Server, flavor: dict[str, Any],
                ignore_hosts: tuple[str, ...] = ()) -> filters.Request:
    hints = server.scheduler_hints or {}
    group = group_of(s, server.id)
    same = _hint_hosts(s, hints.get("same_host"))
    props = {k[len("image_"):]: str(v) for k, v in (server.system_metadata or {}).items()
             if k.startswith("image_")}
    return filters.Request(
        vcpus=int(flavor["vcpus"]), memory_mb=int(flavor["memory_mb"]), disk_gb=disk_gb(flavor),
        zone=server.requested_availability_zone, image_properties=props,
        group_policy=group.policy if group is not None else None,
        group_hosts=group_hosts(s, group.id, server.id) if group is not None else (),
        max_server_per_host=int((group.rules or {}).get("max_server_per_host", 1))
        if group is not None else 1,
        same_host=same if hints.get("same_host") else (),
        different_host=_hint_hosts(s, hints.get("different_host")),
        requested_host=hints.get("_requested_host") or hints.get("_forced_host"),
        requested_node=hints.get("_requested_node") or hints.get("_forced_node"),
        ignore_hosts=ignore_hosts,
    )


def candidates(svc: ComputeService, server: Server, flavor: dict[str, Any],
               ignore_hosts: tuple[str, ...] = ()) -> tuple[list[hosts.HostState], filters.Request]:
    alive = svc.cloud.hosts.alive_clause(svc.settings.hosts.service_down_time)
    with svc.db.read() as s:
        states_ = hosts.load(s, alive)
        req = request_for(s, server, flavor, ignore_hosts)
    kept, failed = filters.run(states_, req)
    if not kept:
        reason = f"There are not enough hosts available ({failed or 'no compute host'})."
        if not states_:
            reason = "There are not enough hosts available."
        raise NoValidHost(reason)
    return weighers.order(kept, req), req


def place(svc: ComputeService, server_id: str, write: Writer, consumer_id: str | None = None,
          *, flavor_key: str = "flavor", ignore_hosts: tuple[str, ...] = (),
          on_claimed: Callable[[Session, Server, hosts.HostState], None] | None = None,
          ) -> hosts.HostState | None:
    """Claim a host for the server's ``flavor_key`` flavor; the host, or None
    if the server went away (being deleted) meanwhile. ``NoValidHost`` if
    no host can take it."""
    with svc.db.read() as s:
        server = s.get(Server, server_id)
        if server is None:
            return None
        s.expunge(server)
    flavor = getattr(server, flavor_key) or server.flavor
    ordered, req = candidates(svc, server, flavor, ignore_hosts)
    for host in ordered:
        with write() as s:
            current = s.get(Server, server_id, populate_existing=True)
            if current is None or current.deleted or current.task_state == states.DELETING:
                return None
            group = group_of(s, server_id)
            if group is not None and not _group_still_fits(s, group, server_id, host, req):
                continue
            if not claims.claim(s, host, consumer_id or server_id, server_id, req.vcpus,
                                req.memory_mb, req.disk_gb):
                continue
            if on_claimed is not None:
                on_claimed(s, current, host)
            return host
    raise NoValidHost("There are not enough hosts available.")


def _group_still_fits(s: Session, group: ServerGroup, server_id: str, host: hosts.HostState,
                      req: filters.Request) -> bool:
    members = group_hosts(s, group.id, server_id)
    if group.policy == "anti-affinity":
        limit = int((group.rules or {}).get("max_server_per_host", 1))
        return members.count(host.host) < limit
    if group.policy == "affinity" and members:
        return host.host in members
    return True


def iter_hosts(svc: ComputeService) -> Iterator[hosts.HostState]:
    alive = svc.cloud.hosts.alive_clause(svc.settings.hosts.service_down_time)
    with svc.db.read() as s:
        yield from hosts.load(s, alive)
