"""Network namespaces: create, delete, list, and run code or processes inside one.

Named namespaces are bind mounts under ``/run/netns``, as ``ip netns`` makes
them, so ``ip netns exec`` and every other tool sees ours. Work inside a
namespace runs in a short-lived thread that has entered it with setns(2): Linux
keeps the network namespace per thread, so the rest of the process stays where
it was, while the netlink sockets, ``/dev/net/tun`` handles and
``/proc/sys/net`` files that thread opens belong to the namespace, and a
process that thread starts is born inside it. There is no fork of this
(threaded) process and no ``ip netns exec``. A namespace is created the same
way: a thread unshares its network namespace and bind-mounts it.

Everything is idempotent: :func:`ensure` on an existing namespace and
:func:`delete` on a missing one are no-ops that say so, which is what a
reconciler needs.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from onestack.host.errors import HostError, NotFound

T = TypeVar("T")

RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
# A namespace name is a file name under /run/netns; keep to what `ip netns` accepts.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

_libc: ctypes.CDLL | None = None
_create_lock = threading.Lock()


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise HostError(f"invalid network namespace name {name!r}")
    return name


def path_of(name: str) -> Path:
    return RUN_DIR / check_name(name)


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def exists(name: str) -> bool:
    """A namespace of that name is mounted (not merely a stale file left by a crash)."""
    try:
        return os.stat(path_of(name)).st_dev == _nsfs_dev()
    except FileNotFoundError:
        return False


def names(prefix: str = "") -> list[str]:
    """The named namespaces whose names start with ``prefix``, sorted."""
    try:
        entries = os.listdir(RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if n.startswith(prefix) and exists(n))


# --- running code inside a namespace ----------------------------------------


def _enter(name: str | None) -> None:
    """Moves the calling thread into namespace ``name`` (None: this process's own)."""
    target = f"/proc/{os.getpid()}/ns/net" if name is None else str(path_of(name))
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {name!r} does not exist") from None
    try:
        _check(_c().setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)


def _in_thread(name: str | None, fn: Callable[..., T], args: Sequence[Any],
               kwargs: dict[str, Any], done: Callable[[T | None, BaseException | None], None]
               ) -> threading.Thread:
    def run() -> None:
        try:
            _enter(name)
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            done(None, exc)
        else:
            done(result, None)

    thread = threading.Thread(target=run, name=f"netns:{name}", daemon=True)
    thread.start()
    return thread


def call(name: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs ``fn(*args, **kwargs)`` inside namespace ``name`` and returns its result.

    ``name=None`` runs it in this process's own namespace (in the calling thread).
    Blocks; from the event loop use :func:`acall`."""
    if name is None:
        return fn(*args, **kwargs)
    box: list[Any] = []

    def done(result: T | None, exc: BaseException | None) -> None:
        box.append((result, exc))

    _in_thread(name, fn, args, kwargs, done).join()
    result, exc = box[0]
    if exc is not None:
        raise exc
    return result  # type: ignore[no-any-return]


async def acall(name: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`call` for the event loop: the work runs in a thread of its own."""
    if name is None:
        return await asyncio.to_thread(fn, *args, **kwargs)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def done(result: T | None, exc: BaseException | None) -> None:
        loop.call_soon_threadsafe(settle, result, exc)

    _in_thread(name, fn, args, kwargs, done)
    return await future


def popen(name: str | None, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Starts a process inside namespace ``name`` (``subprocess.Popen`` arguments)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("close_fds", True)
    return call(name, subprocess.Popen, list(argv), **kwargs)


def run(name: str | None, argv: Sequence[str], timeout: float = 60,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a command inside namespace ``name`` to its end, output captured as text."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return call(name, subprocess.run, list(argv), capture_output=True, text=True,
                timeout=timeout, **kwargs)


# --- sysctls (per namespace: call these inside one) --------------------------


def _sysctl_path(key: str) -> Path:
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net" or any(p in ("", ".", "..") for p in parts):
        raise HostError(f"not a per-namespace sysctl: {key!r} (net.* only; write "
                        "interface keys with '/', e.g. net/ipv6/conf/br0/accept_ra)")
    return Path("/proc/sys", *parts)


def read_sysctl(key: str) -> str:
    """The value of sysctl ``key`` in the calling thread's namespace."""
    try:
        return _sysctl_path(key).read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"no sysctl {key}") from None


def write_sysctl(key: str, value: str | int) -> bool:
    """Sets sysctl ``key`` in the calling thread's namespace; True if it changed."""
    if read_sysctl(key) == str(value):
        return False
    _sysctl_path(key).write_text(f"{value}\n")
    return True


# --- create / delete ---------------------------------------------------------


def _prepare_run_dir() -> None:
    """Makes /run/netns a shared mount point, as iproute2 does, so that a
    namespace bound here is seen from every mount namespace."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    libc = _c()
    target = str(RUN_DIR).encode()
    if libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "make /run/netns shared")
    # not a mount point yet: bind it onto itself, then share it
    _check(libc.mount(target, target, b"none", MS_BIND | MS_REC, None), "bind /run/netns")
    _check(libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None),
           "make /run/netns shared")


def _create_here(path: str) -> None:
    # runs in a thread of its own: unshare moves only that thread
    _check(_c().unshare(CLONE_NEWNET), "unshare")
    own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    _check(_c().mount(own.encode(), path.encode(), b"none", MS_BIND, None),
           f"bind {path}")
    # loopback up: nothing works inside without it
    _loopback_up()


def _loopback_up() -> None:
    # Two ioctls on a socket made in this thread (so in the new namespace);
    # netlink (links.py) would cost importing pyroute2 and a cycle back here.
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def ensure(name: str) -> bool:
    """Creates namespace ``name`` (with ``lo`` up) unless it exists; True if created."""
    path = path_of(name)
    with _create_lock:
        if exists(name):
            return False
        _prepare_run_dir()
        if path.exists():  # a stale file left by a crash: not mounted
            _c().umount2(str(path).encode(), MNT_DETACH)
            path.unlink(missing_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
        box: list[BaseException | None] = []
        thread = threading.Thread(target=lambda: box.append(_guard(_create_here, str(path))),
                                  name=f"netns-create:{name}", daemon=True)
        thread.start()
        thread.join()
        if box[0] is not None:
            _c().umount2(str(path).encode(), MNT_DETACH)
            path.unlink(missing_ok=True)
            raise HostError(f"creating network namespace {name}: {box[0]}") from box[0]
        return True


def _guard(fn: Callable[..., None], *args: Any) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    return None


def pids(name: str) -> list[int]:
    """The processes living in namespace ``name``."""
    try:
        st = os.stat(path_of(name))
    except FileNotFoundError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == (st.st_dev, st.st_ino):
            found.append(int(entry))
    return sorted(found)


def kill_all(name: str, timeout: float = 5.0) -> list[int]:
    """Ends every process in namespace ``name`` (TERM, then KILL after ``timeout``)."""
    victims = pids(name)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pids(name):
        time.sleep(0.02)
    for pid in pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pids(name):
        time.sleep(0.02)
    return victims


def delete(name: str, kill: bool = True) -> bool:
    """Removes namespace ``name``; True if it existed.

    A namespace lives on while a process is inside it, with its links and
    addresses: ``kill`` (the default) first ends those processes, so that
    nothing is left behind."""
    path = path_of(name)
    if not path.exists():
        return False
    if kill and exists(name):
        kill_all(name)
    rc = _c().umount2(str(path).encode(), MNT_DETACH)
    if rc != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(rc, f"umount {path}")
    path.unlink(missing_ok=True)
    return True
