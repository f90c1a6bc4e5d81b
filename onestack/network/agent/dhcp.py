"""A network's dnsmasq, as Neutron's DHCP agent configures it (pure: no I/O).

Static entries only: each port's MAC gets its fixed addresses on the
network's DHCP subnets (and, for DNS, the name ``host-10-0-0-5`` or its
``dns_name``); per subnet the gateway (or none), the DNS servers (the
subnet's, else the DHCP server itself, which answers only the network's own
names), the host routes as classless static routes, and the network's MTU.
IPv6 subnets are served by their address mode: ``slaac`` (router
advertisements, no DHCPv6), ``dhcpv6-stateless`` (RAs plus DHCPv6 options),
``dhcpv6-stateful`` (static DHCPv6 entries). On a network no router serves,
the DHCP namespace holds the metadata address and the guests get a route to it.
"""

from __future__ import annotations

import ipaddress

from onestack.host.dnsmasq import DhcpHost, DhcpRange, DnsmasqSpec
from onestack.network.agent.layout import METADATA_ADDRESS, Layout
from onestack.network.agent.reader import NetworkInfo, PortInfo, SubnetInfo

SLAAC = "slaac"
STATELESS = "dhcpv6-stateless"
STATEFUL = "dhcpv6-stateful"
METADATA_CIDR = METADATA_ADDRESS + "/32"


def tag(subnet: SubnetInfo) -> str:
    return "subnet-" + subnet.id


def range_mode(subnet: SubnetInfo) -> str:
    if subnet.ip_version == 4:
        return "static"
    mode = subnet.ipv6_address_mode or subnet.ipv6_ra_mode
    return {SLAAC: "slaac", STATELESS: "ra-stateless"}.get(mode or "", "static")


def isolated(info: NetworkInfo) -> bool:
    """No router interface on it: the DHCP namespace answers the metadata address."""
    return not info.has_router and not info.external


def served(info: NetworkInfo, dhcp_port: PortInfo) -> list[SubnetInfo]:
    """The DHCP subnets the DHCP port has an address on (those dnsmasq can serve)."""
    on = {sid for sid, _ip in dhcp_port.fixed_ips}
    return [s for s in info.dhcp_subnets if s.id in on]


def interface_cidrs(info: NetworkInfo, dhcp_port: PortInfo) -> list[str]:
    """The addresses of the DHCP namespace's interface."""
    subnets = {s.id: s for s in info.subnets}
    cidrs = [f"{ip}/{subnets[sid].prefixlen}" for sid, ip in dhcp_port.fixed_ips if sid in subnets]
    if isolated(info) and any(s.ip_version == 4 for s in served(info, dhcp_port)):
        cidrs.append(METADATA_CIDR)
    return cidrs


def hostname(port: PortInfo, address: str) -> str:
    if port.dns_name:
        return port.dns_name
    return "host-" + address.replace(".", "-").replace(":", "-")


def _options(info: NetworkInfo, subnet: SubnetInfo, dhcp_ip: str | None) -> list[str]:
    t = f"tag:{tag(subnet)}"
    opts: list[str] = []
    if subnet.ip_version == 4:
        dns = list(subnet.dns_nameservers) or ([dhcp_ip] if dhcp_ip else [])
        if dns:
            opts.append(f"{t},option:dns-server,{','.join(dns)}")
        routes = list(subnet.host_routes)
        if isolated(info) and dhcp_ip:
            routes.append((METADATA_CIDR, dhcp_ip))
        if routes:
            if subnet.gateway_ip:  # classless routes replace the router option: say it again
                routes.append(("0.0.0.0/0", subnet.gateway_ip))
            pairs = ",".join(f"{dst},{hop}" for dst, hop in routes)
            opts.append(f"{t},option:classless-static-route,{pairs}")
            opts.append(f"{t},249,{pairs}")
        opts.append(f"{t},option:router,{subnet.gateway_ip}" if subnet.gateway_ip else f"{t},option:router")
        opts.append(f"{t},option:mtu,{info.mtu}")
    else:
        if range_mode(subnet) == "slaac":
            return opts
        dns = list(subnet.dns_nameservers) or ([dhcp_ip] if dhcp_ip else [])
        if dns:
            opts.append(f"{t},option6:dns-server,{','.join('[' + d + ']' for d in dns)}")
    return opts


def spec(layout: Layout, info: NetworkInfo, dhcp_port: PortInfo, domain: str) -> DnsmasqSpec:
    subnets = served(info, dhcp_port)
    by_id = {s.id: s for s in subnets}
    dhcp_ips = {sid: ip for sid, ip in dhcp_port.fixed_ips}
    device = layout.dhcp_device(dhcp_port.id)
    ranges = tuple(DhcpRange(tag(s), s.cidr, range_mode(s)) for s in subnets)
    options: list[str] = []
    for s in subnets:
        options += _options(info, s, dhcp_ips.get(s.id))
    hosts: list[DhcpHost] = []
    names: list[tuple[str, tuple[str, ...]]] = []
    for port in info.ports:
        if port.id == dhcp_port.id:
            continue
        addresses = []
        for sid, ip in port.fixed_ips:
            sub = by_id.get(sid)
            if sub is None:
                continue
            if sub.ip_version == 6 and range_mode(sub) != "static":
                continue  # SLAAC: the guest makes its own address
            addresses.append(ip)
        if not addresses:
            continue
        name = hostname(port, addresses[0])
        hosts.append(DhcpHost(port.mac, tuple(addresses), name))
        for ip in addresses:
            names.append((ip, (f"{name}.{domain}", name)))
    extra: list[str] = []
    ra = any(s.ip_version == 6 and range_mode(s) != "static" for s in subnets)
    if ra:
        # Prefixes only: the router (its own advertisements) is the default gateway.
        extra.append(f"ra-param={device},60,0")
    return DnsmasqSpec(
        name=info.id, interface=device, netns=layout.dhcp_ns(info.id), ranges=ranges,
        hosts=tuple(hosts), options=tuple(options), dns=True, domain=domain,
        names=tuple(names), router_advertisements=ra, extra=tuple(extra),
    )


def domain_of(info: NetworkInfo, default: str) -> str:
    name = (info.dns_domain or default or "openstacklocal").rstrip(".")
    return name or "openstacklocal"


def is_v6(address: str) -> bool:
    return ipaddress.ip_address(address).version == 6
