"""An instance's taps: made on its network's bridge before QEMU opens them, removed after.

A VIF is a tap device in the data plane's namespace (``Vif.netns``),
enslaved to the network's bridge (``Vif.bridge``), with the network's MTU and
the guest's MAC with its first byte ``fe`` (as libvirt does, so the bridge
never takes a guest's address as its own). QEMU runs in that namespace and
attaches to the tap by name. Taps exist while the guest's process does: a
stopped, suspended or destroyed instance has none (as with libvirt, where the
tap goes with the domain).
"""

from __future__ import annotations

from collections.abc import Iterable

from onestack.compute.virt.base import Vif, VirtError
from onestack.compute.virt.qemu.domain import tap_mac
from onestack.host.base import Host, NetlinkOps
from onestack.host.errors import HostError, NotFound
from onestack.host.qemu_spec import GuestSpec


async def plug(host: Host, vifs: Iterable[Vif]) -> None:
    """Makes (or settles) every VIF's tap on its bridge; idempotent."""
    by_ns: dict[str | None, list[Vif]] = {}
    for vif in vifs:
        by_ns.setdefault(vif.netns, []).append(vif)
    for ns, group in by_ns.items():
        def wire(nl: NetlinkOps, group: list[Vif] = group) -> None:
            for vif in group:
                if nl.link(vif.bridge) is None:
                    raise NotFound(f"the bridge {vif.bridge} of port {vif.port_id} does "
                                   "not exist")
                nl.ensure_tap(vif.tap, mtu=vif.mtu, mac=tap_mac(vif.mac), master=vif.bridge)

        try:
            await host.net.netlink(ns, wire)
        except HostError as exc:
            raise VirtError(f"Plugging the instance's ports failed: {exc}") from exc


async def unplug(host: Host, netns: str | None, taps: Iterable[str]) -> None:
    """Removes these taps from ``netns`` (those already gone are no error)."""
    names = list(taps)
    if not names:
        return

    def remove(nl: NetlinkOps) -> None:
        for name in names:
            nl.delete(name)

    try:
        await host.net.netlink(netns, remove)
    except NotFound:  # the namespace is gone, and its taps with it
        pass


async def unplug_guest(host: Host, guest: GuestSpec) -> None:
    await unplug(host, guest.netns, [n.tap for n in guest.nics])
