"""Links, addresses, routes and sysctls of one network namespace, over netlink.

:class:`Netlink` wraps a pyroute2 ``IPRoute`` socket opened in the namespace
of the thread that makes it; use it inside :func:`onestack.host.netns.call`
(or the :class:`~onestack.host.base.NetHost` seam) to work in a namespace::

    def wire(nl: Netlink) -> None:
        nl.ensure_bridge("br-net1", mtu=1450)
        nl.ensure_address("br-net1", "10.0.0.1/24")
        nl.set_up("br-net1")

    netns.call("onestack-dp", lambda: _with(wire))

Every ``ensure_*`` is idempotent and returns whether it changed anything;
every removal returns whether there was something to remove. Nothing here
parses the output of ``ip``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from onestack.host import netns
from onestack.host.errors import HostError, NotFound

IFNAMSIZ = 15  # usable characters of an interface name
IFF_UP = 0x1
MAIN_TABLE = 254


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str  # "bridge", "veth", "tun" (a tap), "vxlan", "" (loopback, physical)
    mac: str
    mtu: int
    up: bool  # administratively up
    operstate: str  # the kernel's: UP, DOWN, UNKNOWN, LOWERLAYERDOWN...
    master: str | None  # the bridge it is a port of


COUNTERS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
            "rx_dropped", "tx_dropped")


@dataclass(frozen=True)
class Route:
    dst: str  # "10.0.0.0/24", "default" or "::/0" is written "default" too
    gateway: str | None
    dev: str | None
    table: int
    metric: int | None
    family: int  # 4 or 6


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name) \
            or name in (".", ".."):
        raise HostError(f"invalid interface name {name!r} (1-{IFNAMSIZ} characters, no '/')")
    return name


def own_netns_path() -> str:
    """The namespace this process started in (its main thread's)."""
    return f"/proc/{os.getpid()}/ns/net"


def _ns_target(name: str | None) -> str:
    return own_netns_path() if name is None else str(netns.path_of(name))


def _interface(cidr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(cidr)
    except ValueError:
        raise HostError(f"invalid address {cidr!r}") from None


def _route_dst(dst: str) -> tuple[str, int, int]:
    """(network address, prefix length, family) of a route destination."""
    if dst in ("default", "default6"):
        return ("::" if dst == "default6" else "0.0.0.0"), 0, 6 if dst == "default6" else 4
    try:
        net = ipaddress.ip_network(dst, strict=True)
    except ValueError:
        raise HostError(f"invalid route destination {dst!r}") from None
    return str(net.network_address), net.prefixlen, net.version


class Netlink:
    """Links, addresses, routes and sysctls of the calling thread's namespace."""

    def __init__(self) -> None:
        self._socket: Any = None

    @property
    def _ipr(self) -> Any:
        """pyroute2's socket, opened on first use (2 ms: a bridge made or found
        through ``linkdump`` never needs it)."""
        if self._socket is None:
            from pyroute2 import IPRoute  # 0.1 s to import: only where netlink is used

            self._socket = IPRoute()
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _nl(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return getattr(self._ipr, method)(*args, **kwargs)
        except NetlinkError as exc:
            raise HostError(f"netlink {method} {args[:1]} {kwargs}: {exc}") from exc

    # --- links ---------------------------------------------------------------

    def _to_link(self, msg: Any, by_index: dict[int, str]) -> Link:
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        master = msg.get_attr("IFLA_MASTER")
        return Link(
            name=msg.get_attr("IFLA_IFNAME"),
            index=msg["index"],
            kind=kind or "",
            mac=msg.get_attr("IFLA_ADDRESS") or "",
            mtu=msg.get_attr("IFLA_MTU") or 0,
            up=bool(msg["flags"] & IFF_UP),
            operstate=msg.get_attr("IFLA_OPERSTATE") or "",
            master=by_index.get(master) if master else None,
        )

    def links(self) -> list[Link]:
        """Every link, from one dump read without pyroute2's decoding (``linkdump``:
        a hundred times cheaper, which a namespace of many bridges needs)."""
        from onestack.host import linkdump

        try:
            raw = linkdump.dump()
        except OSError as exc:
            raise HostError(f"netlink link dump: {exc}") from exc
        by_index = {r.ifindex: r.name for r in raw}
        return sorted((Link(name=r.name, index=r.ifindex, kind=r.kind, mac=r.mac, mtu=r.mtu,
                            up=bool(r.flags & IFF_UP), operstate=r.operstate,
                            master=by_index.get(r.master) if r.master else None) for r in raw),
                      key=lambda x: x.index)

    def _get_msg(self, **key: Any) -> Any | None:
        """One link's message, asked of the kernel by name or index (no dump)."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            msgs = self._ipr.link("get", **key)
        except NetlinkError as exc:
            if exc.code == 19:  # ENODEV
                return None
            raise HostError(f"netlink get link {key}: {exc}") from exc
        return msgs[0] if msgs else None

    def link(self, name: str) -> Link | None:
        """One link by name (``linkdump``: no pyroute2 decoding), None if none."""
        from onestack.host import linkdump

        try:
            raw = linkdump.get(name=check_ifname(name))
            master = linkdump.get(index=raw.master) if raw is not None and raw.master else None
        except OSError as exc:
            raise HostError(f"netlink get link {name}: {exc}") from exc
        if raw is None:
            return None
        return Link(name=raw.name, index=raw.ifindex, kind=raw.kind, mac=raw.mac, mtu=raw.mtu,
                    up=bool(raw.flags & IFF_UP), operstate=raw.operstate,
                    master=master.name if master is not None else None)

    def counters(self, name: str) -> dict[str, int] | None:
        """The link's packet and byte counters as the kernel keeps them
        (rx_/tx_ packets, bytes, errors, dropped), or None if there is no such link."""
        msg = self._get_msg(ifname=check_ifname(name))
        if msg is None:
            return None
        stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS")
        if stats is None:
            return dict.fromkeys(COUNTERS, 0)
        return {key: int(stats[key]) for key in COUNTERS}

    def _index(self, name: str) -> int:
        link = self.link(name)
        if link is None:
            raise NotFound(f"no link {name}")
        return link.index

    def _existing(self, name: str, kind: str) -> bool:
        link = self.link(check_ifname(name))
        if link is None:
            return False
        if link.kind != kind:
            raise HostError(f"link {name} exists but is a {link.kind or 'plain'} link, not {kind}")
        return True

    def _settle(self, name: str, mtu: int | None, mac: str | None, master: str | None,
                up: bool | None) -> None:
        """Brings the link to these settings with one request (none if it is there)."""
        link = self._get(name)
        change: dict[str, Any] = {}
        if mtu is not None and link.mtu != mtu:
            change["mtu"] = mtu
        if mac is not None and link.mac.lower() != mac.lower():
            change["address"] = mac
        if master is not None and link.master != master:
            change["master"] = self._index(master)
        if up is not None and link.up != up:
            change["state"] = "up" if up else "down"
        if change and not set(change) - {"mtu", "state"}:  # without pyroute2
            self._raw_change(link.index, change.get("mtu"), None if "state" not in change else up)
        elif change:
            self._nl("link", "set", index=link.index, **change)

    @staticmethod
    def _raw_change(index: int, mtu: int | None, up: bool | None) -> None:
        from onestack.host import linkdump

        try:
            linkdump.change(index, mtu=mtu, up=up)
        except OSError as exc:
            raise HostError(f"netlink set link {index} mtu={mtu} up={up}: {exc}") from exc

    def ensure_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                      up: bool | None = True) -> bool:
        """A bridge without STP and with no forwarding delay (ports forward at once)."""
        from onestack.host import linkdump

        created = False
        if not self._existing(name, "bridge"):
            try:
                linkdump.new_bridge(name, up=bool(up))  # made up at once: one request
                created = True
            except OSError as exc:
                # Another agent task made it between our look and our add (two
                # tasks of one network may both ensure its bridge): fine if it
                # is a bridge now; anything else is a real failure.
                if not self._existing(name, "bridge"):
                    raise HostError(f"netlink add bridge {name}: {exc}") from exc
        self._settle(name, mtu, mac, None, up)
        return created

    def ensure_veth(self, name: str, peer: str, *, peer_netns: str | None = "",
                    mtu: int | None = None, master: str | None = None,
                    up: bool | None = True) -> bool:
        """A veth pair: ``name`` here, ``peer`` in namespace ``peer_netns``
        ("": this one; None: the namespace this process started in).
        The peer is left down; bring it up from its own namespace."""
        created = False
        check_ifname(peer)
        if not self._existing(name, "veth"):
            spec: dict[str, Any] = {"ifname": peer}
            if peer_netns != "":
                spec["net_ns_fd"] = _ns_target(peer_netns)
            if mtu is not None:
                spec["mtu"] = mtu
            self._nl("link", "add", ifname=name, kind="veth", peer=spec)
            created = True
        self._settle(name, mtu, None, master, up)
        return created

    def ensure_tap(self, name: str, *, owner: int | None = None, group: int | None = None,
                   mtu: int | None = None, mac: str | None = None, master: str | None = None,
                   multi_queue: bool = False, up: bool | None = True) -> bool:
        """A persistent tap (no packet information header, as QEMU opens it),
        owned by ``owner``/``group`` when given, so an unprivileged QEMU may open it."""
        created = False
        if not self._existing(name, "tun"):
            ifr = {"no_pi": True, "multi_queue": multi_queue}
            kwargs: dict[str, Any] = {"ifname": name, "kind": "tuntap", "mode": "tap", "ifr": ifr}
            if owner is not None:
                kwargs["uid"] = owner
            if group is not None:
                kwargs["gid"] = group
            self._nl("link", "add", **kwargs)
            created = True
        self._settle(name, mtu, mac, master, up)
        return created

    def ensure_vxlan(self, name: str, vni: int, *, local: str | None = None,
                     group: str | None = None, dev: str | None = None, port: int = 4789,
                     learning: bool = True, mtu: int | None = None, master: str | None = None,
                     up: bool | None = True) -> bool:
        """A VXLAN device for segment ``vni`` (multicast ``group`` or unicast
        with forwarding entries added later), UDP ``port`` (IANA's 4789)."""
        if not 0 < vni < 2**24:
            raise HostError(f"invalid VXLAN id {vni}")
        created = False
        if not self._existing(name, "vxlan"):
            kwargs: dict[str, Any] = {"ifname": name, "kind": "vxlan", "vxlan_id": vni,
                                      "vxlan_port": port, "vxlan_learning": int(learning)}
            if local:
                kwargs["vxlan_local"] = local
            if group:
                kwargs["vxlan_group"] = group
            if dev:
                kwargs["vxlan_link"] = self._index(dev)
            self._nl("link", "add", **kwargs)
            created = True
        self._settle(name, mtu, None, master, up)
        return created

    def delete(self, name: str) -> bool:
        """Removes link ``name`` (a veth takes its peer with it); True if it existed."""
        found = self._ipr.link_lookup(ifname=check_ifname(name))
        if not found:
            return False
        self._nl("link", "del", index=found[0])
        return True

    def set_up(self, name: str) -> bool:
        link = self._get(name)
        if link.up:
            return False
        self._raw_change(link.index, None, True)
        return True

    def set_down(self, name: str) -> bool:
        link = self._get(name)
        if not link.up:
            return False
        self._raw_change(link.index, None, False)
        return True

    def set_mtu(self, name: str, mtu: int) -> bool:
        link = self._get(name)
        if link.mtu == mtu:
            return False
        self._raw_change(link.index, mtu, None)
        return True

    def set_mac(self, name: str, mac: str) -> bool:
        link = self._get(name)
        if link.mac.lower() == mac.lower():
            return False
        self._nl("link", "set", index=link.index, address=mac)
        return True

    def set_master(self, name: str, master: str | None) -> bool:
        """Makes ``name`` a port of bridge ``master`` (None: of no bridge)."""
        link = self._get(name)
        if link.master == master:
            return False
        self._nl("link", "set", index=link.index,
                 master=self._index(master) if master is not None else 0)
        return True

    def move_to(self, name: str, target_netns: str | None) -> None:
        """Moves link ``name`` into another namespace (None: this process's own)."""
        self._nl("link", "set", index=self._get(name).index, net_ns_fd=_ns_target(target_netns))

    def _get(self, name: str) -> Link:
        link = self.link(check_ifname(name))
        if link is None:
            raise NotFound(f"no link {name}")
        return link

    # --- addresses -----------------------------------------------------------

    def addresses(self, name: str, link_local: bool = False) -> list[str]:
        """The addresses on ``name`` as CIDRs ("10.0.0.1/24"); IPv6 link-local
        ones only if asked."""
        index = self._index(name)
        out = []
        for msg in self._nl("get_addr", index=index):
            address = msg.get_attr("IFA_ADDRESS")
            if msg["family"] == 2:
                address = msg.get_attr("IFA_LOCAL") or address
            cidr = f"{address}/{msg['prefixlen']}"
            if not link_local and _interface(cidr).ip.is_link_local and msg["family"] == 10:
                continue
            out.append(cidr)
        return out

    def ensure_address(self, name: str, cidr: str) -> bool:
        iface = _interface(cidr)
        if any(_interface(have) == iface for have in self.addresses(name, link_local=True)):
            return False
        self._nl("addr", "add", index=self._index(name), address=str(iface.ip),
                 prefixlen=iface.network.prefixlen)
        return True

    def remove_address(self, name: str, cidr: str) -> bool:
        iface = _interface(cidr)
        if not any(_interface(have) == iface for have in self.addresses(name, link_local=True)):
            return False
        self._nl("addr", "del", index=self._index(name), address=str(iface.ip),
                 prefixlen=iface.network.prefixlen)
        return True

    def sync_addresses(self, name: str, cidrs: Iterable[str]) -> tuple[list[str], list[str]]:
        """Makes the addresses of ``name`` exactly ``cidrs`` (IPv6 link-local
        ones are left alone); returns (added, removed)."""
        wanted = {_interface(c) for c in cidrs}
        have = {_interface(c) for c in self.addresses(name)}
        removed = [str(i) for i in sorted(have - wanted, key=str)]
        added = [str(i) for i in sorted(wanted - have, key=str)]
        for cidr in removed:
            self.remove_address(name, cidr)
        for cidr in added:
            self.ensure_address(name, cidr)
        return added, removed

    # --- routes --------------------------------------------------------------

    def routes(self, table: int = MAIN_TABLE, family: int | None = None) -> list[Route]:
        """Unicast routes of ``table``, both families unless one is given
        (the kernel's own local, broadcast and link-local IPv6 ones are left out)."""
        names = {link.index: link.name for link in self.links()}
        out = []
        for fam, afamily in ((4, 2), (6, 10)):
            if family not in (None, fam):
                continue
            for msg in self._nl("get_routes", family=afamily, table=table):
                if msg["type"] != 1:  # RTN_UNICAST only
                    continue
                dst = msg.get_attr("RTA_DST")
                if fam == 6 and dst is not None and dst.startswith("fe80:"):
                    continue
                text = f"{dst}/{msg['dst_len']}" if dst is not None else "default"
                oif = msg.get_attr("RTA_OIF")
                out.append(Route(dst=text, gateway=msg.get_attr("RTA_GATEWAY"),
                                 dev=names.get(oif) if oif else None,
                                 table=msg.get_attr("RTA_TABLE") or msg["table"],
                                 metric=msg.get_attr("RTA_PRIORITY"), family=fam))
        return out

    def _route_args(self, dst: str, gateway: str | None, dev: str | None, table: int,
                    metric: int | None) -> dict[str, Any]:
        address, prefix, family = _route_dst(dst)
        if gateway is not None and ipaddress.ip_address(gateway).version != family:
            raise HostError(f"gateway {gateway} is not of the family of {dst}")
        args: dict[str, Any] = {"dst": address, "dst_len": prefix, "table": table,
                                "family": 2 if family == 4 else 10}
        if gateway:
            args["gateway"] = gateway
        if dev:
            args["oif"] = self._index(dev)
        if metric is not None:
            args["priority"] = metric
        return args

    def _same_route(self, route: Route, dst: str, gateway: str | None, dev: str | None,
                    metric: int | None, family: int) -> bool:
        want = "default" if _route_dst(dst)[1] == 0 else str(ipaddress.ip_network(dst))
        return (route.family == family and route.dst == want and route.gateway == gateway
                and (dev is None or route.dev == dev)
                and (metric is None or route.metric == metric))

    def ensure_route(self, dst: str, *, gateway: str | None = None, dev: str | None = None,
                     table: int = MAIN_TABLE, metric: int | None = None) -> bool:
        """A route to ``dst`` ("default" or "default6" for the default routes)
        via ``gateway`` and/or out of ``dev``; replaces another route to the same
        destination. True if anything changed."""
        args = self._route_args(dst, gateway, dev, table, metric)
        family = _route_dst(dst)[2]
        if any(self._same_route(r, dst, gateway, dev, metric, family)
               for r in self.routes(table, family)):
            return False
        self._nl("route", "replace", **args)
        return True

    def delete_route(self, dst: str, *, table: int = MAIN_TABLE) -> bool:
        address, prefix, family = _route_dst(dst)
        want = "default" if prefix == 0 else f"{address}/{prefix}"
        if not any(r.dst == want for r in self.routes(table, family)):
            return False
        self._nl("route", "del", dst=address, dst_len=prefix, table=table,
                 family=2 if family == 4 else 10)
        return True

    # --- sysctls of this namespace -------------------------------------------

    def sysctl(self, key: str) -> str:
        return netns.read_sysctl(key)

    def set_sysctl(self, key: str, value: str | int) -> bool:
        return netns.write_sysctl(key, value)
