"""One server: show, update (name, description, hostname, access IPs),
delete and force-delete; and what the views of servers may show to the
caller (extended attributes, host status, flavor extra specs by policy)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common import gcpause
from onestack.common.auth import AuthContext
from onestack.common.errors import Conflict
from onestack.common.ids import utcnow
from onestack.common.microversions import APIVersion
from onestack.compute import kinds, states
from onestack.compute.models import Server
from onestack.compute.service import listing
from onestack.compute.service._common import (
    SERVERS,
    check_locked,
    find,
    get,
    start_action,
    target,
)
from onestack.compute.views import servers as views
from onestack.compute.views.servers import Context, Links

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Callable

    from onestack.compute.core import ComputeService


def view_context(svc: ComputeService, ctx: AuthContext, version: APIVersion, links: Links,
                 bookmark: Callable[[str], str], servers: Sequence[Server], *,
                 groups: bool = False, session: Session | None = None) -> Context:
    """What the caller may see of these servers (policies checked once); read
    in ``session`` if given."""
    own = {"project_id": ctx.project_id}
    tgt = target(servers[0]) if len(servers) == 1 else own
    view = Context(version=version, links=links, bookmark=bookmark,
                   is_admin=svc.is_admin(ctx))
    view.extended = svc.allowed("os_compute_api:os-extended-server-attributes", ctx, tgt)
    if version.matches("2.47"):
        view.extra_specs = svc.allowed(SERVERS + "show:flavor-extra-specs", ctx, tgt)
    if version.matches("2.16") and svc.allowed(SERVERS + "show:host_status", ctx, tgt):
        view.host_status = True
        view.host_statuses = listing.host_statuses(svc, session)
    ids = [s.id for s in servers]
    view.volumes = listing.volumes_of(svc, ids, session)
    if groups and version.matches("2.71"):
        view.groups = listing.groups_of(svc, ids, session)
    return view


def detail_page(svc: ComputeService, ctx: AuthContext, params: Any, version: APIVersion,
                links: Links, bookmark: Callable[[str], str]
                ) -> tuple[list[dict[str, Any]], list[Any], int | None]:
    """``GET /servers/detail``: (the page's views, its rows, its limit), read
    in one session. A large page is built with the cyclic collector paused (it
    makes about 40 objects per server, none of them garbage)."""
    with svc.db.read() as s:
        rows, limit = listing.list_servers(svc, ctx, params, detail=True, version=version,
                                           session=s)
        if not rows:
            return [], rows, limit
        with gcpause.paused() if len(rows) > 100 else nullcontext():
            view = view_context(svc, ctx, version, links, bookmark, rows, session=s)
            full = views.full
            return [full(r, view) for r in rows], rows, limit


# States in which no task of the server changes its ports (their addresses may
# be read again from Networking without racing a boot or an attach/detach).
_SETTLED = (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED)


def show(svc: ComputeService, ctx: AuthContext, server_id: str) -> Server:
    return with_current_addresses(svc, get(svc, ctx, server_id, SERVERS + "show"))


def with_current_addresses(svc: ComputeService, server: Server) -> Server:
    """The server with its ports' addresses as Networking has them now.

    Nova's network cache follows Networking through Neutron's
    ``network-changed`` events (a floating IP associated through the Networking
    API shows in the server's ``addresses``; openstacksdk's ``auto_ip`` waits
    for it). Networking here does not send them, so a server shown while
    settled reads its ports again and keeps what changed (list views show the
    cache, brought up to date by any show)."""
    if server.deleted or server.task_state is not None or server.vm_state not in _SETTLED \
            or not server.network_info:
        return server
    from onestack.compute.service import netinfo

    try:
        info = netinfo.refresh(svc, server)
    except Exception:  # Networking unreachable: the cache, as Nova shows it
        LOG.warning("the addresses of server %s could not be read again", server.id, exc_info=True)
        return server
    if info == server.network_info:
        return server
    with svc.db.write() as s:
        current = s.get(Server, server.id)
        if current is None or current.deleted or current.task_state is not None:
            return server
        current.network_info = info
    server.network_info = info
    return server


def update(svc: ComputeService, ctx: AuthContext, server_id: str,
           changes: dict[str, Any]) -> Server:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, SERVERS + "update")
        for field, value in changes.items():
            if field == "auto_disk_config":
                set_disk_config(server, value)
            else:
                setattr(server, field, value)
        server.updated_at = utcnow()
        s.flush()
        s.expunge(server)
        return server


def set_disk_config(server: Server, auto: bool) -> None:
    """``OS-DCF:diskConfig`` (kept in system metadata as Nova keeps it)."""
    server.system_metadata = {**(server.system_metadata or {}), "auto_disk_config": auto}


def _host_alive(svc: ComputeService, host: str) -> bool:
    views = svc.cloud.hosts.services(svc.settings.hosts.service_down_time, host=host,
                                     binary=kinds.COMPUTE_BINARY)
    return bool(views) and views[0].alive


def delete(svc: ComputeService, ctx: AuthContext, server_id: str, *, force: bool = False) -> None:
    """Nova's delete: the host destroys the instance (a task that supersedes
    any queued work of the server); a server without a host, or whose host's
    compute service is down, is deleted here and now (Nova's local delete)."""
    rule = "os_compute_api:os-deferred-delete:force" if force else SERVERS + "delete"
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, rule, lock=True)
        check_locked(svc, ctx, server)
        if server.task_state == states.DELETING and not force:
            return
        start_action(s, server, "delete", ctx)
        server.task_state = states.DELETING
        server.updated_at = utcnow()
        local = server.host is None or not _host_alive(svc, server.host)
        host = None if local else server.host
        svc.cloud.tasks.enqueue(
            s, kinds.DELETE, {"server": server.id}, host=host,
            resource_key=kinds.resource_key(server.id),
            supersedes=[k for k in (*kinds.HOST_KINDS, kinds.BUILD) if k != kinds.DELETE],
            interrupt=True,
        )


def restore(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    """``restore`` of a soft-deleted server: none exist here (no deferred delete)."""
    with svc.db.read() as s:
        server = find(svc, ctx, s, server_id, "os_compute_api:os-deferred-delete:restore")
        raise Conflict(f"Cannot 'restore' instance {server.id} while it is in vm_state "
                       f"{server.vm_state}")
