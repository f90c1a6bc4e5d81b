"""The names of the data plane's namespaces and devices on one host, in one place.

The network agent (bridges, DHCP, metadata), its L3 part (routers), its
firewall (security groups) and Compute (the taps of instances) must agree on
them, and several clouds may run on one machine at once (tests do), so every
namespace name starts with the cloud's own prefix.

The picture (docs/network.md)::

    <prefix>-dp                 the data plane's root namespace: one bridge per
                                network ("brq" + 11 characters of its id), and
                                on it one device per port: "tap" + 11 characters
                                of the port id (a VM's tap, or the bridge-side
                                end of a veth into a router or DHCP namespace)
    <prefix>-qrouter-<id>       a router: "qr-<port>" interfaces, "qg-<port>" gateway
    <prefix>-qdhcp-<id>         a network's DHCP server: "ns-<port>" (dnsmasq)
    <prefix>-ext                with --no-host-network: the stand-in for the host
                                on the external network (holds its gateway address)

Linux device names are at most 15 characters; namespace names are file names
under /run/netns (no such limit).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Neutron's device name prefixes (its linuxbridge agent and l3/dhcp agents).
BRIDGE_PREFIX = "brq"
TAP_PREFIX = "tap"
ROUTER_INTERFACE_PREFIX = "qr-"
ROUTER_GATEWAY_PREFIX = "qg-"
DHCP_DEVICE_PREFIX = "ns-"
# The port Neutron's metadata proxy listens on inside a router or DHCP namespace.
METADATA_PORT = 9697
METADATA_ADDRESS = "169.254.169.254"


def cloud_prefix(state_dir: Path | str) -> str:
    """A short prefix unique to one cloud (its state directory) on this machine."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()
    return "os" + digest[:6]


@dataclass(frozen=True)
class Layout:
    """The names of one cloud's data plane on this host."""

    prefix: str

    @property
    def root_ns(self) -> str:
        return f"{self.prefix}-dp"

    @property
    def external_ns(self) -> str:
        return f"{self.prefix}-ext"

    def router_ns(self, router_id: str) -> str:
        return f"{self.prefix}-qrouter-{router_id}"

    def dhcp_ns(self, network_id: str) -> str:
        return f"{self.prefix}-qdhcp-{network_id}"

    def owns(self, netns_name: str) -> bool:
        """Whether a namespace is one of this cloud's (for reconciling leftovers)."""
        return netns_name == self.root_ns or netns_name.startswith(self.prefix + "-")

    @staticmethod
    def bridge(network_id: str) -> str:
        return BRIDGE_PREFIX + network_id[:11]

    @staticmethod
    def tap(port_id: str) -> str:
        """A port's device on its network's bridge, in the root namespace."""
        return TAP_PREFIX + port_id[:11]

    @staticmethod
    def router_interface(port_id: str) -> str:
        return ROUTER_INTERFACE_PREFIX + port_id[:11]

    @staticmethod
    def router_gateway(port_id: str) -> str:
        return ROUTER_GATEWAY_PREFIX + port_id[:11]

    @staticmethod
    def dhcp_device(port_id: str) -> str:
        return DHCP_DEVICE_PREFIX + port_id[:11]
