"""Networking in memory: networks, subnets, ports, floating IPs and security
groups held in dicts, with Neutron's shapes and rules where Compute relies on
them (visibility, addresses handed out in order, ports bound to a host).

For the API tests, and for a cloud that runs without the Networking service:
``add_network`` makes networks to boot servers on.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from onestack.common.auth import AuthContext
from onestack.compute.networking.base import (
    FixedIpInUse,
    FixedIpInvalid,
    Network,
    NetworkNotFound,
    NoMoreFixedIps,
    Port,
    PortNotFound,
    SecurityGroupNotFound,
    UnableToAutoAllocate,
)


class FakeNetworking:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, Port] = {}
        self.floating: dict[str, list[str]] = {}  # port id -> addresses
        self.security_groups: dict[str, dict[str, Any]] = {}
        self.auto_allocatable = False

    # --- set-up (tests) ---------------------------------------------------------

    def add_network(self, name: str, project_id: str | None, cidr: str = "10.0.0.0/24", *,
                    shared: bool = False, external: bool = False,
                    network_id: str | None = None) -> Network:
        with self._lock:
            net_id = network_id or str(uuid.uuid4())
            subnet_id = str(uuid.uuid4())
            self.subnets[subnet_id] = {"id": subnet_id, "network_id": net_id, "cidr": cidr,
                                       "ip_version": ipaddress.ip_network(cidr).version,
                                       "gateway_ip": str(next(ipaddress.ip_network(cidr).hosts()))}
            net: Network = {"id": net_id, "name": name, "project_id": project_id,
                            "tenant_id": project_id, "shared": shared,
                            "router:external": external, "subnets": [subnet_id], "mtu": 1450,
                            "status": "ACTIVE", "admin_state_up": True}
            self.networks[net_id] = net
            return dict(net)

    def add_security_group(self, name: str, project_id: str | None) -> str:
        sg_id = str(uuid.uuid4())
        self.security_groups[sg_id] = {"id": sg_id, "name": name, "project_id": project_id}
        return sg_id

    def associate_floating_ip(self, port_id: str, address: str) -> None:
        with self._lock:
            self.floating.setdefault(port_id, []).append(address)

    # --- visibility -------------------------------------------------------------

    @staticmethod
    def _admin(ctx: AuthContext | None) -> bool:
        return ctx is None or "admin" in ctx.roles

    def _visible_network(self, ctx: AuthContext, net: Network) -> bool:
        return (self._admin(ctx) or net["shared"] or net["router:external"]
                or net["project_id"] == ctx.project_id)

    def get_network(self, ctx: AuthContext, network_id: str) -> Network:
        with self._lock:
            net = self.networks.get(network_id)
            if net is None or not self._visible_network(ctx, net):
                raise NetworkNotFound(network_id)
            return dict(net)

    def available_networks(self, ctx: AuthContext) -> list[Network]:
        with self._lock:
            return [dict(n) for n in self.networks.values()
                    if not n["router:external"] and (n["shared"] or n["project_id"] == ctx.project_id)]

    def visible_networks(self, ctx: AuthContext) -> list[Network]:
        with self._lock:
            return [dict(n) for n in self.networks.values()
                    if self._admin(ctx) or n["shared"] or n["project_id"] == ctx.project_id]

    def get_port(self, ctx: AuthContext | None, port_id: str) -> Port:
        with self._lock:
            port = self.ports.get(port_id)
            if port is None or not (self._admin(ctx) or port["project_id"] == ctx.project_id):  # type: ignore[union-attr]
                raise PortNotFound(port_id)
            return dict(port)

    # --- ports ------------------------------------------------------------------

    def _address(self, network_id: str, fixed_ip: str | None) -> list[dict[str, str]]:
        net = self.networks[network_id]
        used = {ip["ip_address"] for p in self.ports.values() if p["network_id"] == network_id
                for ip in p["fixed_ips"]}
        for subnet_id in net["subnets"]:
            subnet = self.subnets[subnet_id]
            cidr = ipaddress.ip_network(subnet["cidr"])
            if fixed_ip is not None:
                try:
                    wanted = ipaddress.ip_address(fixed_ip)
                except ValueError:
                    raise FixedIpInvalid(fixed_ip) from None
                if wanted not in cidr:
                    continue
                if fixed_ip in used or fixed_ip == subnet["gateway_ip"]:
                    raise FixedIpInUse(fixed_ip)
                return [{"subnet_id": subnet_id, "ip_address": fixed_ip}]
            for host in cidr.hosts():
                text = str(host)
                if text != subnet["gateway_ip"] and text not in used:
                    return [{"subnet_id": subnet_id, "ip_address": text}]
        if fixed_ip is not None:
            raise FixedIpInvalid(fixed_ip)
        raise NoMoreFixedIps(network_id)

    def create_port(self, ctx: AuthContext, network_id: str, *, device_id: str,
                    device_owner: str, fixed_ip: str | None = None,
                    security_groups: Sequence[str] | None = None) -> Port:
        with self._lock:
            self.get_network(ctx, network_id)
            port_id = str(uuid.uuid4())
            mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
            groups = list(security_groups) if security_groups is not None else [
                self._default_group(ctx.project_id)]
            port: Port = {
                "id": port_id, "name": "", "network_id": network_id,
                "project_id": ctx.project_id, "tenant_id": ctx.project_id,
                "mac_address": mac, "fixed_ips": self._address(network_id, fixed_ip),
                "device_id": device_id, "device_owner": device_owner,
                "security_groups": groups, "status": "DOWN", "admin_state_up": True,
                "binding:host_id": "", "binding:vif_type": "unbound",
                "binding:vif_details": {}, "binding:vnic_type": "normal",
                "port_security_enabled": True,
            }
            self.ports[port_id] = port
            return dict(port)

    def _default_group(self, project_id: str | None) -> str:
        for sg in self.security_groups.values():
            if sg["name"] == "default" and sg["project_id"] == project_id:
                return str(sg["id"])
        return self.add_security_group("default", project_id)

    def update_port(self, ctx: AuthContext | None, port_id: str, changes: dict[str, Any]) -> Port:
        with self._lock:
            self.get_port(ctx, port_id)
            self.ports[port_id].update(changes)
            return dict(self.ports[port_id])

    def bind_port(self, port_id: str, host: str, device_id: str, device_owner: str) -> Port:
        with self._lock:
            port = self.ports.get(port_id)
            if port is None:
                raise PortNotFound(port_id)
            port.update({
                "binding:host_id": host, "binding:vif_type": "bridge", "device_id": device_id,
                "device_owner": device_owner, "status": "ACTIVE",
                "binding:vif_details": {"port_filter": True, "connectivity": "l2",
                                        "bridge_name": "brq" + port["network_id"][:11]},
            })
            return dict(port)

    def unbind_port(self, port_id: str) -> Port:
        with self._lock:
            port = self.ports.get(port_id)
            if port is None:
                raise PortNotFound(port_id)
            port.update({"binding:host_id": "", "binding:vif_type": "unbound", "device_id": "",
                         "device_owner": "", "binding:vif_details": {}, "status": "DOWN"})
            return dict(port)

    def delete_port(self, port_id: str) -> None:
        with self._lock:
            self.ports.pop(port_id, None)
            self.floating.pop(port_id, None)

    def ports_of(self, device_ids: Sequence[str]) -> list[Port]:
        wanted = set(device_ids)
        with self._lock:
            return [dict(p) for p in self.ports.values() if p["device_id"] in wanted]

    def floating_ips(self, port_ids: Sequence[str]) -> dict[str, list[str]]:
        with self._lock:
            return {p: list(self.floating.get(p, [])) for p in port_ids if self.floating.get(p)}

    def security_group_ids(self, ctx: AuthContext, names: Sequence[str]) -> list[str]:
        out: list[str] = []
        with self._lock:
            for name in names:
                if name == "default":
                    out.append(self._default_group(ctx.project_id))
                    continue
                found = [sg["id"] for sg in self.security_groups.values()
                         if (sg["name"] == name or sg["id"] == name)
                         and (self._admin(ctx) or sg["project_id"] == ctx.project_id)]
                if not found:
                    raise SecurityGroupNotFound(name)
                out.append(found[0])
        return out

    def security_group_names(self, ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {i: self.security_groups[i]["name"] for i in ids if i in self.security_groups}

    def auto_allocate(self, ctx: AuthContext) -> Network:
        if not self.auto_allocatable:
            raise UnableToAutoAllocate(ctx.project_id)
        return self.add_network("auto_allocated_network", ctx.project_id, "10.99.0.0/24")
