"""The host layer's own rules: cheap to import, strict about names and keys."""

from __future__ import annotations

import subprocess
import sys

import pytest

from onestack.host import links, netns
from onestack.host.errors import HostError


def test_the_seam_loads_no_netlink_library() -> None:
    # pyroute2 costs 0.1 s to import: only the code that talks netlink loads it
    code = ("import sys, onestack.host.base, onestack.host.fake, onestack.host.qemu, "
            "onestack.host.dnsmasq, onestack.host.nft; "
            "print(sorted(m for m in sys.modules if m.startswith(('pyroute2', 'onestack.') ) "
            "and not m.startswith('onestack.host')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"  # neither pyroute2 nor any service package


@pytest.mark.parametrize("name", ["", "a/b", "..", "-x", "x" * 64, "a b", "ns1\n"])
def test_bad_namespace_names(name: str) -> None:
    with pytest.raises(HostError, match="invalid network namespace name"):
        netns.check_name(name)


@pytest.mark.parametrize("key", ["kernel.hostname", "net/../../kernel/x", "net..ipv4",
                                 "vm/overcommit_memory"])
def test_only_per_namespace_sysctls(key: str) -> None:
    with pytest.raises(HostError, match="not a per-namespace sysctl"):
        netns._sysctl_path(key)


def test_sysctl_keys_with_dots_or_slashes() -> None:
    assert str(netns._sysctl_path("net.ipv4.ip_forward")) == "/proc/sys/net/ipv4/ip_forward"
    assert str(netns._sysctl_path("net/ipv6/conf/br-1.5/accept_ra")) == \
        "/proc/sys/net/ipv6/conf/br-1.5/accept_ra"


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a b", ".."])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(HostError, match="invalid interface name"):
        links.check_ifname(name)


def test_route_destinations() -> None:
    assert links._route_dst("default") == ("0.0.0.0", 0, 4)
    assert links._route_dst("default6") == ("::", 0, 6)
    assert links._route_dst("10.0.0.0/24") == ("10.0.0.0", 24, 4)
    with pytest.raises(HostError, match="invalid route destination"):
        links._route_dst("10.0.0.1/24")
