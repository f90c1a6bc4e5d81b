"""The seam: what agents and drivers receive, and the real Linux implementation.

A network or compute agent is given a :class:`Host` and touches the machine
only through it. :func:`linux_host` builds the real one over this package's
modules; :class:`onestack.host.fake.FakeHost` is an in-memory one with the
same interface that records what was asked, for fast tests without root.

Everything is a coroutine: blocking work (netlink in a namespace, ``nft``,
starting dnsmasq or QEMU) runs in a thread, never on the event loop. Work in a
namespace is batched through :meth:`NetHost.netlink`, which runs a function
with a :class:`NetlinkOps` inside the namespace::

    await host.net.netlink("onestack-dp", lambda nl: (
        nl.ensure_bridge("brq-1"), nl.ensure_address("brq-1", "10.0.0.1/26")))
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # the real modules load only when used
    from onestack.host.dnsmasq import DnsmasqSpec, Lease
    from onestack.host.links import Link, Route
    from onestack.host.nft import Table
    from onestack.host.qemu import Guest, GuestSpec
    from onestack.host.qemu_img import ImageInfo

T = TypeVar("T")


class NetlinkOps(Protocol):
    """Links, addresses, routes and sysctls of one namespace (see ``links.Netlink``)."""

    def links(self) -> list[Link]: ...
    def link(self, name: str) -> Link | None: ...
    def counters(self, name: str) -> dict[str, int] | None: ...
    def ensure_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                      up: bool | None = True) -> bool: ...
    def ensure_veth(self, name: str, peer: str, *, peer_netns: str | None = "",
                    mtu: int | None = None, master: str | None = None,
                    up: bool | None = True) -> bool: ...
    def ensure_tap(self, name: str, *, owner: int | None = None, group: int | None = None,
                   mtu: int | None = None, mac: str | None = None, master: str | None = None,
                   multi_queue: bool = False, up: bool | None = True) -> bool: ...
    def ensure_vxlan(self, name: str, vni: int, *, local: str | None = None,
                     group: str | None = None, dev: str | None = None, port: int = 4789,
                     learning: bool = True, mtu: int | None = None,
                     master: str | None = None, up: bool | None = True) -> bool: ...
    def delete(self, name: str) -> bool: ...
    def set_up(self, name: str) -> bool: ...
    def set_down(self, name: str) -> bool: ...
    def set_mtu(self, name: str, mtu: int) -> bool: ...
    def set_mac(self, name: str, mac: str) -> bool: ...
    def set_master(self, name: str, master: str | None) -> bool: ...
    def move_to(self, name: str, target_netns: str | None) -> None: ...
    def addresses(self, name: str, link_local: bool = False) -> list[str]: ...
    def ensure_address(self, name: str, cidr: str) -> bool: ...
    def remove_address(self, name: str, cidr: str) -> bool: ...
    def sync_addresses(self, name: str, cidrs: Iterable[str]) -> tuple[list[str], list[str]]: ...
    def routes(self, table: int = 254, family: int | None = None) -> list[Route]: ...
    def ensure_route(self, dst: str, *, gateway: str | None = None, dev: str | None = None,
                     table: int = 254, metric: int | None = None) -> bool: ...
    def delete_route(self, dst: str, *, table: int = 254) -> bool: ...
    def sysctl(self, key: str) -> str: ...
    def set_sysctl(self, key: str, value: str | int) -> bool: ...


class NetHost(Protocol):
    async def ensure_netns(self, name: str) -> bool: ...
    async def delete_netns(self, name: str) -> bool: ...
    async def list_netns(self, prefix: str = "") -> list[str]: ...
    async def netlink(self, ns: str | None, fn: Callable[[NetlinkOps], T]) -> T: ...
    async def run(self, ns: str | None, argv: Sequence[str],
                  timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


class FirewallHost(Protocol):
    async def apply(self, ns: str | None, table: Table) -> None: ...
    async def delete_table(self, ns: str | None, family: str, name: str) -> bool: ...
    async def list_tables(self, ns: str | None) -> list[tuple[str, str]]: ...


class DhcpHost(Protocol):
    async def ensure(self, spec: DnsmasqSpec) -> str: ...
    async def reload(self, name: str) -> bool: ...
    async def stop(self, name: str) -> bool: ...
    async def names(self) -> list[str]: ...
    async def running(self) -> dict[str, int]: ...
    async def leases(self, name: str) -> list[Lease]: ...


class ImageHost(Protocol):
    async def create(self, path: Path, fmt: str, size: int) -> None: ...
    async def create_overlay(self, path: Path, backing: Path, backing_fmt: str, *,
                             size: int | None = None) -> None: ...
    async def convert(self, src: Path, src_fmt: str, dst: Path, dst_fmt: str, *,
                      compress: bool = False, force_share: bool = False) -> None: ...
    async def info(self, path: Path, fmt: str, *, force_share: bool = False) -> ImageInfo: ...
    async def resize(self, path: Path, fmt: str, size: int, *, shrink: bool = False) -> None: ...
    async def make_iso(self, path: Path, label: str, files: Mapping[str, bytes]) -> None: ...
    async def copy(self, src: Path, dst: Path) -> None: ...


class GuestControl(Protocol):
    """The QMP commands Compute uses (``onestack.host.qmp.QMP`` or the fake's)."""

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 60.0) -> Any: ...
    async def wait_event(self, name: str, timeout: float = 30.0,
                         **data: Any) -> dict[str, Any]: ...
    async def status(self) -> str: ...
    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def powerdown(self) -> None: ...
    async def reset(self) -> None: ...
    async def quit(self) -> None: ...
    async def free_ports(self) -> list[str]: ...
    async def add_nic(self, device_id: str, tap: str, mac: str, *, bus: str | None = None,
                      mtu: int | None = None, addr: str | None = None,
                      model: str = "virtio") -> str: ...
    async def remove_nic(self, device_id: str, timeout: float = 60.0) -> None: ...
    async def add_disk(self, device_id: str, path: Path, fmt: str, *, bus: str | None = None,
                       readonly: bool = False, serial: str | None = None,
                       addr: str | None = None) -> str: ...
    async def remove_disk(self, device_id: str, timeout: float = 60.0) -> None: ...
    async def save(self, path: Path, timeout: float = 600.0) -> None: ...


class GuestHost(Protocol):
    async def start(self, spec: GuestSpec) -> Guest: ...
    async def restore(self, spec: GuestSpec, state: Path, timeout: float = 600.0) -> Guest: ...
    async def get(self, name: str) -> Guest | None: ...
    async def names(self) -> list[str]: ...
    async def running(self) -> dict[str, int]: ...
    def qmp(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[GuestControl]:
        ...
    async def stop(self, name: str, graceful_timeout: float = 0.0) -> bool: ...
    async def remove(self, name: str) -> bool: ...
    async def console_output(self, name: str, max_bytes: int = 1 << 20) -> str: ...
    async def guest_agent(self, name: str, command: str, arguments: dict[str, Any] | None = None,
                          timeout: float = 5.0) -> Any: ...
    async def accelerator(self) -> str: ...


@dataclass
class Host:
    """Everything an agent may do to the machine."""

    net: NetHost
    firewall: FirewallHost
    dhcp: DhcpHost
    images: ImageHost
    guests: GuestHost


# --- the real implementation ---------------------------------------------------


class LinuxNet:
    async def ensure_netns(self, name: str) -> bool:
        from onestack.host import netns

        return await netns.acall(None, netns.ensure, name)

    async def delete_netns(self, name: str) -> bool:
        from onestack.host import netns

        return await netns.acall(None, netns.delete, name)

    async def list_netns(self, prefix: str = "") -> list[str]:
        from onestack.host import netns

        return await netns.acall(None, netns.names, prefix)

    async def netlink(self, ns: str | None, fn: Callable[[NetlinkOps], T]) -> T:
        from onestack.host import links, netns

        def work() -> T:
            with links.Netlink() as nl:
                return fn(nl)

        return await netns.acall(ns, work)

    async def run(self, ns: str | None, argv: Sequence[str],
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        from onestack.host import netns

        return await netns.acall(None, netns.run, ns, argv, timeout)


class LinuxFirewall:
    async def apply(self, ns: str | None, table: Table) -> None:
        from onestack.host import netns, nft

        await netns.acall(None, nft.apply, ns, table)

    async def delete_table(self, ns: str | None, family: str, name: str) -> bool:
        from onestack.host import netns, nft

        return await netns.acall(None, nft.delete_table, ns, family, name)

    async def list_tables(self, ns: str | None) -> list[tuple[str, str]]:
        from onestack.host import netns, nft

        return await netns.acall(None, nft.list_tables, ns)


class LinuxDhcp:
    def __init__(self, run_dir: Path) -> None:
        from onestack.host.dnsmasq import Dnsmasq

        self._d = Dnsmasq(run_dir)

    async def ensure(self, spec: DnsmasqSpec) -> str:
        import asyncio

        return await asyncio.to_thread(self._d.ensure, spec)

    async def reload(self, name: str) -> bool:
        return self._d.reload(name)

    async def stop(self, name: str) -> bool:
        import asyncio

        return await asyncio.to_thread(self._d.stop, name)

    async def names(self) -> list[str]:
        return self._d.names()

    async def running(self) -> dict[str, int]:
        import asyncio

        return await asyncio.to_thread(self._d.running)

    async def leases(self, name: str) -> list[Lease]:
        return self._d.leases(name)


class LinuxImages:
    async def create(self, path: Path, fmt: str, size: int) -> None:
        from onestack.host import qemu_img

        await qemu_img.create(path, fmt, size)

    async def create_overlay(self, path: Path, backing: Path, backing_fmt: str, *,
                             size: int | None = None) -> None:
        from onestack.host import qemu_img

        await qemu_img.create_overlay(path, backing, backing_fmt, size=size)

    async def convert(self, src: Path, src_fmt: str, dst: Path, dst_fmt: str, *,
                      compress: bool = False, force_share: bool = False) -> None:
        from onestack.host import qemu_img

        await qemu_img.convert(src, src_fmt, dst, dst_fmt, compress=compress,
                               force_share=force_share)

    async def info(self, path: Path, fmt: str, *, force_share: bool = False) -> ImageInfo:
        from onestack.host import qemu_img

        return await qemu_img.info(path, fmt, force_share=force_share)

    async def resize(self, path: Path, fmt: str, size: int, *, shrink: bool = False) -> None:
        from onestack.host import qemu_img

        await qemu_img.resize(path, fmt, size, shrink=shrink)

    async def copy(self, src: Path, dst: Path) -> None:
        """A byte copy of image file ``src`` (holes kept; a qcow2 overlay keeps
        its backing file), appearing under ``dst`` only when complete."""
        from onestack.host import qemu_img

        await qemu_img.copy(src, dst)

    async def make_iso(self, path: Path, label: str, files: Mapping[str, bytes]) -> None:
        """An ISO 9660 image (Rock Ridge, Joliet) labelled ``label`` of ``files``
        (relative path -> bytes), e.g. a config drive."""
        import asyncio

        from onestack.host import iso

        await asyncio.to_thread(iso.make, path, label, files)


class LinuxGuests:
    def __init__(self, run_dir: Path, accel: str | None = None) -> None:
        from onestack.host.qemu import Guests

        self._g = Guests(run_dir)
        self._accel = accel

    async def start(self, spec: GuestSpec) -> Guest:
        return await self._g.start(self._with_accel(spec))

    async def restore(self, spec: GuestSpec, state: Path, timeout: float = 600.0) -> Guest:
        return await self._g.restore(self._with_accel(spec), state, timeout)

    def _with_accel(self, spec: GuestSpec) -> GuestSpec:
        from dataclasses import replace

        return replace(spec, accel=spec.accel or self._accel)

    async def get(self, name: str) -> Guest | None:
        return self._g.get(name)

    async def names(self) -> list[str]:
        return self._g.names()

    async def running(self) -> dict[str, int]:
        import asyncio

        return await asyncio.to_thread(self._g.running)

    def qmp(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[GuestControl]:
        return self._g.qmp(name, timeout)

    async def stop(self, name: str, graceful_timeout: float = 0.0) -> bool:
        return await self._g.stop(name, graceful_timeout)

    async def remove(self, name: str) -> bool:
        return await self._g.remove(name)

    async def console_output(self, name: str, max_bytes: int = 1 << 20) -> str:
        return self._g.console_output(name, max_bytes)

    async def guest_agent(self, name: str, command: str, arguments: dict[str, Any] | None = None,
                          timeout: float = 5.0) -> Any:
        return await self._g.guest_agent(name, command, arguments, timeout)

    async def accelerator(self) -> str:
        import asyncio

        from onestack.host import kvm

        return await asyncio.to_thread(kvm.accelerator, self._accel)


def linux_host(run_dir: Path, accel: str | None = None) -> Host:
    """The real host; its daemons keep their files under ``run_dir``
    (``dnsmasq/``, ``qemu/``). ``accel`` forces a QEMU accelerator."""
    run_dir = Path(run_dir)
    return Host(net=LinuxNet(), firewall=LinuxFirewall(), dhcp=LinuxDhcp(run_dir / "dnsmasq"),
                images=LinuxImages(), guests=LinuxGuests(run_dir / "qemu", accel))
