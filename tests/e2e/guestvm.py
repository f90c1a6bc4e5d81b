"""The test guest under ``onestack.host.qemu``, driven synchronously (tests, bench).

A thin harness over the real driver: the guest is started and stopped by
:class:`onestack.host.qemu.Guests` exactly as Compute will, and this adds what
a test wants — waiting for a pattern on the serial console (read from the
guest's ``console.log``, with the time each piece arrived), QMP commands one
at a time, and QEMU's CPU time (under TCG a measure of the guest's work that
depends less on how busy the host is).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onestack.host import qemu
from onestack.host.qemu import Disk, GuestSpec, Nic

__all__ = ["GuestVM", "Nic", "Disk"]


class GuestVM:
    def __init__(self, disk: Path, workdir: Path, *, nics: Sequence[Nic] = (),
                 config_drive: Path | None = None, memory_mb: int = 256, cpus: int = 1,
                 accel: str | None = None, netns: str | None = None, name: str = "guest",
                 hotplug_slots: int = 4, extra_disks: Sequence[Disk] = ()) -> None:
        disks = [Disk(str(disk), "qcow2", "root", cache="unsafe"), *extra_disks]
        if config_drive is not None:
            # a read-only virtio disk: the image looks for config-2 before it
            # loads ahci (see onestack/host/qemu.py)
            disks.append(Disk(str(config_drive), "raw", "config", readonly=True,
                              cache="writeback"))
        self.spec = GuestSpec(name=name, memory_mb=memory_mb, cpus=cpus, disks=tuple(disks),
                              nics=tuple(nics), netns=netns, accel=accel,
                              hotplug_slots=hotplug_slots)
        self.guests = qemu.Guests(workdir / "qemu")
        self.name = name
        self.pid: int | None = None
        self.accel = ""
        self.started = 0.0
        self._buf = bytearray()
        self._offset = 0
        # (buffer length, arrival time, qemu's CPU seconds then)
        self._times: list[tuple[int, float, float]] = []

    def start(self) -> GuestVM:
        self._buf.clear()
        self._times.clear()
        try:  # the console log is appended to: read only what this start prints
            self._offset = (self.guests.directory(self.name) / "console.log").stat().st_size
        except FileNotFoundError:
            self._offset = 0
        self.started = time.monotonic()
        guest = asyncio.run(self.guests.start(self.spec))
        self.pid, self.accel = guest.pid, guest.accel
        return self

    def _poll(self) -> None:
        path = self.guests.directory(self.name) / "console.log"
        try:
            with path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        if chunk:
            self._offset += len(chunk)
            self._buf += chunk
            self._times.append((len(self._buf), time.monotonic(), self.cpu_seconds()))

    @property
    def output(self) -> str:
        self._poll()
        return self._buf.decode(errors="replace")

    def alive(self) -> bool:
        return self.guests.get(self.name) is not None

    def cpu_seconds(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _time_of(self, offset: int) -> tuple[float, float]:
        for length, t, cpu in self._times:
            if length >= offset:
                return t, cpu
        return time.monotonic(), self.cpu_seconds()

    def cpu_at(self, pattern: str) -> float | None:
        """qemu's CPU seconds when ``pattern`` first appeared, or None."""
        m = re.search(pattern, self.output, re.M)
        if not m:
            return None
        return self._time_of(len(self.output[: m.end()].encode()))[1]

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> tuple[re.Match[str], float]:
        """Waits for ``pattern`` on the console (from byte ``since``); returns the
        match and the seconds from start() to its arrival."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            self._poll()
            text = self._buf[since:].decode(errors="replace")
            m = rx.search(text)
            if m:
                end = since + len(text[: m.end()].encode())
                return m, self._time_of(end)[0] - self.started
            if not self.alive():
                self._poll()
                raise RuntimeError(f"qemu exited:\n{self.output[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} on the console after {timeout}s:\n"
                                   f"{text[-3000:]}")
            time.sleep(0.02)

    def mark(self) -> int:
        self._poll()
        return len(self._buf)

    def qmp(self, command: str, **arguments: Any) -> Any:
        async def go() -> Any:
            async with self.guests.qmp(self.name) as q:
                return await q.execute(command, arguments or None)

        return asyncio.run(go())

    def control(self, fn: Any) -> Any:
        """Runs ``await fn(qmp)`` (the driver's QMP client) and returns its result."""
        async def go() -> Any:
            async with self.guests.qmp(self.name) as q:
                return await fn(q)

        return asyncio.run(go())

    def wait_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest still runs after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        self._poll()
        asyncio.run(self.guests.stop(self.name))

    def __enter__(self) -> GuestVM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
