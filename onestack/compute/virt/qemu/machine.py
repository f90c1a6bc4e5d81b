"""The instances on this host: their files, records, locks, and QEMU started or stopped.

What every driver call builds on. One call at a time works on an instance (a
lock per instance: the compute agent runs one task per server, but a console
or power-state query may come meanwhile); QMP sessions are short, since
QEMU's monitor serves one client at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from onestack.compute.virt.base import (
    InstanceNotFound,
    InstanceSpec,
    InvalidInstanceState,
    VirtError,
)
from onestack.compute.virt.qemu import domain, layout, taps
from onestack.compute.virt.qemu.imagecache import ImageCache
from onestack.compute.virt.qemu.layout import InstanceFiles, Record
from onestack.host.base import GuestControl, Host
from onestack.host.errors import HostError
from onestack.host.qemu import Guest

# Seconds between presses of the ACPI power button while a guest does not shut down
POWER_BUTTON_RETRY = 3.0
# QEMU run states (query-status) a guest counts as paused in
PAUSED_STATES = ("paused", "suspended", "inmigrate", "postmigrate", "prelaunch",
                 "restore-vm", "finish-migrate", "save-vm", "debug", "watchdog", "colo")


@dataclass
class Instances:
    host: Host
    directory: Path  # <instances_dir>
    cache: ImageCache
    opts: domain.Options
    # the accelerator probe, when it still runs (init_host does not wait for it)
    accel: asyncio.Task[str] | None = None

    def __post_init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._qmp_locks: dict[str, asyncio.Lock] = {}

    async def options(self) -> domain.Options:
        """The per-host options, the accelerator known (waits for the probe once)."""
        if self.accel is not None:
            self.opts = replace(self.opts, accel=await self.accel)
            self.accel = None
        return self.opts

    def files(self, uuid: str) -> InstanceFiles:
        if not layout.is_instance_name(uuid):
            raise InstanceNotFound(f"Instance {uuid} could not be found.")
        return InstanceFiles(self.directory / uuid)

    def lock(self, uuid: str) -> asyncio.Lock:
        return self._locks.setdefault(uuid, asyncio.Lock())

    # --- the record ----------------------------------------------------------------

    async def record(self, uuid: str) -> Record | None:
        return await asyncio.to_thread(layout.read_record, self.files(uuid))

    async def need(self, uuid: str) -> Record:
        record = await self.record(uuid)
        if record is None:
            raise InstanceNotFound(f"Instance {uuid} could not be found.")
        return record

    async def save(self, record: Record) -> None:
        await asyncio.to_thread(layout.write_record, self.files(record.uuid), record)

    async def new_record(self, spec: InstanceSpec, *, rescue: Path | None = None) -> Record:
        files = self.files(spec.uuid)
        guest = domain.build(spec, files, await self.options(), rescue=rescue is not None)
        return Record(uuid=spec.uuid, spec_digest=layout.spec_digest(spec), guest=guest,
                      vifs=list(spec.vifs), bases=domain.bases(spec, rescue),
                      vif_model=domain.vif_model(spec), rescued=rescue is not None)

    # --- the process -----------------------------------------------------------------

    async def running(self, uuid: str) -> Guest | None:
        try:
            return await self.host.guests.get(uuid)
        except HostError:  # runs, but its files are damaged: treat as running, spec unknown
            return None

    @contextlib.asynccontextmanager
    async def qmp(self, uuid: str) -> AsyncIterator[GuestControl]:
        """A QMP session with the instance's QEMU (one at a time per instance).
        Failing to connect is ``InvalidInstanceState`` when no QEMU runs, else
        a ``VirtError``; what the body raises passes through as it is."""
        lock = self._qmp_locks.setdefault(uuid, asyncio.Lock())
        async with lock, contextlib.AsyncExitStack() as stack:
            try:
                q = await stack.enter_async_context(self.host.guests.qmp(uuid))
            except HostError as exc:
                if await self.running(uuid) is None:
                    raise InvalidInstanceState(f"Instance {uuid} is not running.") from exc
                raise VirtError(f"The QEMU of instance {uuid} does not answer: {exc}") from exc
            yield q

    async def status(self, uuid: str) -> str | None:
        """QEMU's run state, or None when no QEMU runs for the instance."""
        if await self.running(uuid) is None:
            return None
        try:
            async with self.qmp(uuid) as q:
                return await q.status()
        except InvalidInstanceState:
            return None

    async def start(self, record: Record, *, spawning: bool = False) -> Record:
        """Plugs the taps and starts QEMU for ``record.guest`` (which must not
        run); the record is saved first, so a crash leaves nothing unknown
        (``spawning``: spawn saved it and plugged the taps already)."""
        record = replace(record, suspended=False)
        if not spawning:
            await self.save(record)
        try:
            if not spawning:
                await taps.plug(self.host, record.vifs)
            await self.host.guests.start(record.guest)
        except HostError as exc:
            await self.stop(record, 0)
            raise VirtError(f"Starting the instance failed: {exc}") from exc
        except BaseException:
            await self.stop(record, 0)
            raise
        if record.building:
            record = replace(record, building=False)
            await self.save(record)
        return record

    async def restore(self, record: Record) -> Record:
        """Starts QEMU from the memory ``suspend`` saved (the record's machine,
        slots and all), then forgets the saved state."""
        files = self.files(record.uuid)
        await taps.plug(self.host, record.vifs)
        try:
            await self.host.guests.restore(record.guest, files.state)
        except HostError as exc:
            await self.stop(record, 0)
            raise VirtError(f"Resuming the instance failed: {exc}") from exc
        record = replace(record, suspended=False)
        await self.save(record)
        await asyncio.to_thread(files.state.unlink, True)
        return record

    async def shut_down(self, uuid: str, timeout: float) -> bool:
        """Presses the ACPI power button, again every ``POWER_BUTTON_RETRY``
        seconds (a guest still booting has nothing listening to it yet: Nova
        re-sends its shutdown every 10 s), until the guest has gone or
        ``timeout`` seconds passed; True if it went."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                async with self.qmp(uuid) as q:
                    await q.powerdown()
            except InvalidInstanceState:
                return True  # gone meanwhile
            except HostError:
                pass  # QEMU exiting: it cannot take the command any more
            if await self.wait_gone(uuid, min(POWER_BUTTON_RETRY, left)):
                return True
        return await self.running(uuid) is None

    async def stop(self, record: Record, graceful: float) -> bool:
        """Stops QEMU (with ``graceful`` > 0 the ACPI power button first,
        waiting that long for the guest to shut down) and removes the taps;
        True if it ran."""
        running = await self.running(record.uuid) is not None
        if running and graceful > 0:
            await self.shut_down(record.uuid, graceful)
        try:
            was = await self.host.guests.stop(record.uuid) or running
        except HostError as exc:
            raise VirtError(f"Stopping the instance failed: {exc}") from exc
        await taps.unplug_guest(self.host, record.guest)
        return was

    async def wait_gone(self, uuid: str, timeout: float) -> bool:
        """Waits for the guest to end by itself; True if it did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.running(uuid) is not None:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    # --- removal ---------------------------------------------------------------------

    async def remove(self, uuid: str) -> None:
        """Everything of the instance goes: process, taps, disks, files, console log."""
        files = self.files(uuid)
        record = await self.record(uuid)
        guest = await self.running(uuid)
        await self.host.guests.remove(uuid)
        for spec in {g for g in (record.guest if record else None,
                                 guest.spec if guest else None,
                                 record.resize_guest if record else None) if g}:
            await taps.unplug_guest(self.host, spec)
        await asyncio.to_thread(shutil.rmtree, files.directory, True)
        if record is not None:
            await asyncio.to_thread(self.cache.touch, record.all_bases())

    async def in_use(self) -> set[str]:
        """The cached images any instance here uses."""
        used: set[str] = set()
        for name in await asyncio.to_thread(self.names):
            record = await self.record(name)
            if record is not None:
                used |= record.all_bases()
        return used

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_dir() and layout.is_instance_name(p.name))
