"""What the agent's reader read (``reader.RouterInfo``, ``reader.FirewallInfo``),
as the state objects the handlers apply (``l3.RouterState``, the firewall's
ports): the translation between the database's rows and the host's modules.

The handler modules are passed in (``l3``, ``firewall``): the runner loads them
only where the data plane runs (``runner._optional``).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onestack.network.agent import reader
    from onestack.network.agent.layout import Layout


def router_state(l3: ModuleType, info: reader.RouterInfo) -> Any:
    def port(entry: tuple[str, str, str, tuple[str, ...], int]) -> Any:
        return l3.RouterPort(port_id=entry[0], network_id=entry[1], mac=entry[2], cidrs=entry[3],
                             mtu=entry[4])

    return l3.RouterState(
        router_id=info.id, admin_state_up=info.admin_state_up,
        gateway=port(info.gateway) if info.gateway else None, gateway_ip=info.gateway_ip,
        enable_snat=info.enable_snat, interfaces=tuple(port(e) for e in info.interfaces),
        routes=info.routes,
        floating_ips=tuple(l3.FloatingIp(floating_ip=f, fixed_ip=x) for f, x in info.floating_ips),
        port_forwardings=tuple(l3.PortForwarding(floating_ip=a, protocol=b, external_port=c,
                                                 internal_ip=d, internal_port=e)
                               for a, b, c, d, e in info.port_forwardings),
    )


def firewall_ports(fw: ModuleType, layout: Layout, info: reader.FirewallInfo) -> tuple[list[Any], dict[str, list[str]]]:
    ports = []
    # one rules tuple per set of groups, shared by its ports (the firewall looks
    # them up by identity: 10,000 ports of the default group are one tuple)
    by_groups: dict[tuple[str, ...], tuple[Any, ...]] = {}
    for p in info.ports:
        rules = by_groups.get(p.groups)
        if rules is None:
            rules = by_groups[p.groups] = tuple(
                fw.SecurityGroupRule(direction=r.direction, ethertype=r.ethertype, protocol=r.protocol,
                                     port_range_min=r.port_range_min, port_range_max=r.port_range_max,
                                     remote_ip_prefix=r.remote_ip_prefix, remote_group_id=r.remote_group_id)
                for gid in p.groups for r in info.rules.get(gid, ()))
        ports.append(fw.FirewallPort(
            port_id=p.id, device=layout.tap(p.id), mac=p.mac, fixed_ips=p.fixed_ips,
            allowed_address_pairs=p.allowed_address_pairs, port_security_enabled=p.port_security_enabled,
            rules=rules, ra_sources=p.ra_sources))
    return ports, {k: list(v) for k, v in info.members.items()}
