"""QEMU guests as processes that outlive us: start, adopt, stop, list.

Each guest has a directory ``<run_dir>/<name>/``: its spec (``spec.json``), pid
file, QMP socket, serial console socket and console log. QEMU starts with
``-daemonize`` from a thread inside the guest's network namespace (where its
taps are): the command returns once the machine is built (non-zero with the
reason if it could not be), and the guest then lives in a session of its own,
so a restart of onestack leaves it running; :meth:`Guests.get` adopts it again
(pid file, checked against ``/proc/<pid>/cmdline``, which carries the QMP
socket's path as a unique mark) and :meth:`Guests.running` finds every guest
started from this run directory, pid files or not.

What the machine is made of and its command line are in
``onestack.host.qemu_spec`` (the fast q35 machine, deterministic device
placement for hot-plug and restore).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.host import kvm, netns, procs
from onestack.host.errors import CommandError, HostError, NotFound
from onestack.host.qemu_spec import (
    MACHINE_Q35,
    NAME_RE,
    Disk,
    GuestSpec,
    Nic,
    command,
    validate,
)
from onestack.host.qmp import QMP, connect

__all__ = ["MACHINE_Q35", "Disk", "Guest", "GuestSpec", "Guests", "Nic", "command", "validate"]

SOCKET_PATH_MAX = 107
# The console log is appended to across starts; at a start, a log over
# CONSOLE_LOG_MAX keeps its last CONSOLE_LOG_KEEP bytes (virtlogd rolls at 2 MB).
CONSOLE_LOG_MAX = 2 << 20
CONSOLE_LOG_KEEP = 1 << 20
RUNTIME_FILES = ("pid", "qmp.sock", "serial.sock", "vnc.sock", "qga.sock")


@dataclass(frozen=True)
class Guest:
    name: str
    pid: int
    directory: Path
    spec: GuestSpec
    accel: str

    @property
    def qmp_path(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def serial_path(self) -> Path:
        return self.directory / "serial.sock"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def qga_path(self) -> Path:
        """The guest agent's channel (when the spec asked for ``guest_agent``)."""
        return self.directory / "qga.sock"

    @property
    def vnc_path(self) -> Path:
        """The VNC server's socket (when the spec asked for ``vnc``)."""
        return self.directory / "vnc.sock"


class Guests:
    """The QEMU guests under one run directory."""

    def __init__(self, run_dir: Path, binary: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.binary = binary

    def directory(self, name: str) -> Path:
        if not NAME_RE.fullmatch(name):
            raise HostError(f"invalid guest name {name!r}")
        return self.run_dir / name

    def _marker(self, name: str) -> str:
        return str(self.directory(name) / "qmp.sock")

    def get(self, name: str) -> Guest | None:
        """The running guest ``name`` (adopted from its pid file), or None."""
        d = self.directory(name)
        pid = procs.running(d / "pid", self._marker(name))
        if pid is None:
            return None
        try:
            spec = GuestSpec.from_json((d / "spec.json").read_text())
            accel = (d / "accel").read_text().strip()
        except (FileNotFoundError, ValueError, TypeError):
            raise HostError(f"guest {name} runs but its spec.json is missing or bad") from None
        return Guest(name, pid, d, spec, accel)

    def names(self) -> list[str]:
        """Guests that have a directory here (running or not)."""
        if not self.run_dir.is_dir():
            return []
        return sorted(p.name for p in self.run_dir.iterdir()
                      if p.is_dir() and (p / "spec.json").exists())

    def running(self) -> dict[str, int]:
        """Every live QEMU started from this run directory, by guest name,
        including ones whose directory is gone."""
        found: dict[str, int] = {}
        prefix = f"socket,id=qmp,path={self.run_dir}/"
        for pid in procs.find(prefix):
            for arg in procs.cmdline(pid) or []:
                if arg.startswith(prefix):
                    found[arg[len(prefix):].split("/", 1)[0]] = pid
        return found

    def _prepare(self, spec: GuestSpec) -> tuple[Path, str]:
        validate(spec)
        d = self.directory(spec.name)
        if len(str(d / "serial.sock")) > SOCKET_PATH_MAX:
            raise HostError(f"run directory path too long for a socket: {d}")
        if procs.find(self._marker(spec.name)):  # pid file or not
            raise HostError(f"guest {spec.name} is already running")
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        for stale in RUNTIME_FILES:
            (d / stale).unlink(missing_ok=True)
        trim_log(d / "console.log")
        accel = kvm.accelerator(spec.accel)
        (d / "spec.json").write_text(spec.to_json())
        (d / "accel").write_text(accel + "\n")
        return d, accel

    def _launch(self, spec: GuestSpec) -> Guest:
        d, accel = self._prepare(spec)
        binary = self.binary or kvm.qemu_binary()
        if binary is None:
            raise HostError("qemu-system-x86_64 is not installed (Debian package "
                            "qemu-system-x86)")
        argv = command(spec, d, accel, binary)
        proc = netns.popen(spec.netns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise HostError(f"QEMU for {spec.name} did not start within 120 s") from None
        if proc.returncode != 0:
            self._cleanup_runtime(d)
            raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
        guest = self.get(spec.name)
        if guest is None:
            raise HostError(f"QEMU for {spec.name} exited after it started: "
                            f"{self.log_tail(spec.name)}")
        return guest

    def log_tail(self, name: str, max_bytes: int = 2000) -> str:
        """The end of QEMU's own messages for guest ``name``."""
        try:
            return (self.directory(name) / "qemu.log").read_text(errors="replace")[-max_bytes:]
        except FileNotFoundError:
            return ""

    async def start(self, spec: GuestSpec) -> Guest:
        """Starts the guest; returns once QEMU has built the machine (the guest
        runs, or waits for its saved state when ``spec.incoming`` is set)."""
        return await asyncio.to_thread(self._launch, spec)

    async def restore(self, spec: GuestSpec, state: Path, timeout: float = 600.0) -> Guest:
        """Starts the guest from a state :meth:`QMP.save` wrote and resumes it;
        the state file is removed once it is loaded.

        ``spec`` must describe the machine as it was when it was saved,
        hot-plugged devices included: a device that went onto the first free
        root port sits exactly where listing it after the others in the spec
        puts it (with one hot-plug slot fewer), so the PCI layout matches."""
        from dataclasses import replace

        guest = await self.start(replace(spec, incoming=str(state)))
        try:
            async with self.qmp(guest.name) as q:
                deadline = time.monotonic() + timeout
                while (status := await q.status()) in ("inmigrate", "restore-vm"):
                    if time.monotonic() > deadline:
                        raise HostError(f"restoring {spec.name} took over {timeout:g} s")
                    await asyncio.sleep(0.05)
                if status == "paused":
                    await q.resume()
        except (OSError, HostError) as exc:
            await asyncio.sleep(0.2)  # let QEMU finish writing why
            raise HostError(f"restoring {spec.name} failed: {exc}: "
                            f"{self.log_tail(spec.name)}") from exc
        state.unlink(missing_ok=True)
        return guest

    @asynccontextmanager
    async def qmp(self, name: str, timeout: float = 10.0) -> AsyncIterator[QMP]:
        guest = self.get(name)
        if guest is None:
            raise NotFound(f"guest {name} is not running")
        async with connect(guest.qmp_path, timeout) as client:
            yield client

    async def guest_agent(self, name: str, command: str, arguments: dict[str, Any] | None = None,
                          timeout: float = 5.0) -> Any:
        """One command of the guest agent of guest ``name`` (``onestack.host.qga``)."""
        from onestack.host import qga

        guest = self.get(name)
        if guest is None:
            raise NotFound(f"guest {name} is not running")
        if not guest.spec.guest_agent:
            raise HostError(f"guest {name} has no guest agent channel")
        return await qga.execute(guest.qga_path, command, arguments, timeout)

    async def stop(self, name: str, graceful_timeout: float = 0.0) -> bool:
        """Ends guest ``name``: with ``graceful_timeout`` > 0 the ACPI power
        button first, waiting that long for the guest to power off; then QMP
        ``quit``, SIGTERM, SIGKILL. Runtime files go; the directory (spec,
        console log) stays. True if it was running."""
        marker = self._marker(name)
        pids = procs.find(marker)
        if not pids:
            self._cleanup_runtime(self.directory(name))
            return False
        if graceful_timeout > 0:
            try:
                async with self.qmp(name) as q:
                    await q.powerdown()
            except HostError:
                pass
            await _wait_all_gone(pids, graceful_timeout)
        if any(not procs.gone(p) for p in pids):
            try:
                async with self.qmp(name, timeout=2) as q:
                    await q.quit()
            except (TimeoutError, HostError, OSError):
                pass
            await _wait_all_gone(pids, 5)
        for pid in pids:
            await asyncio.to_thread(procs.terminate, pid, marker)
        self._cleanup_runtime(self.directory(name))
        return True

    async def remove(self, name: str) -> bool:
        """Stops the guest and removes its directory; True if there was anything."""
        was = await self.stop(name)
        d = self.directory(name)
        existed = d.exists()
        shutil.rmtree(d, ignore_errors=True)
        return was or existed

    def console_output(self, name: str, max_bytes: int = 1 << 20) -> str:
        """The end of what the guest printed on its serial console."""
        path = self.directory(name) / "console.log"
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(size - max_bytes, 0))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def _cleanup_runtime(d: Path) -> None:
        for name in RUNTIME_FILES:
            (d / name).unlink(missing_ok=True)


def trim_log(path: Path, limit: int = CONSOLE_LOG_MAX, keep: int = CONSOLE_LOG_KEEP) -> bool:
    """Cuts a log over ``limit`` bytes to its last ``keep``; True if it did."""
    try:
        if path.stat().st_size <= limit:
            return False
        with path.open("rb") as f:
            f.seek(-keep, 2)
            tail = f.read()
    except FileNotFoundError:
        return False
    tmp = path.with_name(path.name + ".trim")
    tmp.write_bytes(tail)
    tmp.replace(path)
    return True


async def _wait_all_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(not procs.gone(p) for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def guest_env() -> dict[str, Any]:
    """What this host offers guests (for an agent's report)."""
    usable, why = kvm.kvm_usable()
    return {"accelerator": kvm.accelerator(), "kvm": usable, "kvm_reason": why,
            "qemu": kvm.qemu_binary()}
