"""dnsmasq's files for one network, rendered from a spec (no process started)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from onestack.host import dnsmasq
from onestack.host.dnsmasq import (
    DhcpHost,
    DhcpRange,
    Dnsmasq,
    DnsmasqSpec,
    Lease,
    entries,
    release_commands,
    render,
)
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
        f"pid-file={D}/pid", f"dhcp-leasefile={D}/leases", f"dhcp-hostsdir={D}/hosts.d",
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
                 f"hostsdir={D}/names.d", "enable-ra"):
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


def test_one_file_per_dhcp_entry_and_per_address() -> None:
    """hosts.d: one file per entry, named by its MAC; names.d: one per address."""
    hosts, names = entries(spec(dns=True, names=(("10.0.0.5", ("host-a.openstacklocal", "host-a")),
                                                 ("fd00:1::5", ("host-a.openstacklocal", "host-a")))))
    assert hosts == {"fa163e000001": "fa:16:3e:00:00:01,set:port-1,10.0.0.5,[fd00:1::5],host-a\n",
                     "fa163e000002": "fa:16:3e:00:00:02,10.0.0.6\n"}
    assert names == {"10.0.0.5": "10.0.0.5\thost-a.openstacklocal host-a\n",
                     "fd00_1__5": "fd00:1::5\thost-a.openstacklocal host-a\n"}


LEASES = [
    "1796540281 fa:16:3e:00:00:01 10.0.0.5 host-a 01:fa:16:3e:00:00:01",
    "1796540282 fa:16:3e:00:00:02 10.0.0.6 * *",
    "1796540283 fa:16:3e:00:00:09 10.0.0.9 * *",
    "duid 00:01:00:01:2c:00:00:00:fa:16:3e:00:00:00",
    "1796540284 1234 fd00:1::5 host-a 00:04:aa:bb",
    "1796540285 99 fd00:1::9 * 00:04:cc:dd",
]


def test_the_leases_of_removed_entries_are_released_as_neutron_does() -> None:
    gone = {("fa:16:3e:00:00:01", "10.0.0.5"), ("fa:16:3e:00:00:01", "fd00:1::5"),
            ("fa:16:3e:00:00:02", "10.0.0.6"), ("fa:16:3e:00:00:03", "10.0.0.9")}
    assert release_commands(LEASES, gone, "ns-1") == [
        ["dhcp_release", "ns-1", "10.0.0.5", "fa:16:3e:00:00:01", "01:fa:16:3e:00:00:01"],
        ["dhcp_release", "ns-1", "10.0.0.6", "fa:16:3e:00:00:02"],
        # 10.0.0.9 is leased to another MAC: left alone
        ["dhcp_release6", "--iface", "ns-1", "--ip", "fd00:1::5", "--server-id",
         "00:01:00:01:2c:00:00:00:fa:16:3e:00:00:00", "--client-id", "00:04:aa:bb", "--iaid", "1234"],
    ]
    assert release_commands(LEASES, set(), "ns-1") == []


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Dnsmasq, list[object]]:
    """A Dnsmasq whose instance runs (pid 4242): the signals and commands it sends recorded."""
    seen: list[object] = []
    d = Dnsmasq(tmp_path)
    started: set[str] = set()

    def start(self: Dnsmasq, sp: DnsmasqSpec) -> int:
        started.add(sp.name)
        seen.append("start")
        return 4242

    monkeypatch.setattr(Dnsmasq, "_start", start)
    monkeypatch.setattr(Dnsmasq, "pid", lambda self, name: 4242 if name in started else None)
    monkeypatch.setattr(dnsmasq.os, "kill", lambda pid, sig: seen.append(("kill", pid, sig)))
    monkeypatch.setattr(dnsmasq.shutil, "which", lambda name: f"/usr/bin/{name}")

    def run(ns: str | None, argv: list[str], timeout: float = 60) -> object:
        seen.append(("run", ns, *argv))
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(dnsmasq.netns, "run", run)
    return d, seen


def test_a_new_port_is_one_file_and_no_signal(running: tuple[Dnsmasq, list[object]]) -> None:
    """Only the new entry's file is written, and dnsmasq reads it itself (inotify):
    no SIGHUP. A changed or removed entry sends one; a removed one's lease is
    released first; a file deleted behind our back is written again."""
    import signal

    d, seen = running
    one = spec(hosts=(DhcpHost("fa:16:3e:00:00:01", ("10.0.0.5",)),), dns=True,
               names=(("10.0.0.5", ("host-10-0-0-5",)),))
    assert d.ensure(one) == "started" and seen == ["start"]
    hosts_d = d.directory("net1") / "hosts.d"
    assert sorted(p.name for p in hosts_d.iterdir()) == ["fa163e000001"]
    assert not (d.directory("net1") / "hosts").exists()
    two = dataclasses.replace(one, hosts=(*one.hosts, DhcpHost("fa:16:3e:00:00:02", ("10.0.0.6",))),
                              names=(*one.names, ("10.0.0.6", ("host-10-0-0-6",))))
    first = (hosts_d / "fa163e000001").stat().st_mtime_ns
    seen.clear()
    assert d.ensure(two) == "updated" and seen == []
    assert (hosts_d / "fa163e000002").read_text() == "fa:16:3e:00:00:02,10.0.0.6\n"
    assert (hosts_d / "fa163e000001").stat().st_mtime_ns == first  # not written again
    assert (d.directory("net1") / "names.d" / "10.0.0.6").read_text() == "10.0.0.6\thost-10-0-0-6\n"
    assert d.ensure(two) == "unchanged" and seen == []
    (hosts_d / "fa163e000002").unlink()
    assert d.ensure(two) == "updated" and (hosts_d / "fa163e000002").exists()
    # the first port removed: its lease released, then SIGHUP (dnsmasq keeps a removed entry until then)
    (d.directory("net1") / "leases").write_text("\n".join(LEASES) + "\n")
    seen.clear()
    last = dataclasses.replace(two, hosts=two.hosts[1:], names=two.names[1:])
    assert d.ensure(last) == "reloaded"
    assert seen == [("run", "qdhcp-1", "/usr/bin/dhcp_release", "ns-1", "10.0.0.5", "fa:16:3e:00:00:01",
                     "01:fa:16:3e:00:00:01"), ("kill", 4242, signal.SIGHUP)]
    assert sorted(p.name for p in hosts_d.iterdir()) == ["fa163e000002"]
    assert sorted(p.name for p in (d.directory("net1") / "names.d").iterdir()) == ["10.0.0.6"]
    # an entry changed (a new address): SIGHUP, nothing released
    seen.clear()
    moved = dataclasses.replace(last, hosts=(DhcpHost("fa:16:3e:00:00:02", ("10.0.0.7",)),))
    assert d.ensure(moved) == "reloaded" and seen == [("kill", 4242, signal.SIGHUP)]
    # a new Dnsmasq (the agent restarted) reads what the directories hold: nothing to write
    again = Dnsmasq(d.run_dir)
    assert again.ensure(moved) == "unchanged"
