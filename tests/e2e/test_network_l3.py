"""Routers on a real kernel (root): ``onestack.network.agent.l3`` with namespaces
standing in for instances and for a host on the external network.

Layout (every namespace is this test's own, ``<prefix>`` = onestack-e2e-<pid>-<n>)::

    <prefix>-dp         bridges of net-a, net-b, ext (what the network agent makes)
    <prefix>-vm-a       eth0 10.10.1.10/24 on net-a, default via 10.10.1.1
    <prefix>-vm-b       eth0 10.10.2.10/24 on net-b, default via 10.10.2.1
    <prefix>-ext        eth0 172.24.4.1/24 on ext: the external host
    <prefix>-qrouter-R  the router (sync_router): qr- on net-a, net-b; qg- 172.24.4.2

Every namespace has a tiny TCP server that answers each connection with the
address it sees the connection come from: how the test tells SNAT from no NAT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TypeVar

import pytest

from onestack.host import links, netns, nft, radvd
from onestack.network.agent import l3
from onestack.network.agent.layout import Layout
from tests.e2e import testnet

pytestmark = pytest.mark.e2e
T = TypeVar("T")

NET_A, NET_B, EXT = (str(uuid.uuid4()) for _ in range(3))
ROUTER, OTHER = "r" + uuid.uuid4().hex[:11], "r" + uuid.uuid4().hex[:11]
PORT_A, PORT_B, PORT_GW = (str(uuid.uuid4()) for _ in range(3))
VM_A_PORT, VM_B_PORT, EXT_PORT = (str(uuid.uuid4()) for _ in range(3))
IP_A, IP_B, EXT_IP, GW_IP = "10.10.1.10", "10.10.2.10", "172.24.4.1", "172.24.4.2"
FIP_A, FIP_PF = "172.24.4.10", "172.24.4.20"

# Answers every connection with the peer address it sees, then closes it.
WHO_SERVER = r"""
import socket, sys
srv = socket.socket(socket.AF_INET6)  # both families ("::" with v6only off)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(16)
print("ready", flush=True)
while True:
    conn, peer = srv.accept()
    conn.sendall((peer[0].removeprefix("::ffff:") + "\n").encode())
    conn.close()
"""
WHO_CLIENT = r"""
import socket, sys
try:
    conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print(conn.recv(100).decode().strip())
except OSError as exc:
    print("error", exc)
    sys.exit(1)
"""
# Echoes each line on every connection it accepts (a long-lived connection).
ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(4)
print("ready", flush=True)
def echo(conn):
    for line in conn.makefile("rb"):
        conn.sendall(line)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""
# One connection; for each line on stdin sends it and says whether it came back.
ECHO_CLIENT = r"""
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print("ready", flush=True)
for line in sys.stdin:
    try:
        conn.sendall(line.encode())
        print("ok" if conn.recv(100) == line.encode() else "wrong", flush=True)
    except OSError as exc:
        print("lost", exc, flush=True)
"""


def nl(ns: str, fn: Callable[[links.Netlink], T]) -> T:
    def work() -> T:
        with links.Netlink() as link:
            return fn(link)

    return netns.call(ns, work)


def wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ping(ns: str, ip: str) -> bool:
    return netns.run(ns, ["busybox", "ping", "-c", "1", "-W", "1", ip]).returncode == 0


def who(ns: str, ip: str, port: int) -> str | None:
    """Connects to ip:port from ``ns``: the source address the server saw, or None."""
    res = netns.run(ns, [sys.executable, "-c", WHO_CLIENT, ip, str(port)], timeout=15)
    return res.stdout.strip() if res.returncode == 0 else None


def serve(ns: str, ip: str, port: int) -> subprocess.Popen[bytes]:
    proc = netns.popen(ns, [sys.executable, "-c", WHO_SERVER, ip, str(port)],
                       stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def port(port_id: str, network_id: str, mac: str, *cidrs: str) -> l3.RouterPort:
    return l3.RouterPort(port_id=port_id, network_id=network_id, mac=mac, cidrs=cidrs)


def base_state() -> l3.RouterState:
    return l3.RouterState(
        router_id=ROUTER, admin_state_up=True,
        gateway=port(PORT_GW, EXT, "fa:16:3e:00:00:01", f"{GW_IP}/24"),
        gateway_ip=EXT_IP, enable_snat=True,
        interfaces=(port(PORT_A, NET_A, "fa:16:3e:00:00:0a", "10.10.1.1/24", "fd00:a::1/64"),
                    port(PORT_B, NET_B, "fa:16:3e:00:00:0b", "10.10.2.1/24", "fd00:b::1/64")),
        routes=(), floating_ips=(), port_forwardings=())


@pytest.fixture
def cloud() -> Iterator[Layout]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [t for t in ("nft", "busybox") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/setup installs them)")
    layout = Layout(prefix=f"{testnet.OWN_PREFIX}{next(testnet._seq)}")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        netns.ensure(layout.root_ns)
        nl(layout.root_ns, lambda n: [n.ensure_bridge(Layout.bridge(net))
                                      for net in (NET_A, NET_B, EXT)])
        # the stand-ins: an instance on each tenant network, a host on the external one
        for name, net, pid, cidr, gateway, v6 in (
                ("vm-a", NET_A, VM_A_PORT, f"{IP_A}/24", "10.10.1.1", "a"),
                ("vm-b", NET_B, VM_B_PORT, f"{IP_B}/24", "10.10.2.1", "b"),
                ("ext", EXT, EXT_PORT, f"{EXT_IP}/24", None, None)):
            ns = f"{layout.prefix}-{name}"
            netns.ensure(ns)

            def plug(n: links.Netlink, ns: str = ns, net: str = net, pid: str = pid) -> bool:
                return n.ensure_veth(Layout.tap(pid), "eth0", peer_netns=ns,
                                     master=Layout.bridge(net))

            nl(layout.root_ns, plug)

            def inside(n: links.Netlink, cidr: str = cidr, gateway: str | None = gateway,
                       v6: str | None = v6) -> None:
                n.set_sysctl("net/ipv6/conf/eth0/accept_dad", 0)
                n.set_up("eth0")
                n.ensure_address("eth0", cidr)
                if gateway:
                    n.ensure_route("default", gateway=gateway)
                if v6:  # routed by the router too (IPv6 is never translated)
                    n.ensure_address("eth0", f"fd00:{v6}::10/64")
                if v6 == "a":  # vm-b learns its route from the router's advertisements
                    n.ensure_route("default6", gateway=f"fd00:{v6}::1")

            nl(ns, inside)
            servers.append(serve(ns, "::", 5000))
        yield layout
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        for name in netns.names(layout.prefix + "-"):
            netns.delete(name)
        shutil.rmtree(l3.RUN_ROOT / layout.prefix, ignore_errors=True)


def test_a_router_routes_nats_and_goes(cloud: Layout) -> None:
    layout = cloud
    vm_a, vm_b, ext = (f"{layout.prefix}-{n}" for n in ("vm-a", "vm-b", "ext"))
    rns = layout.router_ns(ROUTER)
    state = base_state()
    host_forwarding = netns.read_sysctl("net.ipv4.ip_forward")
    l3.sync_router(layout, state)
    assert l3.existing_routers(layout) == {ROUTER}

    # the router's devices: MAC, addresses, forwarding, bridge ends on the bridges
    qg, qr_a = Layout.router_gateway(PORT_GW), Layout.router_interface(PORT_A)
    link = nl(rns, lambda n: n.link(qr_a))
    assert link is not None and link.mac == "fa:16:3e:00:00:0a" and link.up
    assert nl(rns, lambda n: n.addresses(qg)) == [f"{GW_IP}/24"]
    assert nl(rns, lambda n: n.sysctl("net.ipv4.ip_forward")) == "1"
    tap = nl(layout.root_ns, lambda n: n.link(Layout.tap(PORT_A)))
    assert tap is not None and tap.master == Layout.bridge(NET_A) and tap.up
    # forwarding in the router only: not in the bridges' namespace, not in the host's
    assert nl(layout.root_ns, lambda n: n.sysctl("net.ipv4.ip_forward")) == "0"
    assert netns.read_sysctl("net.ipv4.ip_forward") == host_forwarding

    # instances on two subnets reach each other through it, unchanged, IPv6 too:
    # vm-b's IPv6 default route comes from the router's advertisements (its
    # link going up again sends a router solicitation)
    assert ping(vm_a, IP_B)

    def relink(n: links.Netlink) -> None:
        n.set_down("eth0")
        n.set_up("eth0")
        n.ensure_address("eth0", "fd00:b::10/64")
        n.ensure_route("default", gateway="10.10.2.1")  # a link going down loses its routes

    nl(vm_b, relink)
    assert wait(lambda: any(r.dst == "default" and r.gateway and r.gateway.startswith("fe80:")
                            for r in nl(vm_b, lambda n: n.routes(family=6))), 10)
    assert ping(vm_a, "fd00:b::10")
    assert who(vm_b, "fd00:a::10", 5000) == "fd00:b::10"
    assert radvd.running(l3.run_dir(layout, ROUTER)) is not None
    assert who(vm_a, IP_B, 5000) == IP_A
    # SNAT: the external host sees the gateway address
    assert who(vm_a, EXT_IP, 5000) == GW_IP
    # the default route, and nothing reaches the instances from outside
    routes = nl(rns, lambda n: n.routes(family=4))
    assert any(r.dst == "default" and r.gateway == EXT_IP for r in routes)
    assert not ping(ext, FIP_A)

    # a second sync changes nothing (same links, same NAT table, same handles)
    before = (nl(rns, lambda n: n.links()), nft.get_table(rns, "ip", l3.NAT_TABLE))
    l3.sync_router(layout, state)
    assert (nl(rns, lambda n: n.links()), nft.get_table(rns, "ip", l3.NAT_TABLE)) == before

    # a floating IP: reachable from outside, its instance's traffic carries it,
    # and the other instance reaches it too (hairpin)
    state = replace(state, floating_ips=(l3.FloatingIp(FIP_A, IP_A),))
    l3.sync_router(layout, state)
    assert f"{FIP_A}/32" in nl(rns, lambda n: n.addresses(qg))
    assert ping(ext, FIP_A)
    assert who(ext, FIP_A, 5000) == EXT_IP
    assert who(vm_a, EXT_IP, 5000) == FIP_A
    assert who(vm_b, FIP_A, 5000) == GW_IP
    assert who(vm_b, EXT_IP, 5000) == GW_IP

    # a port forwarding: FIP_PF:8080 -> vm-b:5000
    state = replace(state, port_forwardings=(
        l3.PortForwarding(FIP_PF, "tcp", "8080", IP_B, "5000"),))
    l3.sync_router(layout, state)
    assert who(ext, FIP_PF, 8080) == EXT_IP
    assert who(ext, FIP_PF, 5000) is None

    # a static route
    state = replace(state, routes=(("192.168.50.0/24", IP_B),))
    l3.sync_router(layout, state)
    routes = nl(rns, lambda n: n.routes(family=4))
    assert any(r.dst == "192.168.50.0/24" and r.gateway == IP_B for r in routes)

    # disassociated: the floating IP answers no more, the instance goes out as the
    # router, and a connection made through it is cut (its conntrack entry forgotten)
    server = netns.popen(vm_a, [sys.executable, "-c", ECHO_SERVER, "5001"],
                         stdout=subprocess.PIPE)
    client = None
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        client = netns.popen(ext, [sys.executable, "-c", ECHO_CLIENT, FIP_A, "5001"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert client.stdin is not None and client.stdout is not None
        assert client.stdout.readline().strip() == b"ready"

        def echoed() -> str:
            assert client is not None and client.stdin is not None
            assert client.stdout is not None
            client.stdin.write(b"x\n")
            client.stdin.flush()
            return client.stdout.readline().decode().strip()

        assert echoed() == "ok"
        l3.sync_router(layout, state)  # nothing changed: the connection lives on
        assert echoed() == "ok"
        state = replace(state, floating_ips=(), routes=())
        l3.sync_router(layout, state)
        assert echoed().startswith("lost")
    finally:
        for proc in (server, client):
            if proc is not None:
                proc.kill()
                proc.wait()
    assert not ping(ext, FIP_A)
    assert who(ext, FIP_A, 5000) is None
    assert who(vm_a, EXT_IP, 5000) == GW_IP
    routes = nl(rns, lambda n: n.routes(family=4))
    assert not any(r.dst == "192.168.50.0/24" for r in routes)

    # without SNAT the instances go out with their own addresses
    l3.sync_router(layout, replace(state, enable_snat=False))
    nl(ext, lambda n: n.ensure_route("10.10.1.0/24", gateway=GW_IP))
    assert who(vm_a, EXT_IP, 5000) == IP_A

    # administratively down: interfaces down, nothing routed, nothing advertised
    l3.sync_router(layout, replace(state, admin_state_up=False))
    link = nl(rns, lambda n: n.link(qr_a))
    assert link is not None and not link.up
    assert radvd.running(l3.run_dir(layout, ROUTER)) is None
    assert not ping(vm_a, IP_B)
    l3.sync_router(layout, state)
    assert ping(vm_a, IP_B)

    # an interface removed: its device and its bridge end go
    l3.sync_router(layout, replace(state, interfaces=state.interfaces[:1]))
    assert nl(rns, lambda n: n.link(Layout.router_interface(PORT_B))) is None
    assert nl(layout.root_ns, lambda n: n.link(Layout.tap(PORT_B))) is None
    assert not ping(vm_a, IP_B)

    # removed: namespace, bridge ends and radvd gone
    l3.remove_router(layout, ROUTER)
    assert not netns.exists(rns)
    assert radvd.running(l3.run_dir(layout, ROUTER)) is None
    assert not l3.run_dir(layout, ROUTER).exists()
    assert nl(layout.root_ns, lambda n: n.link(Layout.tap(PORT_A))) is None
    assert nl(layout.root_ns, lambda n: n.link(Layout.tap(PORT_GW))) is None
    assert l3.existing_routers(layout) == set()
    l3.remove_router(layout, ROUTER)  # a no-op


def test_metadata_redirect_reconcile_and_several_routers(cloud: Layout) -> None:
    layout = cloud
    vm_a = f"{layout.prefix}-vm-a"
    rns = layout.router_ns(ROUTER)
    state = base_state()
    l3.sync_router(layout, state)
    other = l3.RouterState(
        router_id=OTHER, admin_state_up=True, gateway=None, gateway_ip=None,
        enable_snat=True, interfaces=(), routes=(), floating_ips=(), port_forwardings=())
    l3.sync_router(layout, other)
    assert l3.existing_routers(layout) == {ROUTER, OTHER}

    # tcp to 169.254.169.254:80 from an instance lands on the router's port 9697
    proxy = serve(rns, "::", 9697)
    try:
        assert who(vm_a, "169.254.169.254", 80) == IP_A
    finally:
        proxy.kill()
        proxy.wait()

    # what went missing comes back: a router device, a bridge end
    qr_a = Layout.router_interface(PORT_A)
    nl(rns, lambda n: n.delete(qr_a))
    assert not ping(vm_a, "10.10.1.1")
    l3.sync_router(layout, state)
    assert ping(vm_a, IP_B)
    nl(layout.root_ns, lambda n: n.delete(Layout.tap(PORT_B)))
    l3.sync_router(layout, state)
    assert ping(vm_a, IP_B)
    # the NAT table deleted behind our back is rewritten
    nft.delete_table(rns, "ip", l3.NAT_TABLE)
    l3.sync_router(layout, state)
    assert nft.get_table(rns, "ip", l3.NAT_TABLE) is not None

    l3.remove_router(layout, OTHER)
    assert l3.existing_routers(layout) == {ROUTER}
    l3.remove_router(layout, ROUTER)
    assert l3.existing_routers(layout) == set()
    # only the stand-ins' own veths are left on the bridges
    left = {link.name for link in nl(layout.root_ns, lambda n: n.links())
            if link.kind == "veth"}
    assert left == {Layout.tap(p) for p in (VM_A_PORT, VM_B_PORT, EXT_PORT)}
