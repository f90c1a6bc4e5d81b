"""Process hygiene for the daemons we start (dnsmasq, QEMU): find, check, end.

Each daemon gets a unique *marker* on its command line (a path under our run
directory), writes a pid file, and outlives us. A pid file alone is not proof
(pids are reused), so a process is ours only while its ``/proc/<pid>/cmdline``
still carries the marker; :func:`find` scans for markers, which is how a
reconciler lists what exists, pid files lost or not.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def cmdline(pid: int) -> list[str] | None:
    """The argv of process ``pid``, or None if it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:  # a zombie or a kernel thread
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def carries(pid: int, marker: str) -> bool:
    """Process ``pid`` is alive and ``marker`` is in one of its arguments."""
    argv = cmdline(pid)
    return argv is not None and any(marker in arg for arg in argv)


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def running(pidfile: Path, marker: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and carries ``marker``."""
    pid = read_pidfile(pidfile)
    if pid is not None and carries(pid, marker):
        return pid
    return None


def find(marker: str) -> list[int]:
    """Every live process with ``marker`` in its command line."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and carries(int(entry), marker):
            found.append(int(entry))
    return sorted(found)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def gone(pid: int) -> bool:
    _reap(pid)
    return cmdline(pid) is None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, marker: str, timeout: float = 5.0) -> bool:
    """Ends process ``pid`` if it still carries ``marker``: SIGTERM, then
    SIGKILL after ``timeout``. True if it was running."""
    if not carries(pid, marker):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, timeout)
    return True
