"""Layer 2 and DHCP on this host: the root namespace, a bridge per network, a
DHCP namespace with its dnsmasq per network that has DHCP subnets.

Everything goes through ``onestack.host`` (``Host``); every step is
idempotent, so applying a network again repairs whatever drifted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from onestack.network.agent import dhcp
from onestack.network.agent.layout import DHCP_DEVICE_PREFIX, TAP_PREFIX, Layout
from onestack.network.agent.reader import NetworkInfo, PortInfo

if TYPE_CHECKING:
    from onestack.host.base import Host, NetlinkOps
    from onestack.host.dnsmasq import DnsmasqSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

# In the root namespace nothing has an address: no IPv6 on the bridges (they
# would configure themselves from the networks' router advertisements), no
# forwarding.
ROOT_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "0"),
)
# In a DHCP namespace: addresses usable at once (no duplicate detection) and
# no default route learnt from the routers' advertisements.
DHCP_SYSCTLS = (
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv4.ip_forward", "0"),
)


async def ensure_root(host: Host, layout: Layout) -> bool:
    """The data plane's root namespace; True if it was made now."""
    created = await host.net.ensure_netns(layout.root_ns)

    def settle(nl: NetlinkOps) -> None:
        for key, value in ROOT_SYSCTLS:
            nl.set_sysctl(key, value)

    if created:
        await host.net.netlink(layout.root_ns, settle)
    return created


async def ensure_bridges(host: Host, layout: Layout, networks: list[tuple[str, int]]) -> None:
    """The bridges of these (network id, MTU), in the root namespace."""
    def work(nl: NetlinkOps) -> None:
        for network_id, mtu in networks:
            nl.ensure_bridge(layout.bridge(network_id), mtu=mtu)

    await host.net.netlink(layout.root_ns, work)


RootLinks = dict[str, tuple[str | None, bool]]  # name -> (its bridge, administratively up)


def root_links(nl: NetlinkOps) -> RootLinks:
    return {lk.name: (lk.master, lk.up) for lk in nl.links()}


FEW = 32


def links_of(nl: NetlinkOps, names: list[str]) -> RootLinks:
    """The links of these devices only (for their ports' status): a request each
    for a few (a new network has none), one dump of the namespace for many (which
    holds every network's bridge: 5 ms at 300 networks, for each network applied)."""
    if len(names) > FEW:
        return root_links(nl)
    out: RootLinks = {}
    for name in names:
        found = nl.link(name)
        if found is not None:
            out[name] = (found.master, found.up)
    return out


def _port_devices(layout: Layout, info: NetworkInfo) -> list[str]:
    return [layout.tap(p.id) for p in info.ports]


async def in_root(host: Host, layout: Layout, fn: Callable[[NetlinkOps], T]) -> T:
    """``fn`` in the root namespace, made first if it is missing (no look at the
    host's namespaces when it is there, which is nearly always)."""
    from onestack.host.errors import NotFound

    try:
        return await host.net.netlink(layout.root_ns, fn)
    except NotFound:
        if not await ensure_root(host, layout):
            raise
        return await host.net.netlink(layout.root_ns, fn)


def wants_dhcp(info: NetworkInfo) -> bool:
    """Whether a DHCP server runs for this network (its DHCP port serves a subnet)."""
    port = info.dhcp_port()
    return port is not None and info.admin_state_up and bool(dhcp.served(info, port))


async def apply_network(host: Host, layout: Layout, info: NetworkInfo, domain: str,
                        dhcp_here: bool = True, ports: list[str] | None = None
                        ) -> tuple[bool, RootLinks]:
    """Makes the host hold network ``info``: its bridge, and its DHCP server
    when it has DHCP subnets (else none). Returns whether a DHCP server runs for
    it, and its ports' links afterwards (for their status). ``dhcp_here``: a
    DHCP server of it may exist here (False: the caller knows none does, so a
    network without DHCP costs one netlink conversation: its bridge, made up in
    one request, and its ports' links). ``ports``: the ids of the ports whose
    links are wanted (None: every port of the network)."""
    devices = [layout.tap(pid) for pid in ports] if ports is not None else _port_devices(layout, info)
    bridge = layout.bridge(info.id)
    port = info.dhcp_port()
    if port is None or not wants_dhcp(info):
        if dhcp_here:
            await remove_dhcp(host, layout, info.id)

        def only_bridge(nl: NetlinkOps) -> RootLinks:
            nl.ensure_bridge(bridge, mtu=info.mtu)
            return links_of(nl, devices)

        return False, await in_root(host, layout, only_bridge)
    await ensure_root(host, layout)
    links = await _apply_dhcp(host, layout, info, port, domain, devices)
    return True, links


async def apply_bridges(host: Host, layout: Layout,
                        networks: list[tuple[NetworkInfo, list[str] | None]]) -> RootLinks:
    """``apply_network`` of several networks that have no DHCP server here, in
    one netlink conversation: their bridges, and the links of their ports
    (given by id, or None: every port of the network)."""
    wanted = [(layout.bridge(info.id), info.mtu,
               [layout.tap(pid) for pid in ports] if ports is not None else _port_devices(layout, info))
              for info, ports in networks]

    def bridges(nl: NetlinkOps) -> RootLinks:
        devices: list[str] = []
        for bridge, mtu, taps in wanted:
            nl.ensure_bridge(bridge, mtu=mtu)
            devices += taps
        return links_of(nl, devices)

    return await in_root(host, layout, bridges)


# The DHCP namespace's device as last settled, by namespace: while the port, its
# MTU and addresses stay the same and its veth was not made again, the namespace
# is not looked at (its links, addresses: pyroute2) at each of the network's changes.
_settled: dict[str, tuple[str, str, int, tuple[str, ...]]] = {}


async def _apply_dhcp(host: Host, layout: Layout, info: NetworkInfo, port: PortInfo,
                      domain: str, devices: list[str]) -> RootLinks:
    ns = layout.dhcp_ns(info.id)
    made = await host.net.ensure_netns(ns)
    device = layout.dhcp_device(port.id)
    tap = layout.tap(port.id)
    bridge = layout.bridge(info.id)
    cidrs = dhcp.interface_cidrs(info, port)
    wanted = (device, port.mac.lower(), info.mtu, tuple(cidrs))
    if made:
        _settled.pop(ns, None)

    def settle(nl: NetlinkOps) -> None:
        link = nl.link(device)
        if link is not None and link.up and link.mac.lower() != port.mac.lower():
            nl.set_down(device)
        nl.set_mac(device, port.mac)
        nl.set_mtu(device, info.mtu)
        nl.set_up(device)
        nl.sync_addresses(device, cidrs)

    def inside(nl: NetlinkOps) -> tuple[list[str], bool]:
        if made:
            for key, value in DHCP_SYSCTLS:
                nl.set_sysctl(key, value)
        stale = [link.name for link in nl.links()
                 if link.name.startswith(DHCP_DEVICE_PREFIX) and link.name != device]
        for name in stale:
            nl.delete(name)
        if nl.link(device) is None:
            return stale, False
        settle(nl)
        return stale, True

    stale: list[str] = []
    if _settled.get(ns) == wanted:
        settled = True
    else:
        _settled.pop(ns, None)
        stale, settled = await host.net.netlink(ns, inside)

    def root(nl: NetlinkOps) -> tuple[RootLinks, bool]:
        nl.ensure_bridge(bridge, mtu=info.mtu)
        for name in stale:  # the bridge ends of a former DHCP port's veth
            nl.delete(TAP_PREFIX + name[len(DHCP_DEVICE_PREFIX):])
        made_veth = nl.ensure_veth(tap, device, peer_netns=ns, mtu=info.mtu, master=bridge)
        return links_of(nl, devices), made_veth

    links, made_veth = await host.net.netlink(layout.root_ns, root)
    if not settled or made_veth:  # its veth was made just now
        await host.net.netlink(ns, settle)
    _settled[ns] = wanted
    def build() -> DnsmasqSpec:  # 10,000 ports: not on the event loop
        from onestack.common import gcpause

        with gcpause.paused():
            return dhcp.spec(layout, info, port, domain)

    result = await host.dhcp.ensure(await asyncio.to_thread(build))
    if result != "unchanged":
        log.debug("dnsmasq of network %s: %s", info.id, result)
    return links


async def remove_dhcp(host: Host, layout: Layout, network_id: str) -> bool:
    """No DHCP server for this network (its dnsmasq, namespace and veth gone).
    Cheap when there is none (no look through every process: a dnsmasq of ours
    has a directory; a stray one is found by the agent's periodic reconcile)."""
    stopped = False
    _settled.pop(layout.dhcp_ns(network_id), None)
    if network_id in await host.dhcp.names():
        stopped = await host.dhcp.stop(network_id)
    removed = await host.net.delete_netns(layout.dhcp_ns(network_id))
    return stopped or removed


async def remove_network(host: Host, layout: Layout, network_id: str) -> None:
    """Everything of a deleted network: DHCP, then its bridge (the taps left on it
    by instances fall off it; Compute removes them)."""
    await remove_dhcp(host, layout, network_id)
    if layout.root_ns in await host.net.list_netns(layout.root_ns):
        await host.net.netlink(layout.root_ns, lambda nl: nl.delete(layout.bridge(network_id)))


def wired(links: dict[str, tuple[str | None, bool]], layout: Layout, network_id: str, port_id: str) -> bool:
    """Whether a port's device is on its network's bridge and up (from one dump of
    the root namespace's links: name -> (master, up))."""
    found = links.get(layout.tap(port_id))
    return found is not None and found[0] == layout.bridge(network_id) and found[1]


PortState = tuple[str, str, str, bool, str]  # id, network id, status, admin_state_up, device_owner


async def follow_admin_state(host: Host, layout: Layout, rows: list[PortState],
                             links: RootLinks) -> RootLinks:
    """An instance's tap follows its port's ``admin_state_up``, as Neutron's
    Linux bridge agent sets it: down (no traffic either way, the port ``DOWN``)
    while the port is administratively down, up again after. Only devices on
    their network's bridge; the DHCP and router ports (``network:*``) follow
    their own rules. Returns the root namespace's links afterwards."""
    changes: list[tuple[str, bool]] = []
    for pid, nid, _status, admin_up, owner in rows:
        if owner.startswith("network:"):
            continue
        found = links.get(layout.tap(pid))
        if found is not None and found[0] == layout.bridge(nid) and found[1] != admin_up:
            changes.append((layout.tap(pid), admin_up))
    if not changes:
        return links

    def work(nl: NetlinkOps) -> RootLinks:
        for tap, up in changes:
            if up:
                nl.set_up(tap)
            else:
                nl.set_down(tap)
        return root_links(nl)

    log.debug("taps following their ports' admin state: %s", changes)
    return await host.net.netlink(layout.root_ns, work)
