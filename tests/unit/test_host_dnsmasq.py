"""dnsmasq's files for one network, rendered from a spec (no process started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.host.dnsmasq import DhcpHost, DhcpRange, Dnsmasq, DnsmasqSpec, Lease, render
from onestack.host.errors import HostError

D = Path("/run/os/dnsmasq/net1")


def spec(**kw: object) -> DnsmasqSpec:
    base: dict[str, object] = dict(
        name="net1", interface="ns-1", netns="qdhcp-1",
        ranges=(DhcpRange("subnet-a", "10.0.0.0/26"),
                DhcpRange("subnet-b", "fd00:1::/64", mode="slaac", lease_seconds=0)),
        hosts=(DhcpHost("FA:16:3E:00:00:01", ("10.0.0.5", "fd00:1::5"), "host-a", "port-1"),
               DhcpHost("fa:16:3e:00:00:02", ("10.0.0.6",))),
        options=("tag:subnet-a,option:router,10.0.0.1", "tag:subnet-a,option:mtu,1450"),
    )
    base.update(kw)
    return DnsmasqSpec(**base)  # type: ignore[arg-type]


def test_configuration_serves_dhcp_only_and_never_forwards() -> None:
    files = render(spec(), D)
    assert files["dnsmasq.conf"].splitlines() == [
        "# written by onestack for this network; changes here are overwritten",
        "interface=ns-1", "bind-interfaces", "except-interface=lo", "no-resolv", "no-hosts",
        "user=root", "dhcp-authoritative",
        f"pid-file={D}/pid", f"dhcp-leasefile={D}/leases", f"dhcp-hostsfile={D}/hosts",
        f"dhcp-optsfile={D}/opts", f"log-facility={D}/log", "dhcp-lease-max=16777216",
        "port=0",
        "dhcp-range=set:subnet-a,10.0.0.0,static,255.255.255.192,86400s",
        "dhcp-range=set:subnet-b,fd00:1::,slaac,64,infinite",
    ]
    assert files["hosts"] == ("fa:16:3e:00:00:01,set:port-1,10.0.0.5,[fd00:1::5],host-a\n"
                              "fa:16:3e:00:00:02,10.0.0.6\n")
    assert files["opts"] == ("tag:subnet-a,option:router,10.0.0.1\n"
                             "tag:subnet-a,option:mtu,1450\n")
    assert files["addn_hosts"] == ""


def test_dns_answers_only_the_networks_own_names() -> None:
    files = render(spec(dns=True, domain="openstacklocal", router_advertisements=True,
                        names=(("10.0.0.5", ("host-a.openstacklocal", "host-a")),)), D)
    conf = files["dnsmasq.conf"].splitlines()
    assert "port=0" not in conf
    for line in ("no-resolv", "no-hosts", "domain=openstacklocal", "local=/openstacklocal/",
                 f"addn-hosts={D}/addn_hosts", "enable-ra"):
        assert line in conf
    assert not any(line.startswith("server=") for line in conf)
    assert files["addn_hosts"] == "10.0.0.5\thost-a.openstacklocal host-a\n"


@pytest.mark.parametrize("rng", [DhcpRange("t", "10.0.0.0/24", mode="slaac"),
                                 DhcpRange("t", "fd00::/64", mode="bogus")])
def test_bad_ranges(rng: DhcpRange) -> None:
    with pytest.raises(HostError, match="invalid DHCP mode"):
        render(spec(ranges=(rng,)), D)


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(HostError):
        render(spec(name=name), D)


def test_leases_are_read_from_the_lease_file(tmp_path: Path) -> None:
    d = Dnsmasq(tmp_path)
    assert d.leases("net1") == []
    (tmp_path / "net1").mkdir()
    (tmp_path / "net1" / "leases").write_text(
        "1796540281 fa:16:3e:00:00:01 10.0.0.5 host-a 01:fa:16:3e:00:00:01\n"
        "1796540282 fa:16:3e:00:00:02 10.0.0.6 * *\n"
        "duid 00:01:00:01:2c:00:00:00:fa:16:3e:00:00:00\n")
    assert d.leases("net1") == [Lease(1796540281, "fa:16:3e:00:00:01", "10.0.0.5", "host-a"),
                                Lease(1796540282, "fa:16:3e:00:00:02", "10.0.0.6", None)]
    assert d.names() == []  # no configuration: not an instance
    assert d.pid("net1") is None


@pytest.mark.parametrize("change", [
    {"options": ("tag:a,option:mtu,1450\ndhcp-script=/tmp/x",)},
    {"extra": ("log-queries\rdhcp-script=/tmp/x",)},
    {"interface": "eth0\ndhcp-script=/x"}, {"interface": "x" * 16},
    {"domain": "openstacklocal\nserver=8.8.8.8"}, {"domain": "-bad"},
    {"hosts": (DhcpHost("fa:16:3e:00:00:01\n", ("10.0.0.5",)),)},
    {"hosts": (DhcpHost("fa:16:3e:00:00:01", ("10.0.0.5",), "a,b"),)},
    {"hosts": (DhcpHost("fa:16:3e:00:00:01", ("10.0.0.5",), tag="t\n"),)},
    {"hosts": (DhcpHost("fa:16:3e:00:00:01", ("10.0.0.500",)),)},
    {"names": (("10.0.0.5", ("a b",)),)}, {"names": (("not-an-ip", ("a",)),)},
    {"ranges": (DhcpRange("t,x", "10.0.0.0/24"),)},
    {"ranges": (DhcpRange("t", "10.0.0.1/24"),)},
])
def test_nothing_can_add_a_line_to_the_configuration(change: dict[str, object]) -> None:
    with pytest.raises(HostError):
        render(spec(**change), D)
