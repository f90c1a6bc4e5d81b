"""Routers in the data plane: one network namespace per router (Neutron's legacy L3 agent).

A router is the namespace ``layout.router_ns(router_id)`` holding

* one ``qr-<port>`` interface per router interface and one ``qg-<port>`` for
  its external gateway: each the router end of a veth whose other end,
  ``tap<port>``, is a port of the network's bridge in ``layout.root_ns``; the
  router port's MAC, MTU and addresses (the floating IPs are held on
  ``qg-`` as /32 so that the router answers ARP for them on the external
  network);
* IPv4 and IPv6 forwarding (in that namespace only, never in the host's), the
  default route via the external subnet's gateway, the static routes;
* one nftables table (``ip onestack-l3``) with the NAT, replaced atomically:
  the metadata redirect (tcp to 169.254.169.254:80 arriving on a ``qr-``
  device goes to the local port 9697, where the metadata proxy listens), DNAT
  of floating IPs and port forwardings, SNAT of floating IPs, SNAT of
  everything else leaving by ``qg-`` to the gateway address when
  ``enable_snat``, hairpin (an instance reaching a floating IP behind the same
  router) as Neutron's iptables rules do. IPv6 is routed, not translated;
* radvd advertising the router as the IPv6 default router on the interfaces
  with IPv6 subnets;
* no tracked connection through a translation that is gone: when a floating
  IP or port forwarding goes or changes, the conntrack entries it made are
  deleted (Neutron's ``conntrack -D``), so established connections stop too.

:func:`sync_router` makes a router exactly a :class:`RouterState`; it is
idempotent (a second call changes nothing: links, addresses and routes are
diffed, and the NAT table carries a digest of itself so an unchanged table is
not rewritten) and cheap. :func:`remove_router` removes everything of one
router; :func:`existing_routers` says which routers have a namespace here.
The rendering (:func:`nat_table`, :func:`device_addresses`,
:func:`wanted_routes`) is pure; the effects go through ``onestack.host``.
These functions block: the agent calls them from a worker thread.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from onestack.host import nft
from onestack.host.conntrack import Flow
from onestack.host.errors import HostError
from onestack.host.radvd import Advertised
from onestack.network.agent.layout import (
    METADATA_ADDRESS,
    METADATA_PORT,
    ROUTER_GATEWAY_PREFIX,
    ROUTER_INTERFACE_PREFIX,
    Layout,
)

log = logging.getLogger(__name__)

# The protocols a port forwarding may name (Neutron's), with their numbers.
_PROTOCOLS = {"tcp": 6, "udp": 17, "dccp": 33, "sctp": 132, "udplite": 136}

# radvd's files, per cloud and router (run/ state of the host, gone at reboot
# like the namespaces)
RUN_ROOT = Path("/run/onestack")
NAT_TABLE = "onestack-l3"
DIGEST_CHAIN = "digest"
DEVICE_PREFIXES = (ROUTER_INTERFACE_PREFIX, ROUTER_GATEWAY_PREFIX)
# Sysctls of a router's namespace (set before its devices are made, so the
# "default" ones apply to them): forwarding; no duplicate address detection
# (an address is usable at once, as the agent wrote it); a secondary address
# promoted when the primary of its subnet goes.
ROUTER_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/accept_dad", "0"),
    ("net/ipv6/conf/default/accept_ra", "0"),
    ("net/ipv4/conf/default/promote_secondaries", "1"),
    ("net/ipv4/conf/all/promote_secondaries", "1"),
)


@dataclass(frozen=True)
class RouterPort:
    port_id: str
    network_id: str
    mac: str
    cidrs: tuple[str, ...]  # the port's addresses with their subnet's prefix, "10.0.0.1/26"
    mtu: int = 1500


@dataclass(frozen=True)
class FloatingIp:
    floating_ip: str  # on the external network
    fixed_ip: str  # the associated port's address behind this router


@dataclass(frozen=True)
class PortForwarding:
    floating_ip: str
    protocol: str  # "tcp" | "udp"
    external_port: str  # "80" or "8000:8010"
    internal_ip: str
    internal_port: str


@dataclass(frozen=True)
class RouterState:
    router_id: str
    admin_state_up: bool
    gateway: RouterPort | None  # on the external network (None: no external gateway)
    gateway_ip: str | None  # the external subnet's gateway_ip (default route), if any
    enable_snat: bool
    interfaces: tuple[RouterPort, ...]
    routes: tuple[tuple[str, str], ...]  # (destination CIDR, nexthop)
    floating_ips: tuple[FloatingIp, ...]
    port_forwardings: tuple[PortForwarding, ...]


# --- rendering (pure) ----------------------------------------------------------


def _is_v4(address: str) -> bool:
    try:
        return ipaddress.ip_interface(address).version == 4
    except ValueError:
        return False


def gateway_address(state: RouterState) -> str | None:
    """The router's IPv4 address on the external network (the SNAT source)."""
    if state.gateway is None:
        return None
    for cidr in state.gateway.cidrs:
        if _is_v4(cidr):
            return str(ipaddress.ip_interface(cidr).ip)
    return None


def _floating_addresses(state: RouterState) -> list[str]:
    """The IPv4 floating IPs the router holds: associated ones and those with
    port forwardings (once each, in order)."""
    seen: dict[str, None] = {}
    for fip in state.floating_ips:
        if _is_v4(fip.floating_ip):
            seen.setdefault(fip.floating_ip, None)
    for pf in state.port_forwardings:
        if _is_v4(pf.floating_ip):
            seen.setdefault(pf.floating_ip, None)
    return list(seen)


def device_addresses(state: RouterState) -> dict[str, tuple[str, ...]]:
    """Each router device's addresses: ``qr-`` its port's, ``qg-`` its port's
    and the floating IPs as /32 (only with a gateway: without one a floating IP
    cannot be reached, and Neutron refuses it)."""
    out = {Layout.router_interface(p.port_id): tuple(p.cidrs) for p in state.interfaces}
    if state.gateway is not None:
        fips = tuple(f"{a}/32" for a in _floating_addresses(state))
        out[Layout.router_gateway(state.gateway.port_id)] = tuple(state.gateway.cidrs) + fips
    return out


def wanted_routes(state: RouterState) -> dict[str, str]:
    """Destination -> nexthop of the routes with a nexthop: the default route(s)
    via the external gateway, then the static routes (one of which may replace
    a default route, as with Neutron's ``ip route replace``)."""
    out: dict[str, str] = {}
    if state.gateway is not None and state.gateway_ip:
        version = ipaddress.ip_address(state.gateway_ip).version
        out["0.0.0.0/0" if version == 4 else "::/0"] = state.gateway_ip
    for destination, nexthop in state.routes:
        out[str(ipaddress.ip_network(destination, strict=False))] = nexthop
    return out


def advertised(state: RouterState) -> list[Advertised]:
    """The router's interfaces on which it advertises itself as the IPv6
    default router: those with a global IPv6 address, while it is up."""
    if not state.admin_state_up:
        return []
    out = []
    for port in state.interfaces:
        if any(_global_v6(c) for c in port.cidrs):
            out.append(Advertised(device=Layout.router_interface(port.port_id), mtu=port.mtu))
    return out


def _global_v6(cidr: str) -> bool:
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError:
        return False
    return iface.version == 6 and not iface.ip.is_link_local


def run_dir(layout: Layout, router_id: str) -> Path:
    """Where the router's daemon (radvd) keeps its files."""
    return RUN_ROOT / layout.prefix / f"qrouter-{router_id}"


def _port_range(text: str) -> tuple[int, int]:
    low, _, high = str(text).partition(":")
    return int(low), int(high or low)


def _ports_json(low: int, high: int) -> int | dict[str, list[int]]:
    return low if low == high else {"range": [low, high]}


def _daddr(address: str) -> nft.Json:
    return nft.match(nft.payload("ip", "daddr"), address)


def _saddr(address: str) -> nft.Json:
    return nft.match(nft.payload("ip", "saddr"), address)


def _iif(name: str, op: str = "==") -> nft.Json:
    return nft.match(nft.meta("iifname"), name, op=op)


def _oif(name: str, op: str = "==") -> nft.Json:
    return nft.match(nft.meta("oifname"), name, op=op)


def _forwarding_rule(pf: PortForwarding) -> nft.Json:
    """DNAT of floating_ip:external_port/proto to internal_ip:internal_port; a
    range goes to the range of the same length, port by port."""
    proto = pf.protocol.lower()
    if proto not in _PROTOCOLS:
        raise ValueError(f"port forwarding protocol {pf.protocol!r}")
    ext_low, ext_high = _port_range(pf.external_port)
    int_low, int_high = _port_range(pf.internal_port)
    dport = nft.payload(proto, "dport")
    target: object
    if (ext_low, ext_high) == (int_low, int_high) or int_low == int_high:
        # the same ports (the kernel keeps a port already in the range), or one port
        target = _ports_json(int_low, int_high)
    else:
        if ext_high - ext_low != int_high - int_low:
            raise ValueError(f"port ranges of unequal length: {pf.external_port} "
                             f"-> {pf.internal_port}")
        target = {"map": {"key": dport, "data": {"set": [
            [ext_low + i, int_low + i] for i in range(ext_high - ext_low + 1)]}}}
    return nft.rule("prerouting", _daddr(pf.floating_ip),
                    nft.match(dport, _ports_json(ext_low, ext_high)),
                    {"dnat": {"addr": pf.internal_ip, "port": target}})


def nat_items(state: RouterState) -> list[nft.Json]:
    """The chains and rules of the router's NAT table (IPv4), as Neutron's L3
    agent writes them with iptables:

    * prerouting: the metadata redirect; port forwardings; floating IP DNAT;
    * output: floating IP DNAT for the router's own traffic;
    * postrouting: routed traffic between the router's own networks is left
      alone (not from and not to ``qg-``, not DNAT'ed); a floating IP's fixed
      address is SNAT'ed to it; with ``enable_snat`` whatever else leaves by
      ``qg-``, and DNAT'ed traffic that did not come in by ``qg-`` (hairpin),
      is SNAT'ed to the gateway address.
    """
    items: list[nft.Json] = [
        nft.chain("prerouting", type="nat", hook="prerouting", priority=-100, policy="accept"),
        nft.chain("output", type="nat", hook="output", priority=-100, policy="accept"),
        nft.chain("postrouting", type="nat", hook="postrouting", priority=100,
                  policy="accept"),
        nft.rule("prerouting", _iif(ROUTER_INTERFACE_PREFIX + "*"), _daddr(METADATA_ADDRESS),
                 nft.match(nft.payload("tcp", "dport"), 80),
                 {"redirect": {"port": METADATA_PORT}}, comment="metadata"),
    ]
    if state.gateway is None:
        return items
    qg = Layout.router_gateway(state.gateway.port_id)
    for pf in sorted(state.port_forwardings, key=lambda p: (
            p.floating_ip, p.protocol, _port_range(p.external_port))):
        if not _is_v4(pf.floating_ip):
            continue
        try:
            items.append(_forwarding_rule(pf))
        except ValueError as exc:  # the API refuses these: one such row breaks no other
            log.warning("port forwarding %s not applied: %s", pf, exc)
    fips = sorted({(f.floating_ip, f.fixed_ip) for f in state.floating_ips
                   if _is_v4(f.floating_ip) and _is_v4(f.fixed_ip)})
    for floating, fixed in fips:
        items.append(nft.rule("prerouting", _daddr(floating), nft.dnat(fixed)))
        items.append(nft.rule("output", _daddr(floating), nft.dnat(fixed)))
    items.append(nft.rule("postrouting", _iif(qg, "!="), _oif(qg, "!="),
                          nft.match(nft.ct("status"), "dnat", op="!"), nft.accept()))
    for floating, fixed in fips:
        items.append(nft.rule("postrouting", _saddr(fixed), nft.snat(floating)))
    gateway = gateway_address(state)
    if state.enable_snat and gateway is not None:
        items.append(nft.rule("postrouting", _oif(qg), nft.snat(gateway)))
        items.append(nft.rule("postrouting", _iif(qg, "!="),
                              nft.match(nft.ct("status"), "dnat", op="in"), nft.snat(gateway)))
    return items


def digest(items: Iterable[nft.Json]) -> str:
    return hashlib.sha256(json.dumps(list(items), sort_keys=True).encode()).hexdigest()[:32]


def nat_table(state: RouterState) -> nft.Table:
    """The whole table, with a chain that is never jumped to whose one rule's
    comment is the digest of the rest (how :func:`sync_router` tells that the
    table in the kernel is already this one)."""
    items = nat_items(state)
    mark = digest(items)
    return nft.Table("ip", NAT_TABLE, items + [
        nft.chain(DIGEST_CHAIN), nft.rule(DIGEST_CHAIN, nft.accept(), comment=mark)])


# --- effects --------------------------------------------------------------------


def _router_ns(layout: Layout, router_id: str) -> str:
    return layout.router_ns(router_id)


def sync_router(layout: Layout, state: RouterState) -> None:
    """Makes the router's namespace, veths, addresses, routes, forwarding and
    NAT table exactly ``state``. Idempotent; blocking (call it from a thread)."""
    from onestack.host import netns, routerns

    ns = _router_ns(layout, state.router_id)
    ports = ([state.gateway] if state.gateway is not None else []) + list(state.interfaces)
    devices = {(Layout.router_gateway(p.port_id) if p is state.gateway
                else Layout.router_interface(p.port_id)): p for p in ports}
    netns.ensure(layout.root_ns)
    netns.ensure(ns)
    # 1. in the router: its sysctls; the devices no longer wanted removed
    #    (their bridge ends go with them)
    present = netns.call(ns, routerns.prepare, ROUTER_SYSCTLS, set(devices), DEVICE_PREFIXES)
    # 2. in the root namespace: the veths, bridge ends on their bridges; a
    #    router device whose bridge end went is made again
    wires = [routerns.Wire(tap=Layout.tap(p.port_id), peer=name,
                           bridge=Layout.bridge(p.network_id), mtu=p.mtu)
             for name, p in devices.items()]
    orphans = netns.call(layout.root_ns, routerns.wire_root, wires, ns, present)
    if orphans:
        netns.call(ns, routerns.delete, orphans)
        netns.call(layout.root_ns, routerns.wire_root, wires, ns, present - set(orphans))
    # 3. in the router: MAC, MTU, state, addresses, routes, and
    addresses = device_addresses(state)
    settings = [routerns.Device(name=name, mac=p.mac, mtu=p.mtu, up=state.admin_state_up,
                                cidrs=addresses[name]) for name, p in devices.items()]
    # 4. the NAT table, replaced in one transaction unless it is already this one
    table = nat_table(state)
    changed, applied = netns.call(ns, lambda: (
        routerns.configure(settings, wanted_routes(state)),
        routerns.ensure_table(table, DIGEST_CHAIN)))
    # 5. IPv6 router advertisements on the interfaces with IPv6 subnets
    _advertise(ns, run_dir(layout, state.router_id), advertised(state))
    if state.gateway is None:
        return
    qg = Layout.router_gateway(state.gateway.port_id)
    added, removed = changed.get(qg, ([], []))
    # 6. connections through translations that are gone are forgotten (as
    #    Neutron's conntrack -D): they would go on flowing otherwise
    if applied or removed:
        floating = set(_floating_addresses(state))
        floating.update(c.split("/")[0] for c in removed if _is_v4(c))
        netns.call(ns, _forget_stale, state, floating)
    # 7. new floating IPs announced on the external network (gratuitous ARP)
    fresh = [c.split("/")[0] for c in added if _is_v4(c)]
    if fresh and state.admin_state_up:
        try:
            netns.call(ns, routerns.announce, qg, state.gateway.mac, fresh)
        except (HostError, OSError) as exc:  # an optimisation only
            log.warning("router %s: gratuitous ARP failed: %s", state.router_id, exc)


def _advertise(ns: str, where: Path, links: list[Advertised]) -> None:
    import shutil

    from onestack.host import radvd

    if links and shutil.which("radvd") is None:
        global _radvd_warned
        if not _radvd_warned:
            _radvd_warned = True
            log.warning("radvd is not installed: routers send no IPv6 router advertisements")
        return
    radvd.ensure(ns, where, links)


_radvd_warned = False


def _forget_stale(state: RouterState, addresses: set[str]) -> int:
    from onestack.host import conntrack

    if not addresses:
        return 0
    return conntrack.forget(f for f in conntrack.flows(addresses)
                            if is_stale(state, f, addresses))


def _forwarded_port(pf: PortForwarding, dport: int) -> int | None:
    """Where a port forwarding sends external port ``dport`` (None: not its port)."""
    try:
        ext_low, ext_high = _port_range(pf.external_port)
        int_low, int_high = _port_range(pf.internal_port)
    except ValueError:
        return None
    if not ext_low <= dport <= ext_high:
        return None
    if (ext_low, ext_high) == (int_low, int_high):
        return dport
    return int_low if int_low == int_high else int_low + dport - ext_low


def is_stale(state: RouterState, flow: Flow, addresses: Collection[str]) -> bool:
    """Whether a tracked connection to or from one of ``addresses`` (the
    router's floating IPs, and those it just gave up) was translated in a way
    ``state`` no longer does: a floating IP gone or moved to another fixed
    address, a port forwarding gone or changed."""
    fips = {f.floating_ip: f.fixed_ip for f in state.floating_ips}
    forwardings = state.port_forwardings
    if state.gateway is None:
        fips, forwardings = {}, ()
    if flow.orig_dst in addresses:  # to a floating IP: where was it sent?
        dnat_ok = fips.get(flow.orig_dst) == flow.reply_src or any(
            pf.floating_ip == flow.orig_dst and pf.internal_ip == flow.reply_src
            and _PROTOCOLS.get(pf.protocol.lower()) == flow.proto
            and flow.orig_dport is not None
            and _forwarded_port(pf, flow.orig_dport) == flow.reply_sport
            for pf in forwardings)
        if not dnat_ok:
            return True
    if flow.reply_dst in addresses and flow.reply_dst != flow.orig_src:
        # from a fixed address, seen outside as a floating IP
        return fips.get(flow.reply_dst) != flow.orig_src
    return False


def remove_router(layout: Layout, router_id: str) -> None:
    """Removes the router's namespace and its devices (and so their bridge-side
    ends); a no-op if it is not there."""
    from onestack.host import netns, radvd, routerns

    ns = _router_ns(layout, router_id)
    radvd.stop(run_dir(layout, router_id))
    if not netns.exists(ns):
        netns.delete(ns)  # a stale file left by a crash, if any
        return
    # the veths first, synchronously: a deleted namespace's devices go only
    # when the kernel gets round to it
    netns.call(ns, routerns.prepare, (), set(), DEVICE_PREFIXES)
    netns.delete(ns)


def existing_routers(layout: Layout) -> set[str]:
    """The ids of the routers with a namespace on this host (for reconcile)."""
    from onestack.host import netns

    prefix = layout.router_ns("")
    return {name[len(prefix):] for name in netns.names(prefix) if len(name) > len(prefix)}
