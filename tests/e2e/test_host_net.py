"""The network half of onestack/host on a real kernel (root): namespaces, a
bridge, veths, dnsmasq handing out static leases, and an nftables table that
blocks, then lets through, a ping between two "instances".

Layout (every namespace is this test's own, named onestack-e2e-<pid>-<n>-*):

    dp:   br0 (10.99.0.1/26) -- v-dhcp, v-a, v-b
    dhcp: eth0 (10.99.0.2/26), dnsmasq
    a, b: eth0 (MAC fixed), address from DHCP
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from onestack.host import dnsmasq, links, netns, nft, procs
from tests.e2e import testnet
from tests.e2e.conftest import e2e_skip_reason

pytestmark = pytest.mark.e2e
T = TypeVar("T")

MAC_A, IP_A = "fa:16:3e:99:00:0a", "10.99.0.10"
MAC_B, IP_B = "fa:16:3e:99:00:0b", "10.99.0.11"
# udhcpc's script: put the address it was given on the interface
DHCP_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && busybox ip addr add "$ip/$mask" dev "$interface"\nexit 0\n'


def nl(ns: str, fn: Callable[[links.Netlink], T]) -> T:
    def work() -> T:
        with links.Netlink() as link:
            return fn(link)

    return netns.call(ns, work)


@pytest.fixture
def spaces() -> Iterator[dict[str, str]]:
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    prefix = f"{testnet.OWN_PREFIX}{next(testnet._seq)}-"
    names = {k: prefix + k for k in ("dp", "dhcp", "a", "b")}
    try:
        yield names
    finally:
        for name in names.values():
            netns.delete(name)


def wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def dhcp_lease(ns: str, script: Path) -> str:
    res = netns.run(ns, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5",
                         "-T", "1", "-s", str(script)], timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stderr


def ping(ns: str, ip: str) -> bool:
    return netns.run(ns, ["busybox", "ping", "-c", "1", "-W", "1", ip]).returncode == 0


def test_bridge_dhcp_and_a_firewall_table(spaces: dict[str, str], tmp_path: Path) -> None:
    dp, dhcp, a, b = spaces["dp"], spaces["dhcp"], spaces["a"], spaces["b"]
    for name in spaces.values():
        assert netns.ensure(name) is True
    assert netns.ensure(dp) is False  # idempotent
    assert set(spaces.values()) <= set(netns.names(testnet.OWN_PREFIX))

    def plumb(n: links.Netlink) -> None:
        assert n.ensure_bridge("br0") is True
        assert n.ensure_address("br0", "10.99.0.1/26") is True
        for port, peer_ns in (("v-dhcp", dhcp), ("v-a", a), ("v-b", b)):
            assert n.ensure_veth(port, "eth0", peer_netns=peer_ns, master="br0") is True
            assert n.ensure_veth(port, "eth0", peer_netns=peer_ns, master="br0") is False
        assert n.set_sysctl("net/ipv6/conf/br0/disable_ipv6", 1) in (True, False)

    nl(dp, plumb)
    # sysctls are the namespace's own: forwarding on in dp leaves ours as it was
    own = netns.read_sysctl("net.ipv4.ip_forward")
    assert nl(dp, lambda n: n.set_sysctl("net.ipv4.ip_forward", 1)) is True
    assert nl(dp, lambda n: n.sysctl("net/ipv4/ip_forward")) == "1"
    assert netns.read_sysctl("net.ipv4.ip_forward") == own
    assert nl(dp, lambda n: n.ensure_vxlan("vx-100", 100, local="10.99.0.1", up=False)) is True
    assert nl(dp, lambda n: n.link("vx-100")).kind == "vxlan"  # type: ignore[union-attr]
    ports = {x.name: x for x in nl(dp, lambda n: n.links())}
    assert {ports[p].master for p in ("v-dhcp", "v-a", "v-b")} == {"br0"}
    assert ports["br0"].kind == "bridge" and ports["br0"].up
    assert nl(dp, lambda n: n.sysctl("net.ipv6.conf.br0.disable_ipv6")) == "1"
    nl(dhcp, lambda n: (n.set_up("eth0"), n.ensure_address("eth0", "10.99.0.2/26")))
    nl(a, lambda n: (n.set_mac("eth0", MAC_A), n.set_up("eth0")))
    nl(b, lambda n: (n.set_mac("eth0", MAC_B), n.set_up("eth0")))

    # dnsmasq in the DHCP namespace, static entries by MAC; b's entry comes later
    run_dir = tmp_path / "dnsmasq"
    server = dnsmasq.Dnsmasq(run_dir)
    spec = dnsmasq.DnsmasqSpec(
        name="net1", interface="eth0", netns=dhcp,
        ranges=(dnsmasq.DhcpRange("subnet-1", "10.99.0.0/26"),),
        hosts=(dnsmasq.DhcpHost(MAC_A, (IP_A,), "host-a"),),
        options=("tag:subnet-1,option:router,10.99.0.1",),
        dns=True, names=((IP_A, ("host-a.openstacklocal", "host-a")),))
    assert server.ensure(spec) == "started"
    pid = server.pid("net1")
    assert pid is not None and netns.pids(dhcp) == [pid]
    script = tmp_path / "udhcpc.sh"
    script.write_text(DHCP_SCRIPT)
    script.chmod(0o755)
    assert f"lease of {IP_A} obtained from 10.99.0.2" in dhcp_lease(a, script)
    assert nl(a, lambda n: n.addresses("eth0")) == [f"{IP_A}/26"]
    assert nl(a, lambda n: n.ensure_route("default", gateway="10.99.0.1")) is True
    assert [(r.dst, r.gateway, r.dev) for r in nl(a, lambda n: n.routes()) if r.gateway] == [
        ("default", "10.99.0.1", "eth0")]
    # DNS answers the network's own names, and nothing else (no upstream)
    found = netns.run(a, ["busybox", "nslookup", "host-a.openstacklocal", "10.99.0.2"])
    assert IP_A in found.stdout, found.stdout + found.stderr
    other = netns.run(a, ["busybox", "nslookup", "example.com", "10.99.0.2"])
    assert other.returncode != 0 and "can't find example.com: REFUSED" in other.stdout

    both = dataclasses.replace(spec, hosts=spec.hosts + (dnsmasq.DhcpHost(MAC_B, (IP_B,)),))
    # a new entry is a new file in hosts.d, which dnsmasq reads itself: no signal
    assert server.ensure(both) == "updated"
    assert server.pid("net1") == pid
    assert f"lease of {IP_B} obtained" in dhcp_lease(b, script)
    assert {(x.mac, x.address) for x in server.leases("net1")} == {(MAC_A, IP_A), (MAC_B, IP_B)}
    # after a restart of ours, the running dnsmasq is adopted, not started again
    again = dnsmasq.Dnsmasq(run_dir)
    assert again.pid("net1") == pid and again.running() == {"net1": pid}
    assert again.ensure(both) == "unchanged"
    if shutil.which("dhcp_release"):
        # b's entry removed: its lease released (dhcp_release), then SIGHUP
        assert again.ensure(spec) == "reloaded" and again.pid("net1") == pid
        assert wait(lambda: {(x.mac, x.address) for x in again.leases("net1")} == {(MAC_A, IP_A)}, 5)
        assert again.ensure(both) == "updated"

    # a ping between the instances; a table on the bridge blocks it, a new
    # version of the same table lets it through again, atomically replaced
    assert ping(a, IP_B)
    icmp = nft.match(nft.meta("l4proto"), "icmp")
    base = nft.chain("forward", hook="forward", priority=0, policy="accept")
    nft.apply(dp, nft.Table("bridge", "onestack_e2e").add(
        base, nft.rule("forward", icmp, nft.counter(), nft.drop())))
    assert nft.list_tables(dp) == [("bridge", "onestack_e2e")]
    assert nft.list_tables(a) == []
    assert not ping(a, IP_B)
    icmp_type = nft.payload("icmp", "type")
    nft.apply(dp, nft.Table("bridge", "onestack_e2e").add(
        base,
        nft.rule("forward", nft.match(nft.payload("ip", "saddr"), IP_A),
                 nft.match(icmp_type, "echo-request"), nft.accept()),
        nft.rule("forward", nft.match(nft.payload("ip", "daddr"), IP_A),
                 nft.match(icmp_type, "echo-reply"), nft.accept()),
        nft.rule("forward", icmp, nft.drop())))
    assert ping(a, IP_B)
    assert not ping(b, IP_A)  # b's echo request is still dropped
    table = nft.get_table(dp, "bridge", "onestack_e2e")
    assert table is not None and sum("rule" in x for x in table) == 3
    assert nft.delete_table(dp, "bridge", "onestack_e2e") is True
    assert nft.delete_table(dp, "bridge", "onestack_e2e") is False
    assert ping(b, IP_A)

    # tear-down: nothing of it is left
    assert server.stop("net1") is True
    assert procs.find(str(run_dir)) == [] and not (run_dir / "net1").exists()
    for name in spaces.values():
        assert netns.delete(name) is True
    assert not set(spaces.values()) & set(netns.names(testnet.OWN_PREFIX))
    assert nl_gone(dp)


def nl_gone(ns: str) -> bool:
    try:
        nl(ns, lambda n: n.links())
    except Exception as exc:  # NotFound
        return "does not exist" in str(exc)
    return False


def test_deleting_a_namespace_ends_what_runs_in_it(spaces: dict[str, str]) -> None:
    ns = spaces["a"]
    netns.ensure(ns)
    proc = netns.popen(ns, ["sleep", "300"])
    assert netns.pids(ns) == [proc.pid]
    assert netns.delete(ns) is True
    assert proc.wait(10) is not None
    assert not netns.exists(ns) and netns.delete(ns) is False


def test_the_real_host_seam_from_an_event_loop(spaces: dict[str, str], tmp_path: Path) -> None:
    """What an agent does, through base.linux_host(), all from one event loop."""
    import asyncio

    from onestack.host.base import linux_host

    ns = spaces["dp"]
    host = linux_host(tmp_path / "run", accel="tcg")

    async def agent() -> None:
        assert await host.net.ensure_netns(ns) is True
        assert ns in await host.net.list_netns(testnet.OWN_PREFIX)
        made = await host.net.netlink(ns, lambda n: [
            n.ensure_bridge("br0"), n.ensure_tap("tap-p1", master="br0", mtu=1450),
            n.ensure_address("br0", "10.98.0.1/24")])
        assert made == [True, True, True]
        await host.firewall.apply(ns, nft.Table("inet", "onestack_seam").add(
            nft.chain("in", hook="input", priority=0, policy="accept")))
        assert await host.firewall.list_tables(ns) == [("inet", "onestack_seam")]
        spec = dnsmasq.DnsmasqSpec("net9", "br0", ns, (dnsmasq.DhcpRange("s", "10.98.0.0/24"),))
        assert await host.dhcp.ensure(spec) == "started"
        assert list(await host.dhcp.running()) == ["net9"]
        res = await host.net.run(ns, ["busybox", "ip", "-o", "link", "show", "tap-p1"])
        assert "master br0" in res.stdout
        assert await host.guests.accelerator() == "tcg"
        assert await host.dhcp.stop("net9") is True
        assert await host.net.delete_netns(ns) is True
        assert ns not in await host.net.list_netns(testnet.OWN_PREFIX)

    asyncio.run(agent())
    assert procs.find(str(tmp_path)) == []


def test_two_creators_of_one_bridge_both_succeed(spaces: dict[str, str]) -> None:
    """Two agent tasks may ensure the same bridge at once: neither fails, one made it."""
    import threading

    dp = spaces["dp"]
    netns.ensure(dp)

    def race(name: str) -> list[object]:
        barrier = threading.Barrier(2)
        results: list[object] = []

        def work(link: links.Netlink) -> bool:
            barrier.wait()
            return link.ensure_bridge(name)

        def make() -> None:
            try:
                results.append(nl(dp, work))
            except Exception as exc:  # noqa: BLE001 - the assertion shows it
                results.append(exc)

        threads = [threading.Thread(target=make) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return results

    for round_ in range(20):
        results = race(f"brrace{round_}")
        assert sorted(map(repr, results)) == ["False", "True"], results


def test_the_link_dump_reads_what_pyroute2_decodes(spaces: dict[str, str]) -> None:
    """``Netlink.links()`` and ``link(name)`` parse the kernel's answers themselves
    (``host/linkdump.py``): every field of every link as pyroute2 decodes it
    (bridges, a veth on a bridge up and down, a tap, loopback), 54 links in one
    dump, and None for a link that is not there."""
    ns = spaces["dp"]
    netns.ensure(ns)

    def build(link: links.Netlink) -> None:
        for i in range(50):
            link.ensure_bridge(f"brdump{i}", mtu=1400 + i, up=i % 2 == 0)
        link.ensure_veth("vdump-a", "vdump-b", mtu=1450, master="brdump0")
        link.set_up("vdump-a")
        link.ensure_tap("tdump")
        link.set_mac("tdump", "fa:16:3e:00:00:01")

    def decoded(link: links.Netlink) -> list[links.Link]:
        msgs = list(link._nl("get_links"))
        by_index = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
        return sorted((link._to_link(m, by_index) for m in msgs), key=lambda x: x.index)

    nl(ns, build)
    ours, theirs = nl(ns, lambda link: (link.links(), decoded(link)))
    assert ours == theirs
    # one link by name: the same, master included; none for a name not there
    one = nl(ns, lambda link: [link.link(x.name) for x in theirs] + [link.link("nosuchlink0")])
    assert one == [*theirs, None]
    assert len(ours) == 54  # lo, 50 bridges, the veth's two ends, the tap
    by_name = {x.name: x for x in ours}
    assert by_name["vdump-a"].master == "brdump0" and by_name["vdump-a"].up
    assert by_name["vdump-a"].kind == "veth" and by_name["vdump-a"].mtu == 1450
    assert by_name["brdump1"].kind == "bridge" and not by_name["brdump1"].up
    assert by_name["brdump7"].mtu == 1407
    assert by_name["tdump"].kind == "tun" and by_name["tdump"].mac == "fa:16:3e:00:00:01"
    assert by_name["lo"].kind == "" and by_name["lo"].master is None


def test_a_bridge_is_made_up_in_one_request_without_pyroute2(spaces: dict[str, str]) -> None:
    """``ensure_bridge`` sends the kernel one request of its own (``linkdump.new_bridge``):
    the bridge is up, without STP and forwarding delay, as pyroute2 decodes it; an MTU
    and up/down are set the same way; no pyroute2 socket is opened; a second
    ``new_bridge`` of the name is refused with EEXIST."""
    import errno

    from onestack.host import linkdump

    ns = spaces["dp"]
    netns.ensure(ns)

    def build(link: links.Netlink) -> tuple[bool, bool, object]:
        made = link.ensure_bridge("brraw0", mtu=1450)
        again = link.ensure_bridge("brraw0", mtu=1450)
        link.ensure_bridge("brraw1", up=False)
        link.set_up("brraw1")
        link.set_down("brraw0")
        link.set_mtu("brraw1", 1400)
        return made, again, link._socket

    assert nl(ns, build) == (True, False, None)

    def bridge_data(link: links.Netlink) -> dict[str, tuple[object, ...]]:
        out = {}
        for m in link._nl("get_links"):
            info = m.get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != "bridge":
                continue
            data = info.get_attr("IFLA_INFO_DATA")
            out[m.get_attr("IFLA_IFNAME")] = (data.get_attr("IFLA_BR_STP_STATE"),
                                              data.get_attr("IFLA_BR_FORWARD_DELAY"),
                                              m.get_attr("IFLA_MTU"), bool(m["flags"] & 1))
        return out

    assert nl(ns, bridge_data) == {"brraw0": (0, 0, 1450, False), "brraw1": (0, 0, 1400, True)}

    def twice(_link: links.Netlink) -> int:
        try:
            linkdump.new_bridge("brraw0")
        except OSError as exc:
            return exc.errno or 0
        return 0

    assert nl(ns, twice) == errno.EEXIST


def test_a_link_watch_names_the_links_that_changed(spaces: dict[str, str]) -> None:
    """``LinkWatch`` calls back with the names of the links its events are about
    (the network agent then looks only when a port's device changed)."""
    import threading
    import time

    from onestack.host.linkwatch import LinkWatch

    ns = spaces["dp"]
    netns.ensure(ns)
    seen: set[str] = set()
    lock = threading.Lock()

    def changed(names: set[str] | None) -> None:
        with lock:
            seen.update(names or {"<lost>"})

    watch = LinkWatch(ns, changed)
    try:
        nl(ns, lambda link: link.ensure_bridge("brwatch"))
        nl(ns, lambda link: link.ensure_veth("tapwatch", "peerwatch", master="brwatch"))
        nl(ns, lambda link: link.delete("tapwatch"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if {"brwatch", "tapwatch", "peerwatch"} <= seen:
                    break
            time.sleep(0.02)
    finally:
        watch.close()
    assert {"brwatch", "tapwatch", "peerwatch"} <= seen
    assert "<lost>" not in seen
