"""What ``onestack up`` checks and takes before it creates anything.

* ``listen_socket``: the port is a port, and it is bound now, by us, before the state
  directory is touched; uvicorn serves on this very socket (no window in which another
  process could take the port between the check and the serving).
* ``StateLock``: one process at a time per state directory. An ``fcntl`` lock on
  ``<state-dir>/onestack.lock``, held for the life of the process and released by the
  kernel when it ends (however it ends); the file names the holder's pid. A second
  ``onestack up`` on the same directory would rewrite ``clouds.yaml`` and the catalog
  under the first one. (Several API processes on one PostgreSQL database each have a
  state directory of their own.)

Each failure is a ``StartError`` whose message is one line for the user.
Standard library only: this runs before the cloud is imported.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = "onestack.lock"


class StartError(Exception):
    """`onestack up` cannot start; the message says why, in one line."""


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise StartError(f"port {port} is not a TCP port number (1-65535)")
    return port


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening: uvicorn does that)."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no TIME_WAIT wait
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"{where} is already in use (another onestack or another program); "
                             "choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise StartError(f"no permission to listen on {where} (ports below 1024 need root)") from None
        raise StartError(f"cannot listen on {where}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


def secure_state_dir(path: Path) -> None:
    """Create the state directory private to its owner (0700).

    It holds the token keys, password hashes and images: nobody else on the
    host may read it. An existing directory we own is tightened too, and the
    process umask makes every file created under it private.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.umask(0o077)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        path.chmod(0o700)


class StateLock:
    """The exclusive lock of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid of a live process holding the lock, or None; creates nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _pid_in(fd) or -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def acquire(self) -> None:
        """Take the lock (the directory must exist); StartError if another process has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            os.close(fd)
            raise StartError(self.message(pid)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def message(self, pid: int | None) -> str:
        who = f"process {pid}" if pid and pid > 0 else "another process"
        return (f"the state directory {self.path.parent} is in use by {who} (another onestack up); "
                "stop it first, or give this one its own --state-dir")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the kernel drops the lock with the last descriptor
            self._fd = None


def _pid_in(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def limit_malloc_arenas(count: int = 1) -> None:
    """Hold glibc's malloc to ``count`` arenas (``mallopt(M_ARENA_MAX)``), unless
    ``MALLOC_ARENA_MAX`` in the environment says otherwise; call it before any
    thread starts. Each thread that allocates (the loop's executor, SQLite
    working without the GIL) otherwise gets an arena of its own, kept
    afterwards: the idle cloud's API process held 4 MiB more (PSS 66 -> 62 MiB,
    measured 2026-12-05). Its threads take turns on the interpreter anyway."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass
