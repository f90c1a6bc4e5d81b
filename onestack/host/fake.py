"""An in-memory :class:`~onestack.host.base.Host` for tests of agents and drivers.

It keeps the state a real host would have (namespaces with their links,
addresses, routes and sysctls; nftables tables; dnsmasq instances; images;
guests and their devices), answers the same questions ("list what exists")
and enforces the same rules where a caller could get them wrong (a link of
another kind under the same name, a missing namespace, a guest started twice,
a full set of hot-plug ports). Every effect is appended to ``calls`` as a
tuple, e.g. ``("netlink", "ns1", "ensure_bridge", "br0")``, so a test can
assert what was asked. Nothing touches the machine.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from onestack.host import dnsmasq as dnsmasq_mod
from onestack.host.base import Host
from onestack.host.dnsmasq import DnsmasqSpec, Lease
from onestack.host.errors import HostError, NotFound
from onestack.host.fake_guests import FakeGuests, FakeQMP
from onestack.host.links import COUNTERS, Link, Route, check_ifname
from onestack.host.nft import Table
from onestack.host.qemu_img import FORMATS, ImageInfo

T = TypeVar("T")
_pids = itertools.count(40000)
_macs = itertools.count(1)


@dataclass
class _Link:
    name: str
    index: int
    kind: str
    mac: str
    mtu: int = 1500
    up: bool = False
    master: str | None = None
    peer: tuple[str | None, str] | None = None  # (namespace, name) of a veth's other end
    addresses: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # what a test wants it to show


@dataclass
class FakeNamespace:
    links: dict[str, _Link] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    next_index: int = 1


class FakeNetlink:
    """The NetlinkOps of one fake namespace."""

    def __init__(self, net: FakeNet, ns: str | None) -> None:
        self._net = net
        self._ns = ns
        self._space = net.spaces[ns]

    def _rec(self, *what: Any) -> None:
        self._net.calls.append(("netlink", self._ns, *what))

    def _new(self, name: str, kind: str, space: FakeNamespace | None = None) -> _Link:
        space = space or self._space
        link = _Link(check_ifname(name), space.next_index, kind,
                     f"fa:16:3e:00:{next(_macs) // 256 % 256:02x}:{next(_macs) % 256:02x}")
        space.next_index += 1
        space.links[name] = link
        return link

    def _get(self, name: str) -> _Link:
        link = self._space.links.get(check_ifname(name))
        if link is None:
            raise NotFound(f"no link {name}")
        return link

    def _exists(self, name: str, kind: str) -> bool:
        link = self._space.links.get(check_ifname(name))
        if link is None:
            return False
        if link.kind != kind:
            raise HostError(f"link {name} exists but is a {link.kind or 'plain'} link, not {kind}")
        return True

    def _settle(self, name: str, mtu: int | None, mac: str | None, master: str | None,
                up: bool | None) -> None:
        if mtu is not None:
            self.set_mtu(name, mtu)
        if mac is not None:
            self.set_mac(name, mac)
        if master is not None:
            self.set_master(name, master)
        if up is True:
            self.set_up(name)
        elif up is False:
            self.set_down(name)

    def links(self) -> list[Link]:
        return [Link(x.name, x.index, x.kind, x.mac, x.mtu, x.up,
                     "UP" if x.up else "DOWN", x.master)
                for x in sorted(self._space.links.values(), key=lambda x: x.index)]

    def link(self, name: str) -> Link | None:
        return next((x for x in self.links() if x.name == name), None)

    def counters(self, name: str) -> dict[str, int] | None:
        link = self._space.links.get(check_ifname(name))
        if link is None:
            return None
        return {key: link.counters.get(key, 0) for key in COUNTERS}

    def ensure_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                      up: bool | None = True) -> bool:
        created = not self._exists(name, "bridge")
        if created:
            self._rec("ensure_bridge", name)
            self._new(name, "bridge")
        self._settle(name, mtu, mac, None, up)
        return created

    def ensure_veth(self, name: str, peer: str, *, peer_netns: str | None = "",
                    mtu: int | None = None, master: str | None = None,
                    up: bool | None = True) -> bool:
        created = not self._exists(name, "veth")
        if created:
            target = self._ns if peer_netns == "" else peer_netns
            if target not in self._net.spaces:
                raise NotFound(f"network namespace {target!r} does not exist")
            other = self._net.spaces[target]
            if check_ifname(peer) in other.links:
                raise HostError(f"link {peer} exists in {target}")
            self._rec("ensure_veth", name, peer, target)
            mine = self._new(name, "veth")
            theirs = self._new(peer, "veth", other)
            mine.peer, theirs.peer = (target, peer), (self._ns, name)
            if mtu is not None:
                theirs.mtu = mtu
        self._settle(name, mtu, None, master, up)
        return created

    def ensure_tap(self, name: str, *, owner: int | None = None, group: int | None = None,
                   mtu: int | None = None, mac: str | None = None, master: str | None = None,
                   multi_queue: bool = False, up: bool | None = True) -> bool:
        created = not self._exists(name, "tun")
        if created:
            self._rec("ensure_tap", name, owner)
            self._new(name, "tun")
        self._settle(name, mtu, mac, master, up)
        return created

    def ensure_vxlan(self, name: str, vni: int, *, local: str | None = None,
                     group: str | None = None, dev: str | None = None, port: int = 4789,
                     learning: bool = True, mtu: int | None = None,
                     master: str | None = None, up: bool | None = True) -> bool:
        if not 0 < vni < 2**24:
            raise HostError(f"invalid VXLAN id {vni}")
        created = not self._exists(name, "vxlan")
        if created:
            if dev is not None:
                self._get(dev)
            self._rec("ensure_vxlan", name, vni, local, group, dev)
            self._new(name, "vxlan")
        self._settle(name, mtu, None, master, up)
        return created

    def delete(self, name: str) -> bool:
        link = self._space.links.pop(check_ifname(name), None)
        if link is None:
            return False
        self._rec("delete", name)
        for other in self._space.links.values():
            if other.master == name:
                other.master = None
        if link.peer is not None:
            peer_ns, peer_name = link.peer
            self._net.spaces.get(peer_ns, FakeNamespace()).links.pop(peer_name, None)
        self._space.routes = [r for r in self._space.routes if r.dev != name]
        return True

    def _set(self, name: str, attr: str, value: Any) -> bool:
        link = self._get(name)
        if getattr(link, attr) == value:
            return False
        self._rec(f"set_{attr}", name, value)
        setattr(link, attr, value)
        return True

    def set_up(self, name: str) -> bool:
        return self._set(name, "up", True)

    def set_down(self, name: str) -> bool:
        return self._set(name, "up", False)

    def set_mtu(self, name: str, mtu: int) -> bool:
        return self._set(name, "mtu", mtu)

    def set_mac(self, name: str, mac: str) -> bool:
        return self._set(name, "mac", mac.lower())

    def set_master(self, name: str, master: str | None) -> bool:
        if master is not None and self._get(master).kind != "bridge":
            raise HostError(f"{master} is not a bridge")
        return self._set(name, "master", master)

    def move_to(self, name: str, target_netns: str | None) -> None:
        if target_netns not in self._net.spaces:
            raise NotFound(f"network namespace {target_netns!r} does not exist")
        link = self._get(name)
        self._rec("move_to", name, target_netns)
        del self._space.links[name]
        target = self._net.spaces[target_netns]
        link.index, link.master, link.up, link.addresses = target.next_index, None, False, []
        target.next_index += 1
        target.links[name] = link
        if link.peer is not None:
            peer = self._net.spaces[link.peer[0]].links.get(link.peer[1])
            if peer is not None:
                peer.peer = (target_netns, name)

    def addresses(self, name: str, link_local: bool = False) -> list[str]:
        return list(self._get(name).addresses)

    def ensure_address(self, name: str, cidr: str) -> bool:
        iface = _iface(cidr)
        link = self._get(name)
        if any(_iface(a) == iface for a in link.addresses):
            return False
        self._rec("ensure_address", name, str(iface))
        link.addresses.append(str(iface))
        return True

    def remove_address(self, name: str, cidr: str) -> bool:
        iface = _iface(cidr)
        link = self._get(name)
        for have in link.addresses:
            if _iface(have) == iface:
                self._rec("remove_address", name, str(iface))
                link.addresses.remove(have)
                return True
        return False

    def sync_addresses(self, name: str, cidrs: Iterable[str]) -> tuple[list[str], list[str]]:
        wanted = {_iface(c) for c in cidrs}
        have = {_iface(c) for c in self._get(name).addresses}
        removed = [str(i) for i in sorted(have - wanted, key=str)]
        added = [str(i) for i in sorted(wanted - have, key=str)]
        for cidr in removed:
            self.remove_address(name, cidr)
        for cidr in added:
            self.ensure_address(name, cidr)
        return added, removed

    def routes(self, table: int = 254, family: int | None = None) -> list[Route]:
        return [r for r in self._space.routes
                if r.table == table and family in (None, r.family)]

    def ensure_route(self, dst: str, *, gateway: str | None = None, dev: str | None = None,
                     table: int = 254, metric: int | None = None) -> bool:
        family = 6 if dst == "default6" or ":" in dst else 4
        want = "default" if dst in ("default", "default6") else str(ipaddress.ip_network(dst))
        if dev is not None:
            self._get(dev)
        route = Route(want, gateway, dev, table, metric, family)
        if route in self._space.routes:
            return False
        self._rec("ensure_route", want, gateway, dev, table)
        self._space.routes = [r for r in self._space.routes
                              if not (r.dst == want and r.table == table and r.family == family)]
        self._space.routes.append(route)
        return True

    def delete_route(self, dst: str, *, table: int = 254) -> bool:
        family = 6 if dst == "default6" or ":" in dst else 4
        want = "default" if dst in ("default", "default6") else str(ipaddress.ip_network(dst))
        keep = [r for r in self._space.routes
                if not (r.dst == want and r.table == table and r.family == family)]
        if len(keep) == len(self._space.routes):
            return False
        self._rec("delete_route", want, table)
        self._space.routes = keep
        return True

    def sysctl(self, key: str) -> str:
        return self._space.sysctls.get(_sysctl_key(key), "0")

    def set_sysctl(self, key: str, value: str | int) -> bool:
        key = _sysctl_key(key)
        if self._space.sysctls.get(key) == str(value):
            return False
        self._rec("set_sysctl", key, str(value))
        self._space.sysctls[key] = str(value)
        return True


def _iface(cidr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(cidr)
    except ValueError:
        raise HostError(f"invalid address {cidr!r}") from None


def _sysctl_key(key: str) -> str:
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net":
        raise HostError(f"not a per-namespace sysctl: {key!r}")
    return "/".join(parts)


class FakeNet:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.spaces: dict[str | None, FakeNamespace] = {None: FakeNamespace()}
        # argv -> (returncode, stdout) for FakeNet.run; default (0, "")
        self.results: dict[tuple[str, ...], tuple[int, str]] = {}

    async def ensure_netns(self, name: str) -> bool:
        from onestack.host.netns import check_name

        if check_name(name) in self.spaces:
            return False
        self.calls.append(("ensure_netns", name))
        space = FakeNamespace()
        lo = _Link("lo", 1, "", "00:00:00:00:00:00", 65536, True, addresses=["127.0.0.1/8"])
        space.links["lo"], space.next_index = lo, 2
        self.spaces[name] = space
        return True

    async def delete_netns(self, name: str) -> bool:
        if name not in self.spaces or name is None:
            return False
        self.calls.append(("delete_netns", name))
        for link in list(self.spaces[name].links.values()):
            if link.peer is not None:
                self.spaces.get(link.peer[0], FakeNamespace()).links.pop(link.peer[1], None)
        del self.spaces[name]
        return True

    async def list_netns(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.spaces if n is not None and n.startswith(prefix))

    async def netlink(self, ns: str | None, fn: Callable[[Any], T]) -> T:
        if ns not in self.spaces:
            raise NotFound(f"network namespace {ns!r} does not exist")
        return fn(FakeNetlink(self, ns))

    async def run(self, ns: str | None, argv: Sequence[str],
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if ns not in self.spaces:
            raise NotFound(f"network namespace {ns!r} does not exist")
        self.calls.append(("run", ns, *argv))
        rc, out = self.results.get(tuple(argv), (0, ""))
        return subprocess.CompletedProcess(list(argv), rc, out, "")


class FakeFirewall:
    def __init__(self, calls: list[tuple[Any, ...]], net: FakeNet) -> None:
        self.calls = calls
        self._net = net
        self.tables: dict[tuple[str | None, str, str], Table] = {}

    def _ns(self, ns: str | None) -> None:
        if ns not in self._net.spaces:
            raise NotFound(f"network namespace {ns!r} does not exist")

    async def apply(self, ns: str | None, table: Table) -> None:
        self._ns(ns)
        table.commands()  # the same validation as the real one
        self.calls.append(("nft.apply", ns, table.family, table.name))
        self.tables[(ns, table.family, table.name)] = Table(table.family, table.name,
                                                            list(table.items))

    async def delete_table(self, ns: str | None, family: str, name: str) -> bool:
        self._ns(ns)
        if self.tables.pop((ns, family, name), None) is None:
            return False
        self.calls.append(("nft.delete", ns, family, name))
        return True

    async def list_tables(self, ns: str | None) -> list[tuple[str, str]]:
        self._ns(ns)
        return sorted((f, n) for (space, f, n) in self.tables if space == ns)


class FakeDhcp:
    def __init__(self, calls: list[tuple[Any, ...]], net: FakeNet) -> None:
        self.calls = calls
        self._net = net
        self.instances: dict[str, tuple[DnsmasqSpec, int, dict[str, str]]] = {}
        self.lease_table: dict[str, list[Lease]] = {}

    async def ensure(self, spec: DnsmasqSpec) -> str:
        if spec.netns not in self._net.spaces:
            raise NotFound(f"network namespace {spec.netns!r} does not exist")
        files = dnsmasq_mod.render(spec, Path("/fake/dnsmasq") / spec.name)
        hosts, names = dnsmasq_mod.entries(spec)
        files.update({f"{dnsmasq_mod.HOSTS_DIR}/{k}": v for k, v in hosts.items()})
        files.update({f"{dnsmasq_mod.NAMES_DIR}/{k}": v for k, v in names.items()})
        have = self.instances.get(spec.name)
        if have is None:
            result, pid = "started", next(_pids)
        elif have[2][dnsmasq_mod.CONF] != files[dnsmasq_mod.CONF]:
            result, pid = "restarted", next(_pids)
        elif have[2] == files:
            return "unchanged"
        elif any(have[2].get(k) != files.get(k) for k in (*dnsmasq_mod.RELOADABLE, *have[2])
                 if k.startswith(dnsmasq_mod.HOSTS_DIR) or k in dnsmasq_mod.RELOADABLE):
            result, pid = "reloaded", have[1]  # an entry changed or went, or options: SIGHUP
        else:
            result, pid = "updated", have[1]  # new entries or names only: no signal
        self.calls.append(("dnsmasq." + result, spec.name))
        self.instances[spec.name] = (spec, pid, files)
        return result

    async def reload(self, name: str) -> bool:
        return name in self.instances

    async def stop(self, name: str) -> bool:
        if self.instances.pop(name, None) is None:
            return False
        self.calls.append(("dnsmasq.stop", name))
        return True

    async def names(self) -> list[str]:
        return sorted(self.instances)

    async def running(self) -> dict[str, int]:
        return {name: pid for name, (_s, pid, _f) in self.instances.items()}

    async def leases(self, name: str) -> list[Lease]:
        return list(self.lease_table.get(name, []))


@dataclass
class FakeImage:
    format: str
    size: int
    backing: Path | None = None
    backing_format: str | None = None


class FakeImages:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.files: dict[Path, FakeImage] = {}
        self.isos: dict[Path, tuple[str, dict[str, bytes]]] = {}  # path -> (label, files)

    def _image(self, path: Path, fmt: str) -> FakeImage:
        image = self.files.get(Path(path))
        if image is None:
            if Path(path).exists() and fmt == "raw":
                return FakeImage("raw", Path(path).stat().st_size)
            raise HostError(f"qemu-img: could not open '{path}': No such file or directory")
        if image.format != fmt:
            raise HostError(f"qemu-img: '{path}' is not a {fmt} image")
        return image

    @staticmethod
    def _fmt(fmt: str) -> None:
        if fmt not in FORMATS:
            raise HostError(f"unsupported image format {fmt!r}")

    async def create(self, path: Path, fmt: str, size: int) -> None:
        self._fmt(fmt)
        if size <= 0:
            raise HostError(f"invalid image size {size}")
        self.calls.append(("qemu-img.create", Path(path), fmt, size))
        self.files[Path(path)] = FakeImage(fmt, size)

    async def create_overlay(self, path: Path, backing: Path, backing_fmt: str, *,
                             size: int | None = None) -> None:
        self._fmt(backing_fmt)
        base = self._image(backing, backing_fmt)
        self.calls.append(("qemu-img.overlay", Path(path), Path(backing), backing_fmt))
        self.files[Path(path)] = FakeImage("qcow2", max(size or 0, base.size), Path(backing),
                                           backing_fmt)

    async def convert(self, src: Path, src_fmt: str, dst: Path, dst_fmt: str, *,
                      compress: bool = False, force_share: bool = False) -> None:
        self._fmt(dst_fmt)
        image = self._image(src, src_fmt)
        self.calls.append(("qemu-img.convert", Path(src), src_fmt, Path(dst), dst_fmt))
        self.files[Path(dst)] = FakeImage(dst_fmt, image.size)

    async def info(self, path: Path, fmt: str, *, force_share: bool = False) -> ImageInfo:
        image = self._image(path, fmt)
        backing = str(image.backing) if image.backing else None
        return ImageInfo(image.format, image.size, None, backing, image.backing_format,
                         65536 if image.format == "qcow2" else None, False, False, {})

    async def resize(self, path: Path, fmt: str, size: int, *, shrink: bool = False) -> None:
        image = self._image(path, fmt)
        if size < image.size and not shrink:
            raise HostError("qemu-img: Use the --shrink option to perform a shrink operation.")
        self.calls.append(("qemu-img.resize", Path(path), size))
        image.size = size

    async def copy(self, src: Path, dst: Path) -> None:
        image = self.files.get(Path(src))
        if image is None:
            raise HostError(f"cp: cannot stat '{src}': No such file or directory")
        self.calls.append(("copy", Path(src), Path(dst)))
        self.files[Path(dst)] = FakeImage(image.format, image.size, image.backing,
                                          image.backing_format)
        if Path(src) in self.isos:
            self.isos[Path(dst)] = self.isos[Path(src)]

    async def make_iso(self, path: Path, label: str, files: Mapping[str, bytes]) -> None:
        from onestack.host import iso

        iso.check_files(files)
        iso.argv(["genisoimage"], Path(path), label, Path("/fake"))  # checks the label
        self.calls.append(("iso.make", Path(path), label))
        self.isos[Path(path)] = (label, dict(files))
        size = 2048 * (20 + sum(1 + len(data) // 2048 for data in files.values()))
        self.files[Path(path)] = FakeImage("raw", size)


class FakeHost(Host):
    """A :class:`Host` made of the fakes above; ``calls`` is their shared log."""

    net: FakeNet
    firewall: FakeFirewall
    dhcp: FakeDhcp
    images: FakeImages
    guests: FakeGuests

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        net = FakeNet(self.calls)
        super().__init__(net=net, firewall=FakeFirewall(self.calls, net),
                         dhcp=FakeDhcp(self.calls, net), images=FakeImages(self.calls),
                         guests=FakeGuests(self.calls, lambda ns: ns in net.spaces))


__all__ = ["FakeDhcp", "FakeFirewall", "FakeGuests", "FakeHost", "FakeImages", "FakeNet",
           "FakeNetlink", "FakeQMP"]
