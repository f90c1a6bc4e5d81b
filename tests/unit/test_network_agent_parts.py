"""The network agent's pure parts: a network's dnsmasq configuration, the
metadata proxy's HTTP handling and forwarding (on loopback), the settings."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest

from onestack.network.agent import dhcp, metadata
from onestack.network.agent.layout import Layout
from onestack.network.agent.reader import NetworkInfo, PortInfo, SubnetInfo
from onestack.network.app import dataplane_wanted

LAYOUT = Layout("os123456")
NET = "11111111-2222-3333-4444-555555555555"
V4 = SubnetInfo("s4", 4, "10.0.0.0/24", "10.0.0.1", True, (), (("10.9.0.0/16", "10.0.0.9"),), None, None)
V6 = SubnetInfo("s6", 6, "fd00::/64", "fd00::1", True, (), (), "slaac", "slaac")
V6S = SubnetInfo("s6s", 6, "fd01::/64", "fd01::1", True, ("fd01::53",), (), None, "dhcpv6-stateful")
DHCP_PORT = PortInfo("dhcpport-1234", "fa:16:3e:00:00:02", "network:dhcp", "dhcp", "p", True, "ACTIVE", "",
                     (("s4", "10.0.0.2"), ("s6", "fd00::f816:3eff:fe00:2"), ("s6s", "fd01::2")))
VM = PortInfo("vmport-5678", "fa:16:3e:00:00:05", "compute:nova", "vm1", "p", True, "DOWN", "",
              (("s4", "10.0.0.5"), ("s6", "fd00::f816:3eff:fe00:5"), ("s6s", "fd01::5")))
NAMED = PortInfo("named-9999", "fa:16:3e:00:00:06", "compute:nova", "vm2", "p", True, "DOWN", "web",
                 (("s4", "10.0.0.6"),))


def info(has_router: bool = False) -> NetworkInfo:
    return NetworkInfo(NET, "p", 1450, True, False, "", (V4, V6, V6S), (DHCP_PORT, VM, NAMED), has_router)


def test_dnsmasq_of_an_isolated_network() -> None:
    spec = dhcp.spec(LAYOUT, info(), DHCP_PORT, "openstacklocal")
    assert spec.name == NET and spec.netns == f"os123456-qdhcp-{NET}" and spec.interface == "ns-dhcpport-12"
    assert [(r.tag, r.cidr, r.mode) for r in spec.ranges] == [
        ("subnet-s4", "10.0.0.0/24", "static"), ("subnet-s6", "fd00::/64", "slaac"),
        ("subnet-s6s", "fd01::/64", "static")]
    routes = "10.9.0.0/16,10.0.0.9,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1"
    assert list(spec.options) == [
        "tag:subnet-s4,option:dns-server,10.0.0.2",
        f"tag:subnet-s4,option:classless-static-route,{routes}",
        f"tag:subnet-s4,249,{routes}",
        "tag:subnet-s4,option:router,10.0.0.1",
        "tag:subnet-s4,option:mtu,1450",
        "tag:subnet-s6s,option6:dns-server,[fd01::53]",
    ]
    # static entries by MAC; SLAAC addresses are the guest's own; the DHCP port is not a host
    assert [(h.mac, h.addresses, h.hostname) for h in spec.hosts] == [
        ("fa:16:3e:00:00:05", ("10.0.0.5", "fd01::5"), "host-10-0-0-5"),
        ("fa:16:3e:00:00:06", ("10.0.0.6",), "web"),
    ]
    assert ("10.0.0.6", ("web.openstacklocal", "web")) in spec.names
    assert spec.dns and spec.router_advertisements and spec.extra == ("ra-param=ns-dhcpport-12,60,0",)
    assert dhcp.interface_cidrs(info(), DHCP_PORT) == [
        "10.0.0.2/24", "fd00::f816:3eff:fe00:2/64", "fd01::2/64", "169.254.169.254/32"]


def test_dnsmasq_of_a_routed_network() -> None:
    spec = dhcp.spec(LAYOUT, info(has_router=True), DHCP_PORT, "example.org")
    routes = "10.9.0.0/16,10.0.0.9,0.0.0.0/0,10.0.0.1"  # metadata goes through the router
    assert f"tag:subnet-s4,option:classless-static-route,{routes}" in spec.options
    assert "169.254.169.254/32" not in dhcp.interface_cidrs(info(has_router=True), DHCP_PORT)
    assert spec.domain == "example.org"
    no_gateway = SubnetInfo("s4", 4, "10.0.0.0/24", None, True, (), (), None, None)
    bare = NetworkInfo(NET, "p", 1500, True, False, "", (no_gateway,), (DHCP_PORT,), True)
    assert "tag:subnet-s4,option:router" in dhcp.spec(LAYOUT, bare, DHCP_PORT, "x").options


@pytest.mark.parametrize(("mode", "root", "on"), [
    ("auto", True, True), ("auto", False, False), ("on", False, False), ("off", True, False),
    ("bogus", True, False)])
def test_dataplane_setting(monkeypatch: pytest.MonkeyPatch, mode: str, root: bool, on: bool) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0 if root else 1000)
    wanted, why = dataplane_wanted(mode)
    assert wanted is on
    if not root and mode == "auto":
        assert why == "off (not run as root: the API works, nothing is wired)"


async def _exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def test_metadata_proxy_forwards_with_signed_headers() -> None:
    secret = b"s3cret"
    seen: list[bytes] = []

    async def compute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nhostname\n")
        await writer.drain()
        writer.close()

    async def main() -> tuple[bytes, bytes, bytes]:
        upstream = await asyncio.start_server(compute, "127.0.0.1", 0)
        up_port = upstream.sockets[0].getsockname()[1]

        async def handler(key: str, request: metadata.Request) -> bytes:
            if request.source != "127.0.0.1" or not request.path.startswith("/latest"):
                return metadata.not_found()
            sig = hmac.new(secret, b"vm-1", hashlib.sha256).hexdigest()
            return await metadata.forward("127.0.0.1", up_port, "/compute/metadata", request,
                                          "vm-1", "proj-1", sig)

        proxy = metadata.MetadataProxy(handler)
        assert await proxy.ensure("network:n1", None, "127.0.0.1", 0) is True
        assert await proxy.ensure("network:n1", None, "127.0.0.1", 0) is False
        port = proxy._servers["network:n1"].sockets[0].getsockname()[1]
        ok = await _exchange(port, b"GET /latest/meta-data/hostname HTTP/1.1\r\nHost: 169.254.169.254\r\n"
                                   b"X-Instance-ID: forged\r\n\r\n")
        missing = await _exchange(port, b"GET /other HTTP/1.1\r\n\r\n")
        bad = await _exchange(port, b"NONSENSE\r\n\r\n")
        await proxy.close()
        assert proxy.keys() == set()
        upstream.close()
        return ok, missing, bad

    ok, missing, bad = asyncio.run(main())
    assert ok.endswith(b"\r\n\r\nhostname\n") and ok.startswith(b"HTTP/1.1 200 OK")
    head = seen[0].decode()
    assert head.startswith("GET /compute/metadata/latest/meta-data/hostname HTTP/1.0\r\n")
    assert "X-Instance-ID: vm-1\r\n" in head and "forged" not in head  # the guest's own is dropped
    assert "X-Tenant-ID: proj-1\r\n" in head and "X-Forwarded-For: 127.0.0.1\r\n" in head
    assert f"X-Instance-ID-Signature: {hmac.new(secret, b'vm-1', hashlib.sha256).hexdigest()}" in head
    assert missing == (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                       b"Content-Length: 52\r\nConnection: close\r\n\r\n"
                       b"404 Not Found\n\nThe resource could not be found.\n\n   ")
    assert bad.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_a_task_waits_twice_what_its_key_took_last_time_within_bounds() -> None:
    """The debounce grows with what applying a key costs (a network of 10,000
    ports is applied at most a third of the time while writes keep coming), stays
    the debounce for a cheap one, and the firewall never waits more than 0.5 s (a
    rule change reaches running ports within a second)."""
    from onestack.network.agent import notifier

    pace = notifier.Pace()
    assert pace.delay(notifier.L2, "n1") == notifier.DEBOUNCE[notifier.L2] == 0.05
    pace.record(notifier.L2, "n1", 0.01)
    pace.record(notifier.L2, "n2", 0.2)
    pace.record(notifier.L2, "n3", 3.0)
    assert pace.delay(notifier.L2, "n1") == 0.05
    assert pace.delay(notifier.L2, "n2") == 0.4
    assert pace.delay(notifier.L2, "n3") == 1.0
    pace.record(notifier.L2, "n2", None)  # the network is gone
    assert pace.delay(notifier.L2, "n2") == 0.05
    pace.record(notifier.FIREWALL, "", 0.15)
    assert pace.delay(notifier.FIREWALL, "") == 0.3
    pace.record(notifier.FIREWALL, "", 2.0)
    assert pace.delay(notifier.FIREWALL, "") == 0.5
    pace.record(notifier.ROUTER, "r1", 1.0)
    assert pace.delay(notifier.ROUTER, "r1") == 0.0
