"""How the outside reaches an external network (``public``, 172.24.4.0/24).

With host access (root, the default): a veth from the network's bridge into
the host's own namespace holds the subnet's gateway (172.24.4.1), so that the
host reaches floating IPs as on DevStack. The host forwards nothing from it to
its other interfaces (an nftables table of this cloud drops it). Two clouds of
this machine cannot both hold the same range: :func:`check_host_range` says so
before anything is made.

Without (``--no-host-network``): the veth goes into ``<prefix>-ext``, a
namespace standing in for the host, which holds the gateway instead; nothing
touches the host's namespace (tests reach floating IPs with ``ip netns exec``).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from onestack.host import nft
from onestack.network.agent.layout import Layout

if TYPE_CHECKING:
    from onestack.host.base import Host, NetlinkOps


class HostRangeTaken(Exception):
    """Another cloud (or anything else) on this host already holds the range."""

    start_error = True  # `onestack up` prints the message and stops


def bridge_end(network_id: str) -> str:
    """The veth's end on the external network's bridge (root namespace)."""
    return "ex" + network_id[:11]


def outside_end(layout: Layout, network_id: str) -> str:
    """Its other end: in the host's namespace, or in ``<prefix>-ext`` (15 characters)."""
    return f"{layout.prefix}-{network_id[:6]}"


def host_table(layout: Layout) -> str:
    return f"{layout.prefix}_host"


def _owner_of(nl: NetlinkOps, network: ipaddress.IPv4Network | ipaddress.IPv6Network,
              mine: str) -> str | None:
    for link in nl.links():
        if link.name.startswith(mine):
            continue
        for cidr in nl.addresses(link.name):
            if ipaddress.ip_interface(cidr).network.overlaps(network):
                return f"{link.name} ({cidr})"
    return None


def check_host_range(cidr: str, layout: Layout) -> None:
    """Raises :class:`HostRangeTaken` if a device of the host's namespace that is
    not this cloud's holds an address in ``cidr`` (blocking)."""
    from onestack.host import links

    network = ipaddress.ip_network(cidr, strict=False)
    with links.Netlink() as nl:
        owner = _owner_of(nl, network, layout.prefix + "-")
    if owner is not None:
        raise HostRangeTaken(
            f"{network} is already on this host's {owner}: another onestack cloud (or "
            f"something else) reaches it. Start this cloud with --no-host-network, or give it "
            f"another [network] public_cidr / public_gateway.")


async def attach(host: Host, layout: Layout, network_id: str, mtu: int, cidrs: list[str],
                 host_network: bool) -> None:
    """The veth from the network's bridge to the outside, holding ``cidrs``."""
    outside_ns = None if host_network else layout.external_ns
    inner, outer = bridge_end(network_id), outside_end(layout, network_id)
    if outside_ns is not None:
        if await host.net.ensure_netns(outside_ns):
            await host.net.netlink(outside_ns, lambda nl: nl.set_sysctl("net.ipv4.ip_forward", "0"))
    bridge = layout.bridge(network_id)
    await host.net.netlink(layout.root_ns, lambda nl: nl.ensure_veth(
        inner, outer, peer_netns=outside_ns, mtu=mtu, master=bridge))

    def settle(nl: NetlinkOps) -> None:
        nl.set_mtu(outer, mtu)
        nl.set_up(outer)
        nl.sync_addresses(outer, cidrs)

    if host_network:  # the host forwards nothing from it before it is up
        await _host_table(host, layout)
    await host.net.netlink(outside_ns, settle)


async def _host_table(host: Host, layout: Layout) -> None:
    mine = layout.prefix + "-"
    devices = await host.net.netlink(None, lambda nl: [link.name for link in nl.links()
                                                       if link.name.startswith(mine)])
    if devices:
        await host.firewall.apply(None, no_forwarding(layout, devices))
    else:
        await host.firewall.delete_table(None, "inet", host_table(layout))


def no_forwarding(layout: Layout, devices: list[str]) -> nft.Table:
    """The host forwards nothing from or to the data plane's veths (its other
    interfaces, its uplink, stay out of the data plane's reach)."""
    table = nft.Table("inet", host_table(layout))
    table.add(nft.chain("forward", hook="forward", priority=-10))
    names = {"set": sorted(devices)} if len(devices) > 1 else devices[0]
    table.add(nft.rule("forward", nft.match(nft.meta("iifname"), names), nft.drop()))
    table.add(nft.rule("forward", nft.match(nft.meta("oifname"), names), nft.drop()))
    return table


async def detach(host: Host, layout: Layout, network_id: str, host_network: bool) -> None:
    """No veth to the outside for this network (deleting one end removes both)."""
    if layout.root_ns in await host.net.list_netns(layout.root_ns):
        await host.net.netlink(layout.root_ns, lambda nl: nl.delete(bridge_end(network_id)))
    outer = outside_end(layout, network_id)
    if host_network:
        await host.net.netlink(None, lambda nl: nl.delete(outer))
        await _host_table(host, layout)


async def remove_outside(host: Host, layout: Layout) -> None:
    """The cloud's things outside its namespaces: the host's forward-drop table
    and the stand-in namespace (after everything else was removed)."""
    await host.firewall.delete_table(None, "inet", host_table(layout))
    await host.net.delete_netns(layout.external_ns)
