"""bench/network's data-plane figures (root): what it costs to wire a port,
and how long a router's gateway plus a floating IP take to carry a ping.

Run against a cloud started with the data plane on and ``--no-host-network``
(its ``<prefix>-ext`` namespace holds 172.24.4.1, standing in for the host).
Namespaces of this bench (``bench-dp-<pid>-*``) stand in for instances: a veth
whose end on the network's bridge is the port's device, as Compute plugs a tap.
Everything it makes is removed at the end, also on failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import struct
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFIX = f"bench-dp-{os.getpid()}-"


class Client:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/") + "/v2.0"
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "X-Auth-Token": self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
        return json.loads(raw) if raw else None


def _wait(check: Callable[[], Any], timeout: float, step: float = 0.002) -> float | None:
    """Seconds until ``check()`` holds (None: it did not within ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    return None


def _entry(hosts_dir: Path, mac: str) -> Callable[[], bool]:
    """The port's DHCP entry is in its dnsmasq's hosts.d (one file per MAC, read
    by dnsmasq through inotify)."""
    path = hosts_dir / mac.lower().replace(":", "")
    return lambda: path.exists() and mac.lower() in path.read_text()


def _active(api: Client, port_id: str) -> Callable[[], bool]:
    return lambda: bool(api.call("GET", f"/ports/{port_id}")["port"]["status"] == "ACTIVE")


def _median_ms(values: list[float]) -> float | None:
    return 1000 * statistics.median(values) if values else None


def measure(base: str, token: str, state_dir: Path, count: int = 30) -> dict[str, Any]:
    """{figure: value}: port create through the API, API to the DHCP entry
    applied, device plugged to ACTIVE (ms, medians of ``count``), and router
    gateway + floating IP to the first ping (s; None without the L3 part)."""
    from onestack.host import links, netns
    from onestack.network.agent.layout import Layout, cloud_prefix

    layout = Layout(cloud_prefix(state_dir))
    api = Client(base, token)
    spaces: list[str] = []
    made: list[tuple[str, str]] = []
    out: dict[str, Any] = {}

    def nl(ns: str, fn: Callable[[links.Netlink], Any]) -> Any:
        def work() -> Any:
            with links.Netlink() as link:
                return fn(link)
        return netns.call(ns, work)

    def stand_in(port: dict[str, Any], mtu: int) -> str:
        ns = f"{PREFIX}{len(spaces)}"
        netns.ensure(ns)
        spaces.append(ns)
        nl(layout.root_ns, lambda n: n.ensure_veth(layout.tap(port["id"]), "eth0", peer_netns=ns, mtu=mtu,
                                                   master=layout.bridge(port["network_id"])))

        def settle(n: links.Netlink) -> None:
            n.set_mac("eth0", port["mac_address"])
            n.set_up("eth0")
        nl(ns, settle)
        return ns

    try:
        net = api.call("POST", "/networks", {"network": {"name": "bench-dp"}})["network"]
        made.append(("networks", net["id"]))
        sub = api.call("POST", "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                        "cidr": "10.123.0.0/24"}})["subnet"]
        hosts = state_dir / "run" / "dnsmasq" / net["id"] / "hosts.d"
        if _wait(hosts.exists, 30) is None:
            raise RuntimeError("the network's dnsmasq did not start")
        creates, applied, wired = [], [], []
        for _ in range(count):
            t0 = time.monotonic()
            port = api.call("POST", "/ports", {"port": {"network_id": net["id"]}})["port"]
            creates.append(time.monotonic() - t0)
            if _wait(_entry(hosts, port["mac_address"]), 10) is not None:
                applied.append(time.monotonic() - t0)
            t1 = time.monotonic()
            stand_in(port, net["mtu"])
            if _wait(_active(api, port["id"]), 10) is not None:
                wired.append(time.monotonic() - t1)
        out["port_create_ms"] = _median_ms(creates)
        out["port_applied_ms"] = _median_ms(applied)
        out["port_wired_ms"] = _median_ms(wired)
        out["ports_measured"] = count
        out["gateway_fip_ping_s"] = None
        if importlib.util.find_spec("onestack.network.agent.l3") is not None:
            out["gateway_fip_ping_s"] = _first_ping(api, layout, net, sub, stand_in, made)
        return out
    finally:
        for ns in spaces:
            netns.delete(ns)
        for kind, ident in reversed(made):
            try:
                if kind == "routers:interface":
                    router_id, subnet_id = ident.split("/")
                    api.call("PUT", f"/routers/{router_id}/remove_router_interface", {"subnet_id": subnet_id})
                    continue
                if kind == "networks":
                    for p in api.call("GET", f"/ports?network_id={ident}")["ports"]:
                        if p["device_owner"] != "network:dhcp":
                            api.call("DELETE", f"/ports/{p['id']}")
                api.call("DELETE", f"/{kind}/{ident}")
            except Exception as exc:  # the cloud goes away anyway: report, go on
                print(f"bench/network: cleaning up {kind} {ident}: {exc}")


def _first_ping(api: Client, layout: Any, net: dict[str, Any], sub: dict[str, Any],
                stand_in: Callable[[dict[str, Any], int], str], made: list[tuple[str, str]]) -> float | None:
    from onestack.host import links, netns

    public = api.call("GET", "/networks?name=public")["networks"][0]
    group = api.call("POST", "/security-groups", {"security_group": {"name": "bench-icmp"}})["security_group"]
    made.insert(0, ("security-groups", group["id"]))
    api.call("POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "icmp"}})
    router = api.call("POST", "/routers", {"router": {"name": "bench-dp"}})["router"]
    made.append(("routers", router["id"]))
    api.call("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    made.append(("routers:interface", f"{router['id']}/{sub['id']}"))
    port = api.call("POST", "/ports", {"port": {"network_id": net["id"],
                                                 "security_groups": [group["id"]]}})["port"]
    ns = stand_in(port, net["mtu"])
    ip = port["fixed_ips"][0]["ip_address"]

    def addr(n: links.Netlink) -> None:
        n.ensure_address("eth0", f"{ip}/24")
        n.ensure_route("default", gateway=sub["gateway_ip"])
    netns.call(ns, lambda: _with_netlink(addr))
    time.sleep(1.0)  # the router's interface is in place before the clock starts
    start = time.monotonic()
    api.call("PUT", f"/routers/{router['id']}", {"router": {"external_gateway_info": {
        "network_id": public["id"]}}})
    fip = api.call("POST", "/floatingips", {"floatingip": {"floating_network_id": public["id"],
                                                           "port_id": port["id"]}})["floatingip"]
    made.append(("floatingips", fip["id"]))
    sock = netns.call(layout.external_ns, _icmp_socket)
    try:
        if _echo_until_reply(sock, fip["floating_ip_address"], start + 30):
            return time.monotonic() - start
        return None
    finally:
        sock.close()


def _icmp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_until_reply(sock: socket.socket, address: str, deadline: float) -> bool:
    """ICMP echo requests every 10 ms until one is answered (or the deadline)."""
    ident, seq = os.getpid() & 0xFFFF, 0
    sock.settimeout(0.01)
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        sock.sendto(struct.pack("!BBHHH", 8, 0, _checksum(header + b"bench"), ident, seq) + b"bench",
                    (address, 0))
        try:
            while True:
                packet, (source, _port) = sock.recvfrom(2048)
                icmp = packet[(packet[0] & 0x0F) * 4:]
                if source == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                    return True
        except (TimeoutError, BlockingIOError):
            continue
    return False


def _with_netlink(fn: Callable[[Any], None]) -> None:
    from onestack.host import links

    with links.Netlink() as n:
        fn(n)
