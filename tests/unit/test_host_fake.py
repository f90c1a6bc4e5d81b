"""The in-memory host behaves like the real one where an agent could tell."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from onestack.host import nft
from onestack.host.base import Host
from onestack.host.dnsmasq import DhcpHost, DhcpRange, DnsmasqSpec
from onestack.host.errors import HostError, NotFound
from onestack.host.fake import FakeHost
from onestack.host.qemu import Disk, GuestSpec, Nic


def run(body: Callable[[FakeHost], Coroutine[Any, Any, Any]]) -> FakeHost:
    host = FakeHost()
    asyncio.run(body(host))
    return host


def test_it_is_a_host() -> None:
    host: Host = FakeHost()
    assert host.net and host.firewall and host.dhcp and host.images and host.guests


def test_namespaces_and_links() -> None:
    async def body(host: FakeHost) -> None:
        assert await host.net.ensure_netns("os-dp") is True
        assert await host.net.ensure_netns("os-dp") is False
        await host.net.ensure_netns("os-i1")
        assert await host.net.list_netns("os-") == ["os-dp", "os-i1"]

        def wire(nl: Any) -> list[bool]:
            return [nl.ensure_bridge("br0", mtu=1450), nl.ensure_bridge("br0"),
                    nl.ensure_veth("v1", "eth0", peer_netns="os-i1", master="br0"),
                    nl.ensure_tap("tap1", master="br0"),
                    nl.ensure_address("br0", "10.0.0.1/26"), nl.ensure_address("br0", "10.0.0.1/26"),
                    nl.ensure_route("default", gateway="10.0.0.62"),
                    nl.ensure_route("default", gateway="10.0.0.62"),
                    nl.set_sysctl("net.ipv4.ip_forward", 1), nl.set_sysctl("net/ipv4/ip_forward", 1)]

        assert await host.net.netlink("os-dp", wire) == [True, False, True, True, True, False,
                                                         True, False, True, False]
        links = await host.net.netlink("os-dp", lambda nl: {x.name: x for x in nl.links()})
        assert links["br0"].mtu == 1450 and links["br0"].up
        assert links["v1"].master == "br0" and links["tap1"].kind == "tun"
        peer = await host.net.netlink("os-i1", lambda nl: nl.link("eth0"))
        assert peer is not None and peer.kind == "veth" and not peer.up
        assert await host.net.netlink("os-dp", lambda nl: nl.sysctl("net.ipv4.ip_forward")) == "1"
        with pytest.raises(HostError, match="not bridge"):
            await host.net.netlink("os-dp", lambda nl: nl.ensure_bridge("tap1"))
        with pytest.raises(NotFound):
            await host.net.netlink("os-dp", lambda nl: nl.set_up("nope"))
        with pytest.raises(NotFound):
            await host.net.netlink("os-gone", lambda nl: nl.links())
        assert await host.net.netlink("os-dp", lambda nl: nl.sync_addresses(
            "br0", ["10.0.0.2/26"])) == (["10.0.0.2/26"], ["10.0.0.1/26"])
        # deleting a namespace takes the other end of its veths with it
        assert await host.net.delete_netns("os-i1") is True
        assert await host.net.netlink("os-dp", lambda nl: nl.link("v1")) is None
        assert await host.net.delete_netns("os-i1") is False

    host = run(body)
    assert ("ensure_netns", "os-dp") in host.calls
    assert ("netlink", "os-dp", "ensure_bridge", "br0") in host.calls
    assert host.calls.count(("netlink", "os-dp", "ensure_bridge", "br0")) == 1


def test_firewall_tables() -> None:
    async def body(host: FakeHost) -> None:
        await host.net.ensure_netns("os-r1")
        table = nft.Table("inet", "sg").add(nft.chain("c"), nft.rule("c", nft.accept()))
        await host.firewall.apply("os-r1", table)
        await host.firewall.apply("os-r1", nft.Table("ip", "nat"))
        assert await host.firewall.list_tables("os-r1") == [("inet", "sg"), ("ip", "nat")]
        assert host.firewall.tables[("os-r1", "inet", "sg")].items == table.items
        assert await host.firewall.delete_table("os-r1", "inet", "sg") is True
        assert await host.firewall.delete_table("os-r1", "inet", "sg") is False
        with pytest.raises(NotFound):
            await host.firewall.apply("os-none", table)

    run(body)


def test_dhcp_restarts_only_when_its_configuration_changes() -> None:
    async def body(host: FakeHost) -> None:
        await host.net.ensure_netns("os-dhcp")
        spec = DnsmasqSpec("net1", "ns-1", "os-dhcp", (DhcpRange("s1", "10.0.0.0/26"),))
        assert await host.dhcp.ensure(spec) == "started"
        pid = (await host.dhcp.running())["net1"]
        assert await host.dhcp.ensure(spec) == "unchanged"
        more = DnsmasqSpec("net1", "ns-1", "os-dhcp", spec.ranges,
                           hosts=(DhcpHost("fa:16:3e:00:00:01", ("10.0.0.5",)),))
        assert await host.dhcp.ensure(more) == "updated"  # a new entry: no signal
        assert (await host.dhcp.running())["net1"] == pid
        assert await host.dhcp.ensure(spec) == "reloaded"  # an entry gone: SIGHUP
        assert await host.dhcp.ensure(DnsmasqSpec("net1", "ns-2", "os-dhcp", spec.ranges)) \
            == "restarted"
        assert (await host.dhcp.running())["net1"] != pid
        assert await host.dhcp.stop("net1") is True and await host.dhcp.names() == []

    run(body)


def test_images() -> None:
    async def body(host: FakeHost) -> None:
        await host.images.create(Path("/b.qcow2"), "qcow2", 1 << 30)
        await host.images.create_overlay(Path("/o.qcow2"), Path("/b.qcow2"), "qcow2")
        info = await host.images.info(Path("/o.qcow2"), "qcow2")
        assert (info.virtual_size, info.backing_file, info.backing_format) == (
            1 << 30, "/b.qcow2", "qcow2")
        with pytest.raises(HostError, match="not a raw image"):
            await host.images.info(Path("/o.qcow2"), "raw")
        with pytest.raises(HostError, match="shrink"):
            await host.images.resize(Path("/o.qcow2"), "qcow2", 1 << 20)
        with pytest.raises(HostError, match="No such file"):
            await host.images.create_overlay(Path("/x"), Path("/missing"), "qcow2")

    run(body)


def test_guests_hotplug_and_power() -> None:
    spec = GuestSpec(name="vm1", disks=(Disk("/o.qcow2"),), nics=(Nic("tap1", "fa:16:3e:00:00:01"),),
                     netns="os-dp", hotplug_slots=1)

    async def body(host: FakeHost) -> None:
        with pytest.raises(NotFound):
            await host.guests.start(spec)
        await host.net.ensure_netns("os-dp")
        guest = await host.guests.start(spec)
        assert (await host.guests.get("vm1")) == guest
        with pytest.raises(HostError, match="already running"):
            await host.guests.start(spec)
        async with host.guests.qmp("vm1") as q:
            assert await q.status() == "running"
            assert await q.free_ports() == ["rp2"]
            assert await q.add_nic("nic2", "tap2", "fa:16:3e:00:00:02") == "rp2"
            with pytest.raises(HostError, match="no free PCIe root port"):
                await q.add_disk("vol1", Path("/v"), "raw")
            await q.remove_nic("nic0")  # the boot NIC is on a root port too
            assert await q.free_ports() == ["rp1"]
            await q.save(Path("/state/vm1"))
            assert await q.status() == "paused"
        await host.guests.stop("vm1")
        assert await host.guests.running() == {}
        await host.guests.restore(spec, Path("/state/vm1"))
        async with host.guests.qmp("vm1") as q:
            assert await q.status() == "running"
            await q.powerdown()
        assert await host.guests.get("vm1") is None
        assert host.guests.exits[-1] == ("vm1", "guest-shutdown")

    host = run(body)
    assert ("qmp", "vm1", "device_add") in host.calls


def test_guest_slots_on_pc_and_explicit_slots() -> None:
    spec = GuestSpec(name="vm2", machine="pc", disks=(Disk("/o.qcow2"),),
                     nics=(Nic("tap1", "fa:16:3e:00:00:01", slot=2),), hotplug_slots=1)

    async def body(host: FakeHost) -> None:
        await host.guests.start(spec)
        async with host.guests.qmp("vm2") as q:
            assert await q.free_ports() == ["pci.0@0x11"]
            with pytest.raises(HostError, match="is full"):
                await q.add_nic("nic2", "tap2", "fa:16:3e:00:00:02", bus="pci.0", addr="0x12")
            assert await q.add_disk("vol1", Path("/v"), "raw", bus="pci.0", addr="0x11") == "pci.0"
            assert await q.free_ports() == []

    run(body)


def test_iso_images_are_recorded() -> None:
    async def body(host: FakeHost) -> None:
        await host.images.make_iso(Path("/i/disk.config"), "config-2",
                                   {"openstack/latest/meta_data.json": b"{}"})
        assert host.images.isos[Path("/i/disk.config")] == (
            "config-2", {"openstack/latest/meta_data.json": b"{}"})
        assert (await host.images.info(Path("/i/disk.config"), "raw")).format == "raw"
        with pytest.raises(HostError, match="invalid file name"):
            await host.images.make_iso(Path("/i/x"), "config-2", {"../etc/passwd": b""})
        with pytest.raises(HostError, match="invalid volume label"):
            await host.images.make_iso(Path("/i/x"), "config 2", {"a": b""})

    run(body)


def test_image_copies_keep_format_and_backing() -> None:
    async def body(host: FakeHost) -> None:
        await host.images.create(Path("/b.qcow2"), "qcow2", 1 << 20)
        await host.images.create_overlay(Path("/o.qcow2"), Path("/b.qcow2"), "qcow2")
        await host.images.copy(Path("/o.qcow2"), Path("/k/o.qcow2"))
        info = await host.images.info(Path("/k/o.qcow2"), "qcow2")
        assert (info.backing_file, info.virtual_size) == ("/b.qcow2", 1 << 20)
        with pytest.raises(HostError, match="No such file"):
            await host.images.copy(Path("/missing"), Path("/x"))

    run(body)
