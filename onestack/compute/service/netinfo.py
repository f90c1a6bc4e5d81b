"""A server's ports: allocating them at boot, and the network information
cache on the server row (Nova's ``instance_info_caches``) that addresses,
``os-interface``, the metadata service and the driver's NICs are read from.

Ports are made or taken on the user's behalf (a service context of the
server's user and project, as Nova acts with the request's context), bound
to the server's host, and described in ``network_info`` in NIC order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.compute.models import Server
from onestack.compute.networking.base import Networking, Port, PortNotFound

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService


def owner_context(server: Server) -> AuthContext:
    """Who Compute acts as on Networking for this server."""
    return AuthContext(token="", user_id=server.user_id, project_id=server.project_id,
                       roles=("member", "reader"))


def device_owner(server: Server) -> str:
    return f"compute:{server.availability_zone}"


def vif_entry(net: Networking, port: Port, *, created: bool, tag: str | None,
              network_names: dict[str, str], floating: dict[str, list[str]]) -> dict[str, Any]:
    ips: list[dict[str, Any]] = []
    for fixed in port.get("fixed_ips", []):
        address = fixed["ip_address"]
        ips.append({"address": address, "version": ipaddress.ip_address(address).version,
                    "type": "fixed", "subnet_id": fixed.get("subnet_id")})
    for address in floating.get(port["id"], []):
        ips.append({"address": address, "version": ipaddress.ip_address(address).version,
                    "type": "floating"})
    return {
        "port_id": port["id"],
        "network_id": port["network_id"],
        "network_name": network_names.get(port["network_id"], port["network_id"]),
        "mac": port.get("mac_address"),
        "mtu": port.get("mtu"),
        "ips": ips,
        "tag": tag,
        "created": created,
        "vif_type": port.get("binding:vif_type"),
        "details": port.get("binding:vif_details") or {},
    }


def describe(svc: ComputeService, ctx: AuthContext, ports: Sequence[Port],
             created: set[str], tags: dict[str, str | None]) -> list[dict[str, Any]]:
    net = svc.network
    names: dict[str, str] = {}
    for port in ports:
        network_id = port["network_id"]
        if network_id not in names:
            try:
                network = net.get_network(ctx, network_id)
                names[network_id] = str(network.get("name") or network_id)
                if port.get("mtu") is None and network.get("mtu"):
                    port = dict(port, mtu=network["mtu"])
            except Exception:
                names[network_id] = network_id
    floating = net.floating_ips([p["id"] for p in ports])
    return [vif_entry(net, p, created=p["id"] in created, tag=tags.get(p["id"]),
                      network_names=names, floating=floating) for p in ports]


def allocate(svc: ComputeService, server: Server, host: str) -> list[dict[str, Any]]:
    """Make (or take) and bind the server's ports on ``host``; returns its
    ``network_info``. A retried build finds the ports it made before."""
    net = svc.network
    ctx = owner_context(server)
    existing = {p["id"]: p for p in net.ports_of([server.id])}
    requested: list[dict[str, Any]] = list(server.requested_networks or [])
    group_ids: list[str] | None = None
    owner = device_owner(server)
    ports: list[Port] = []
    created: set[str] = set()
    tags: dict[str, str | None] = {}
    used: set[str] = set()
    for entry in requested:
        port_id = entry.get("port_id")
        if not port_id:
            reuse = next((p for p in existing.values()
                          if p["network_id"] == entry["network_id"] and p["id"] not in used
                          and _created_for(p, entry)), None)
            if reuse is not None:
                port_id = reuse["id"]
                created.add(port_id)
            else:
                if group_ids is None:
                    group_ids = net.security_group_ids(ctx, server.security_groups or ["default"])
                port = net.create_port(ctx, entry["network_id"], device_id=server.id,
                                       device_owner=owner, fixed_ip=entry.get("fixed_ip"),
                                       security_groups=group_ids)
                port_id = port["id"]
                created.add(port_id)
        used.add(port_id)
        tags[port_id] = entry.get("tag")
        ports.append(net.bind_port(port_id, host, server.id, owner))
    return describe(svc, ctx, ports, created, tags)


def _created_for(port: Port, entry: dict[str, Any]) -> bool:
    fixed = entry.get("fixed_ip")
    if not fixed:
        return True
    return any(ip["ip_address"] == fixed for ip in port.get("fixed_ips", []))


def release(svc: ComputeService, server_id: str, network_info: list[dict[str, Any]],
            *, partial: bool = False) -> None:
    """Delete the ports Compute made for the server and hand the others back
    (unbound, no device): what a deleted or failed server leaves to
    Networking (``partial``: only the NICs named, e.g. a detached one)."""
    net = svc.network
    made = {v["port_id"] for v in network_info if v.get("created")}
    kept = {v["port_id"] for v in network_info if not v.get("created")}
    if not partial:
        for port in net.ports_of([server_id]):
            if port["id"] not in kept:
                made.add(port["id"])
    for port_id in made:
        try:
            net.delete_port(port_id)
        except PortNotFound:
            pass
    for port_id in kept:
        try:
            net.unbind_port(port_id)
        except Exception:
            pass


def refresh(svc: ComputeService, server: Server) -> list[dict[str, Any]]:
    """The server's ``network_info`` read again from Networking (floating IPs
    and addresses that changed since), keeping NIC order, tags and ownership."""
    net = svc.network
    current = {p["id"]: p for p in net.ports_of([server.id])}
    known = list(server.network_info or [])
    order = [v["port_id"] for v in known if v["port_id"] in current]
    order += [p for p in current if p not in order]
    created = {v["port_id"] for v in known if v.get("created")}
    tags = {v["port_id"]: v.get("tag") for v in known}
    ports = [current[p] for p in order]
    return describe(svc, owner_context(server), ports, created, tags)
