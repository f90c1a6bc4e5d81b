"""A server's network interfaces (``os-interface``) and security groups
(``addSecurityGroup`` / ``removeSecurityGroup``, ``os-security-groups``).

Attaching makes (or takes) a port, binds it to the server's host, adds it to
the network cache and hands the hot-plug to the host; detaching hands the
unplug to the host, whose outcome drops the NIC from the cache and deletes
the port Compute made (or hands back the user's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, NotFound
from onestack.common.ids import utcnow
from onestack.compute import kinds, states
from onestack.compute.networking.base import NetworkNotFound, PortInUse, PortNotFound
from onestack.compute.service import netinfo
from onestack.compute.service._common import (
    check_locked,
    check_state,
    find,
    get,
    start_action,
)
from onestack.compute.service.specs import vifs

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-attach-interfaces:"
_STATES = [states.ACTIVE, states.PAUSED, states.STOPPED]


def attachment(port: dict[str, Any], tag: str | None, with_tag: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "net_id": port["network_id"], "port_id": port["id"], "mac_addr": port.get("mac_address"),
        "port_state": port.get("status"),
        "fixed_ips": [{"subnet_id": ip.get("subnet_id"), "ip_address": ip["ip_address"]}
                      for ip in port.get("fixed_ips", [])],
    }
    if with_tag:
        out["tag"] = tag
    return out


def list_interfaces(svc: ComputeService, ctx: AuthContext, server_id: str,
                    with_tag: bool) -> list[dict[str, Any]]:
    server = get(svc, ctx, server_id, _ROOT + "list")
    tags = {v["port_id"]: v.get("tag") for v in server.network_info or []}
    order = list(tags)
    ports = sorted(svc.network.ports_of([server.id]),
                   key=lambda p: order.index(p["id"]) if p["id"] in order else len(order))
    return [attachment(p, tags.get(p["id"]), with_tag) for p in ports]


def show_interface(svc: ComputeService, ctx: AuthContext, server_id: str, port_id: str,
                   with_tag: bool) -> dict[str, Any]:
    for item in list_interfaces(svc, ctx, server_id, with_tag):
        if item["port_id"] == port_id:
            return item
    raise NotFound(f"Port id {port_id} could not be found.")


def attach(svc: ComputeService, ctx: AuthContext, server_id: str, *, port_id: str | None,
           network_id: str | None, fixed_ip: str | None, tag: str | None) -> tuple[str, str]:
    """Start an attach; returns the port id and the task that plugs it."""
    if port_id and network_id:
        raise BadRequest("Must not input both network_id and port_id")
    if fixed_ip and not network_id:
        raise BadRequest("Must input network_id when request IP address")
    net = svc.network
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _ROOT + "create", lock=True)
        check_locked(svc, ctx, server)
        check_state(server, "attach_interface", vm_states=_STATES)
        owner = netinfo.device_owner(server)
        created = False
        try:
            if port_id:
                port = net.get_port(ctx, port_id)
                if port.get("device_id"):
                    raise PortInUse(port_id)
            else:
                if network_id is None:
                    available = net.available_networks(ctx)
                    if not available:
                        raise BadRequest("No specific network was requested and none are "
                                         "available for project "
                                         f"'{server.project_id}'.")
                    network_id = available[0]["id"]
                net.get_network(ctx, network_id)
                groups = net.security_group_ids(netinfo.owner_context(server),
                                                server.security_groups or ["default"])
                port = net.create_port(netinfo.owner_context(server), network_id,
                                       device_id=server.id, device_owner=owner,
                                       fixed_ip=fixed_ip, security_groups=groups)
                created = True
        except (PortNotFound, NetworkNotFound) as exc:
            raise NotFound(exc.message) from None
        bound = net.bind_port(port["id"], server.host or "", server.id, owner)
        entry = netinfo.describe(svc, netinfo.owner_context(server), [bound],
                                 {bound["id"]} if created else set(), {bound["id"]: tag})[0]
        server.network_info = [*(server.network_info or []), entry]
        start_action(s, server, "attach_interface", ctx)
        server.updated_at = utcnow()
        vif = vifs([entry])[0]
        task = svc.cloud.tasks.enqueue(
            s, kinds.ATTACH_INTERFACE,
            {"server": server.id, "port_id": bound["id"],
             "vif": {"port_id": vif.port_id, "mac": vif.mac, "tap": vif.tap,
                     "bridge": vif.bridge, "netns": vif.netns, "mtu": vif.mtu}},
            host=server.host, resource_key=kinds.resource_key(server.id))
        return str(bound["id"]), str(task.id)


def detach(svc: ComputeService, ctx: AuthContext, server_id: str, port_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _ROOT + "delete", lock=True)
        check_locked(svc, ctx, server)
        check_state(server, "detach_interface", vm_states=_STATES)
        if port_id not in {v["port_id"] for v in server.network_info or []}:
            raise NotFound(f"Port {port_id} is not attached")
        start_action(s, server, "detach_interface", ctx)
        server.updated_at = utcnow()
        svc.cloud.tasks.enqueue(s, kinds.DETACH_INTERFACE, {"server": server.id,
                                                              "port_id": port_id},
                                host=server.host, resource_key=kinds.resource_key(server.id))


# --- security groups -----------------------------------------------------------------


def server_security_groups(svc: ComputeService, ctx: AuthContext,
                           server_id: str) -> list[dict[str, Any]]:
    server = get(svc, ctx, server_id, "os_compute_api:os-security-groups:list")
    names = list(server.security_groups or [])
    ids = svc.network.security_group_ids(netinfo.owner_context(server), names) if names else []
    return [{"id": i, "name": n, "description": "", "tenant_id": server.project_id,
             "rules": []} for i, n in zip(ids, names, strict=True)]


def change_security_group(svc: ComputeService, ctx: AuthContext, server_id: str, name: str,
                          add: bool) -> None:
    rule = "os_compute_api:os-security-groups:" + ("add" if add else "remove")
    net = svc.network
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, rule, lock=True)
        current = list(server.security_groups or [])
        if add and name in current:
            raise BadRequest(f"Security group {name} is already associated with the instance "
                             f"{server.id}")
        if not add and name not in current:
            raise BadRequest(f"Security group {name} not associated with the instance "
                             f"{server.id}")
        owner = netinfo.owner_context(server)
        group_id = net.security_group_ids(owner, [name])[0]
        for port in net.ports_of([server.id]):
            groups = list(port.get("security_groups") or [])
            if add and group_id not in groups:
                groups.append(group_id)
            elif not add and group_id in groups:
                groups.remove(group_id)
            net.update_port(None, port["id"], {"security_groups": groups})
        server.security_groups = [*current, name] if add else [g for g in current if g != name]
        server.updated_at = utcnow()


def network_changed(svc: ComputeService, server_id: str,
                    deleted: frozenset[str] = frozenset()) -> bool:
    """Refresh a server's network cache (Neutron's ``network-changed`` event).
    Ports of ``deleted`` (``network-vif-deleted``) that it no longer has leave
    its guest too, as Nova's ``_process_instance_vif_deleted_event`` detaches them;
    False if there is no such server."""
    from onestack.compute.models import Server
    from onestack.compute.service._common import load

    with svc.db.read() as s:
        server = load(s, server_id)
        if server is None:
            return False
        s.expunge(server)
    info = netinfo.refresh(svc, server)
    with svc.db.write() as s:
        current = s.get(Server, server_id)
        if current is None or current.deleted:
            return False
        current.network_info = info
        current.updated_at = utcnow()
        # not "the ports it had": an earlier refresh may have dropped them from
        # the cache already; unplugging a NIC the guest does not have is a no-op
        left = deleted - {v["port_id"] for v in info}
        if current.host and current.task_state != states.DELETING:
            for port_id in sorted(left):
                svc.cloud.tasks.enqueue(s, kinds.UNPLUG_VIF, {"server": server_id,
                                                              "port_id": port_id},
                                        host=current.host,
                                        resource_key=kinds.resource_key(server_id))
    return True
