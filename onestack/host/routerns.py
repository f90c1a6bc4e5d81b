"""The steps of wiring a routing namespace, each run inside one namespace.

A router (``onestack.network.agent.l3``) is a namespace joined to bridges in
another namespace by veths. Each function here runs in the namespace it works
on, through :func:`onestack.host.netns.call`, with one netlink socket::

    present = netns.call(router, routerns.prepare, sysctls, keep, prefixes)
    netns.call(root, routerns.wire_root, wires, router, present)
    netns.call(router, routerns.configure, devices, routes)   # and ensure_table(...)
    netns.call(router, routerns.announce, device, mac, addresses)

Everything is idempotent and diffed (links, addresses, routes), so a second
run with the same input changes nothing. No OpenStack logic lives here.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from onestack.host import links, nft
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
        for wire in wires:
            link = nl.link(wire.tap)  # one link asked by name: the root holds every port
            if link is None and wire.peer in present:
                orphans.append(wire.peer)
                continue
            if (link is not None and link.kind == "veth" and wire.peer in present
                    and link.master == wire.bridge and link.mtu == wire.mtu and link.up):
                continue  # as it must be
            if nl.link(wire.bridge) is None:
                try:
                    nl.ensure_bridge(wire.bridge)
                except HostError:  # made meanwhile by the network agent: fine
                    if nl.link(wire.bridge) is None:
                        raise
            if link is not None and (link.kind != "veth" or wire.peer not in present):
                nl.delete(wire.tap)
            nl.ensure_veth(wire.tap, wire.peer, peer_netns=peer_ns, mtu=wire.mtu,
                           master=wire.bridge, up=True)
    return orphans


def configure(devices: Sequence[Device], routes: Mapping[str, str]
              ) -> dict[str, tuple[list[str], list[str]]]:
    """In the routing namespace: each device's MAC, MTU, state and exactly its
    addresses; the routes with a nexthop exactly ``routes`` (destination CIDR ->
    nexthop; the connected routes of the addresses are the kernel's). Returns
    the addresses (added, removed), per device. A route whose nexthop is not reachable is
    skipped (and logged), not fatal."""
    changed: dict[str, tuple[list[str], list[str]]] = {}
    nl = _Netlink()
    try:
        have = {link.name: link for link in nl.links()}
        addresses = nl.all_addresses()
        for dev in devices:
            link = have.get(dev.name)
            if link is None:
                raise HostError(f"no link {dev.name}")
            if link.mac.lower() != dev.mac.lower():
                nl.set_mac(dev.name, dev.mac)
            if link.mtu != dev.mtu:
                nl.set_mtu(dev.name, dev.mtu)
            changed[dev.name] = nl.sync_known(link.index, addresses.get(link.index, []),
                                              dev.cidrs)
            if link.up != dev.up:
                (nl.set_up if dev.up else nl.set_down)(dev.name)
        current = nl.gateway_routes()
        for dst, nexthop in current.items():
            if routes.get(dst) != nexthop:
                nl.delete_route(dst)
        for dst, nexthop in routes.items():
            if current.get(dst) == nexthop:
                continue
            try:
                nl.ensure_route(dst, gateway=nexthop)
            except HostError as exc:
                log.warning("route %s via %s not installed: %s", dst, nexthop, exc)
    finally:
        nl.close()
    return changed


class _Netlink(links.Netlink):
    def all_addresses(self) -> dict[int, list[str]]:
        """Every link's addresses (link index -> CIDRs, IPv6 link-local ones
        left out), in one dump."""
        out: dict[int, list[str]] = {}
        for msg in self._nl("get_addr"):
            address = msg.get_attr("IFA_ADDRESS")
            if msg["family"] == 2:
                address = msg.get_attr("IFA_LOCAL") or address
            elif ipaddress.ip_address(address).is_link_local:
                continue
            out.setdefault(msg["index"], []).append(f"{address}/{msg['prefixlen']}")
        return out

    def sync_known(self, index: int, current: Sequence[str],
                   cidrs: Sequence[str]) -> tuple[list[str], list[str]]:
        """Exactly ``cidrs`` on link ``index`` whose addresses are ``current``
        (IPv6 link-local ones left alone): only the differences, one request
        each, no dump. Returns (added, removed)."""
        wanted = {ipaddress.ip_interface(c) for c in cidrs}
        have = {ipaddress.ip_interface(c) for c in current}
        gone = sorted(have - wanted, key=str)
        new = sorted(wanted - have, key=str)
        for iface in gone:
            self._nl("addr", "del", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        for iface in new:
            self._nl("addr", "add", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        return [str(i) for i in new], [str(i) for i in gone]

    def gateway_routes(self) -> dict[str, str]:
        """The main table's unicast routes with a nexthop: destination CIDR
        ("0.0.0.0/0", "::/0" for the defaults) -> nexthop, without a dump of
        the links."""
        out: dict[str, str] = {}
        for family, default in ((2, "0.0.0.0/0"), (10, "::/0")):
            for msg in self._nl("get_routes", family=family, table=links.MAIN_TABLE):
                gateway = msg.get_attr("RTA_GATEWAY")
                table = msg.get_attr("RTA_TABLE") or msg["table"]
                if msg["type"] != 1 or not gateway or table != links.MAIN_TABLE:
                    continue
                dst = msg.get_attr("RTA_DST")
                out[f"{dst}/{msg['dst_len']}" if dst is not None else default] = gateway
        return out


def ensure_table(table: nft.Table, marker_chain: str) -> bool:
    """Applies ``table`` here (replaced atomically) unless the table in the
    kernel is already it: the first rule of its chain ``marker_chain`` carries
    a comment (a digest of the rest) that ``table``'s last item carries too.
    True if it was applied."""
    from onestack.host import libnft

    wanted = table.items[-1].get("rule", {}).get("comment")
    found = libnft.list_json(f"chain {table.family} {table.name} {marker_chain}")
    if wanted is not None and found is not None:
        comments = [x["rule"].get("comment") for x in found if "rule" in x]
        if comments[:1] == [wanted]:
            return False
    libnft.apply_document(table.document())
    return True


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
