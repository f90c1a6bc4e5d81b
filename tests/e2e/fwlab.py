"""A small data plane for the firewall's end-to-end tests (root).

Made as the network agent makes it, with this test's own prefix: the cloud's root
namespace ``<prefix>-dp`` holding a bridge, and one namespace per "instance"
whose ``eth0`` (the port's MAC and address) is a veth whose other end, on the
bridge, is named like the port's tap (``Layout.tap``). TCP and UDP run in this
process: a socket opened inside a namespace (``netns.call``) stays there.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from onestack.host import links, netns
from onestack.network.agent import firewall
from onestack.network.agent.layout import Layout
from tests.e2e import testnet

T = TypeVar("T")
NETWORK_ID = "5e7c0b1a-0000-4000-8000-00000000f00d"
OTHER_NETWORK_ID = "5e7c0b1b-0000-4000-8000-00000000beef"


def nl(ns: str, fn: Callable[[links.Netlink], T]) -> T:
    def work() -> T:
        with links.Netlink() as link:
            return fn(link)

    return netns.call(ns, work)


@dataclass
class Vm:
    name: str
    ns: str
    port_id: str
    mac: str
    ip: str
    ip6: str

    @property
    def device(self) -> str:
        return Layout.tap(self.port_id)

    def port(self, rules: tuple[firewall.SecurityGroupRule, ...] = (), *,
             pairs: tuple[tuple[str, str], ...] = (), port_security: bool = True,
             fixed_ips: tuple[str, ...] | None = None,
             ra_sources: tuple[str, ...] = ()) -> firewall.FirewallPort:
        return firewall.FirewallPort(
            port_id=self.port_id, device=self.device, mac=self.mac,
            fixed_ips=fixed_ips or (self.ip, self.ip6), allowed_address_pairs=pairs,
            port_security_enabled=port_security, rules=rules, ra_sources=ra_sources)

    @property
    def link_local(self) -> str:
        return firewall.link_local(self.mac)

    # --- traffic ---------------------------------------------------------------------------

    def ping(self, ip: str, wait: int = 1) -> bool:
        cmd = ["busybox", "ping6" if ":" in ip else "ping", "-c", "1", "-W", str(wait), ip]
        return netns.run(self.ns, cmd, timeout=10).returncode == 0

    def ping_until(self, ip: str, within: float) -> float | None:
        """Seconds until a ping gets through, or None if none did within ``within``."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            cmd = ["busybox", "ping", "-c", "1", "-W", "1", "-w", "1", ip]
            if netns.run(self.ns, cmd, timeout=10).returncode == 0:
                return time.monotonic() - start
        return None

    def connect(self, ip: str, port: int, timeout: float = 1.0,
                source_port: int = 0) -> bool:
        """A TCP connection answered with the server's greeting."""
        def work() -> bool:
            try:
                with socket.create_connection((ip, port), timeout=timeout,
                                              source_address=(self.ip, source_port)) as conn:
                    return conn.recv(16) == b"ok"
            except OSError:
                return False

        return netns.call(self.ns, work)

    def open_connection(self, ip: str, port: int) -> socket.socket:
        def work() -> socket.socket:
            conn = socket.create_connection((ip, port), timeout=2)
            assert conn.recv(16) == b"ok"
            return conn

        return netns.call(self.ns, work)

    def send_udp(self, src: str, dst: str, port: int, payload: bytes) -> None:
        def work() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((src, 0))
                s.sendto(payload, (dst, port))

        netns.call(self.ns, work)

    def send_router_advertisement(self, prefix: str) -> None:
        """One router advertisement to all nodes from eth0's link-local address: a
        default router (30 min) with ``prefix`` (a /64) for SLAAC."""
        net = ipaddress.IPv6Network(prefix)

        def work() -> None:
            index = socket.if_nametoindex("eth0")
            with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
                # type, code, checksum (the kernel's), hop limit, flags, router
                # lifetime, reachable, retransmit; then a prefix option (on-link,
                # autonomous; valid and preferred lifetimes)
                ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
                ra += struct.pack("!BBBBIII", 3, 4, net.prefixlen, 0xC0, 86400, 14400, 0)
                ra += net.network_address.packed
                s.sendto(ra, ("ff02::1", 0, 0, index))

        netns.call(self.ns, work)

    def addresses(self) -> list[str]:
        return nl(self.ns, lambda n: n.addresses("eth0"))

    def add_address(self, cidr: str) -> None:
        nl(self.ns, lambda n: n.ensure_address("eth0", cidr))

    def set_mac(self, mac: str) -> None:
        nl(self.ns, lambda n: n.set_mac("eth0", mac))


@dataclass
class Lab:
    layout: Layout
    bridge: str = Layout.bridge(NETWORK_ID)
    vms: dict[str, Vm] = field(default_factory=dict)
    servers: list[socket.socket] = field(default_factory=list)

    def vm(self, name: str, n: int, *, addresses: bool = True, other_network: bool = False,
           host: int | None = None) -> Vm:
        """An instance with port number ``n`` (its MAC and addresses follow from it,
        or the addresses from ``host``); without ``addresses`` it has none until
        DHCP and SLAAC give them. ``other_network``: on a second bridge."""
        ns = f"{self.layout.prefix}-{name}"
        host = n if host is None else host
        bridge = Layout.bridge(OTHER_NETWORK_ID) if other_network else self.bridge
        if other_network:
            nl(self.layout.root_ns, lambda r: r.ensure_bridge(bridge))
        vm = Vm(name, ns, port_id=f"{n:08x}-7e57-4000-8000-{n:012x}",
                mac=f"fa:16:3e:00:00:{n:02x}", ip=f"10.66.0.{host}", ip6=f"fd66::{host:x}")
        netns.ensure(ns)
        self.vms[name] = vm
        nl(self.layout.root_ns, lambda r: r.ensure_veth(
            vm.device, "eth0", peer_netns=ns, master=bridge))

        def inside(n_: links.Netlink) -> None:
            n_.set_sysctl("net/ipv6/conf/eth0/accept_dad", 0)
            n_.set_mac("eth0", vm.mac)
            n_.set_up("lo")
            n_.set_up("eth0")
            if addresses:
                n_.ensure_address("eth0", f"{vm.ip}/24")
                n_.ensure_address("eth0", f"{vm.ip6}/64")

        nl(ns, inside)
        return vm

    def sync(self, *ports: firewall.FirewallPort,
             members: dict[str, list[str]] | None = None) -> float:
        start = time.perf_counter()
        firewall.sync(self.layout, ports, members or {})
        return time.perf_counter() - start

    def serve_tcp(self, vm: Vm, port: int) -> None:
        """Answers every connection to ``vm``:``port`` with "ok" (and keeps it open)."""
        def listen() -> socket.socket:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((vm.ip, port))
            srv.listen(16)
            return srv

        srv = netns.call(vm.ns, listen)
        self.servers.append(srv)

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.sendall(b"ok")
                threading.Thread(target=_echo, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def udp_socket(self, vm: Vm, port: int) -> socket.socket:
        def listen() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((vm.ip, port))
            s.settimeout(1.0)
            return s

        s = netns.call(vm.ns, listen)
        self.servers.append(s)
        return s

    def close(self) -> None:
        for s in self.servers:
            s.close()
        try:
            firewall.remove(self.layout)
        finally:
            for vm in self.vms.values():
                netns.delete(vm.ns)
            netns.delete(self.layout.root_ns)


def _echo(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(1024)
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)


def alive(conn: socket.socket, timeout: float = 1.0) -> bool:
    """Whether the connection still carries data both ways (the server echoes)."""
    conn.settimeout(timeout)
    try:
        conn.sendall(b"ping")
        return conn.recv(16) == b"ping"
    except OSError:
        return False


def received(s: socket.socket) -> bytes | None:
    try:
        return s.recv(1024)
    except TimeoutError:
        return None


@contextmanager
def lab() -> Iterator[Lab]:
    layout = Layout(f"{testnet.OWN_PREFIX}{next(testnet._seq)}fw")
    the_lab = Lab(layout)
    try:
        netns.ensure(layout.root_ns)
        nl(layout.root_ns, lambda r: r.ensure_bridge(the_lab.bridge))
        yield the_lab
    finally:
        the_lab.close()
