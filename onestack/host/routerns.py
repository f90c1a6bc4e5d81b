"""The steps of wiring a routing namespace, each run inside one namespace.

A router (``onestack.network.agent.l3``) is a namespace joined to bridges in
another namespace by veths. Each function here runs in the namespace it works
on, through :func:`onestack.host.netns.call`, with one netlink socket::

    present = netns.call(router, routerns.prepare, sysctls, keep, prefixes)
    netns.call(root, routerns.wire_root, wires, router, present)
    netns.call(router, routerns.configure, devices, routes)

Everything is idempotent and diffed (links, addresses, routes), so a second
run with the same input changes nothing. No OpenStack logic lives here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import socket
import struct
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from onestack.host import links
from onestack.host.errors import HostError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wire:
    """A veth from a bridge (``tap`` in the namespace running :func:`wire_root`,
    enslaved to ``bridge``) to ``peer`` in the routing namespace."""

    tap: str
    peer: str
    bridge: str
    mtu: int


@dataclass(frozen=True)
class Device:
    """How a device of the routing namespace must be."""

    name: str
    mac: str
    mtu: int
    up: bool
    cidrs: tuple[str, ...]


def prepare(sysctls: Sequence[tuple[str, str]], keep: Collection[str],
            prefixes: tuple[str, ...]) -> set[str]:
    """In the routing namespace: sets ``sysctls``; deletes every link whose name
    starts with one of ``prefixes`` unless it is in ``keep``; returns the names
    of those left."""
    from onestack.host import netns

    for key, value in sysctls:
        netns.write_sysctl(key, value)
    left = set()
    with links.Netlink() as nl:
        for link in nl.links():
            if not link.name.startswith(prefixes):
                continue
            if link.name in keep:
                left.add(link.name)
            else:
                nl.delete(link.name)
    return left


def delete(names: Collection[str]) -> None:
    """Deletes these links here (those that exist)."""
    with links.Netlink() as nl:
        for name in names:
            nl.delete(name)


def wire_root(wires: Sequence[Wire], peer_ns: str, present: Collection[str]) -> list[str]:
    """In the bridges' namespace: each wire's veth, its bridge end up on its
    bridge (made if missing) with its MTU, its other end in ``peer_ns``
    (``present``: the peers already there). Returns the peers that are present
    but whose bridge end is missing (they must be deleted there and this run
    again); a bridge end whose peer is missing is made again."""
    orphans = []
    with links.Netlink() as nl:
        have = {link.name: link for link in nl.links()}
        for wire in wires:
            if wire.bridge not in have:
                nl.ensure_bridge(wire.bridge)
            link = have.get(wire.tap)
            if link is None and wire.peer in present:
                orphans.append(wire.peer)
                continue
            if (link is not None and link.kind == "veth" and wire.peer in present
                    and link.master == wire.bridge and link.mtu == wire.mtu and link.up):
                continue  # as it must be
            if link is not None and (link.kind != "veth" or wire.peer not in present):
                nl.delete(wire.tap)
            nl.ensure_veth(wire.tap, wire.peer, peer_netns=peer_ns, mtu=wire.mtu,
                           master=wire.bridge, up=True)
    return orphans


def _route_key(route: links.Route) -> str:
    if route.dst == "default":
        return "0.0.0.0/0" if route.family == 4 else "::/0"
    return str(ipaddress.ip_network(route.dst, strict=False))


def configure(devices: Sequence[Device], routes: Mapping[str, str]) -> dict[str, list[str]]:
    """In the routing namespace: each device's MAC, MTU, state and exactly its
    addresses; the routes with a nexthop exactly ``routes`` (destination CIDR ->
    nexthop; the connected routes of the addresses are the kernel's). Returns
    the addresses added, per device. A route whose nexthop is not reachable is
    skipped (and logged), not fatal."""
    added: dict[str, list[str]] = {}
    with links.Netlink() as nl:
        have = {link.name: link for link in nl.links()}
        for dev in devices:
            link = have.get(dev.name)
            if link is None:
                raise HostError(f"no link {dev.name}")
            if link.mac.lower() != dev.mac.lower():
                nl.set_mac(dev.name, dev.mac)
            if link.mtu != dev.mtu:
                nl.set_mtu(dev.name, dev.mtu)
            added[dev.name] = _sync_addresses(nl, dev.name, dev.cidrs)
            if link.up != dev.up:
                (nl.set_up if dev.up else nl.set_down)(dev.name)
        for route in nl.routes():
            if route.gateway is None:
                continue
            key = _route_key(route)
            if routes.get(key) != route.gateway:
                nl.delete_route(key)
        for dst, nexthop in routes.items():
            try:
                nl.ensure_route(dst, gateway=nexthop)
            except HostError as exc:
                log.warning("route %s via %s not installed: %s", dst, nexthop, exc)
    return added


def _sync_addresses(nl: links.Netlink, name: str, cidrs: Sequence[str]) -> list[str]:
    """Exactly ``cidrs`` on ``name`` (IPv6 link-local ones left alone): one
    dump, then only the differences. Returns the addresses added."""
    wanted = {ipaddress.ip_interface(c) for c in cidrs}
    have = {ipaddress.ip_interface(c) for c in nl.addresses(name)}
    for iface in sorted(have - wanted, key=str):
        nl.remove_address(name, str(iface))
    new = [str(i) for i in sorted(wanted - have, key=str)]
    for cidr in new:
        nl.ensure_address(name, cidr)
    return new


def rule_comment(family: str, table: str, chain: str) -> str | None:
    """The comment of the first rule of a chain here (None if no such chain)."""
    binary = shutil.which("nft")
    if binary is None:
        raise HostError("nft is not installed (Debian package nftables)")
    proc = subprocess.run([binary, "-j", "list", "chain", family, table, chain],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return None
    for item in json.loads(proc.stdout or '{"nftables": []}')["nftables"]:
        rule = item.get("rule")
        if rule is not None and "comment" in rule:
            return str(rule["comment"])
    return None


def announce(device: str, mac: str, addresses: Sequence[str]) -> None:
    """Gratuitous ARP for ``addresses`` (IPv4) from ``device``/``mac``, so the
    neighbours on its network learn at once where they now are."""
    hw = bytes.fromhex(mac.replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((device, 0))
        for address in addresses:
            ip = ipaddress.IPv4Address(address).packed
            frame = (b"\xff" * 6 + hw + struct.pack("!H", 0x0806)
                     + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip)
            sock.send(frame)
