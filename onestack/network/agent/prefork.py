"""The network agent's first process, forked from ``onestack up`` (not executed).

A second interpreter importing SQLAlchemy, the network service and the agent
by itself costs about 60 MiB. ``onestack up`` has imported most of that,
and built its mappers, by the time it is prepared (schema, bootstrap), so it
forks the agent's process there (:meth:`PreforkedAgent.fork`, from
``NetworkApp.pre_fork``, right after ``prepare()``): while the process has no
event loop and no other thread (else the agent is executed), its database
pool closed first. The pages both processes hold are then shared
copy-on-write until one of them writes to one (idle: 126-132 MiB PSS for the
whole tree instead of 140-142 with the agent executed; measured 2026-12-05).

The forked process waits for ``AgentProcess`` to start it: one
``SOCK_SEQPACKET`` message ``n <pickled Init>`` with the agent's end of its
link attached (``SCM_RIGHTS``), after which it runs ``run_agent_process`` as
the executed agent does and ends with ``os._exit``. It ends at once if that
link closes first (``onestack up`` stopped before it served).

* **It holds nothing of the API's**: every descriptor the API's process had
  at the fork but 0-2 (its listening sockets, its state lock) is replaced
  with ``/dev/null`` at once (not closed: an object still holding the number
  would otherwise close a descriptor opened later under it). It resets the
  signal handlers, re-seeds ``random``, builds its own cloud and database
  engine from its ``Init`` and turns the collector on again (what it inherited
  stays frozen: ``gc.freeze()`` before the fork, so that no collection writes
  to the shared objects' headers).
* **Dies with its parent** (``PR_SET_PDEATHSIG``, SIGTERM), in a session of
  its own (a Ctrl-C on ``onestack up`` reaches only the API's process, which
  stops the agent itself). Glibc's malloc stays held to one arena, as in the
  API's process (``startup.limit_malloc_arenas``, before the fork). Its
  command line reads ``onestack network-agent``.
* **Only the first start is forked.** When it dies, ``AgentProcess`` executes
  ``onestack network-agent`` as before: forking again later would be from a
  process with threads and a running loop (unsafe), and a *zygote* kept
  forked for restarts cost more than it saved (measured: 154-156 MiB PSS in
  all, forked at the same point, with or without pyroute2 and the handlers
  imported in it; 166 forked before ``prepare()``): it holds the original of
  every page that both the API and the agent have since written to, and
  CPython 3.11's reference counts and allocator write to most of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

Run = Callable[[int, Any, int], int]

log = logging.getLogger(__name__)

MAX_INIT = 1 << 20  # bytes of the start message (the pickled settings: a few KiB)
TITLE = "onestack network-agent"


def set_title(title: str) -> None:
    """The process's name in ``ps`` (its command line) and ``/proc/<pid>/comm``."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(title)


class ForkedAgent:
    """The forked agent, as much of ``asyncio.subprocess.Process`` as
    ``AgentProcess`` uses: ``pid``, ``returncode``, ``terminate``, ``kill``,
    ``wait``. Signalled through a pidfd (no reused pid is ever signalled)."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd

    def _signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _reap(self) -> bool:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, status = self.pid, -1
        if not pid:
            return False
        if status == -1:
            self.returncode = -1
        elif os.WIFSIGNALED(status):
            self.returncode = -os.WTERMSIG(status)
        else:
            self.returncode = os.WEXITSTATUS(status)
        os.close(self._pidfd)
        return True

    async def wait(self) -> int:
        while self.returncode is None:
            if self._reap():
                break
            ended = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(self._pidfd, ended.set)  # readable once it has ended
            try:
                await ended.wait()
            finally:
                loop.remove_reader(self._pidfd)
        assert self.returncode is not None
        return self.returncode


class PreforkedAgent:
    """The API's handle on the forked process until it is started."""

    def __init__(self, pid: int, pidfd: int, sock: socket.socket) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._sock: socket.socket | None = sock

    @classmethod
    def fork(cls, run: Run) -> PreforkedAgent | None:
        """Fork it from this process (see the module's doc); None if it cannot.
        Once started it returns ``run(link_fd, init, parent_pid)`` (the agent:
        ``network.app.run_agent_process``)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # the child's copy stays frozen; ours is thawed below
        try:
            pid = os.fork()
        except OSError as exc:
            gc.unfreeze()
            log.warning("network agent: cannot fork its process (it is executed): %s", exc)
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            code = 1
            try:
                ours.close()
                code = _child(theirs, parent, run)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # never back into the API's code
                with contextlib.suppress(BaseException):
                    log.exception("network agent failed")
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        gc.unfreeze()
        theirs.close()
        return cls(pid, os.pidfd_open(pid), ours)

    def start(self, init: bytes, link: socket.socket) -> ForkedAgent:
        """Run it: ``init`` (a pickled ``process.Init``), ``link`` its end of the
        agent's link (the caller closes its copy). OSError if it has gone."""
        sock, self._sock = self._sock, None
        if sock is None:
            raise OSError("the forked network agent was started already")
        try:
            socket.send_fds(sock, [b"n " + init], [link.fileno()])
        except OSError:
            os.close(self._pidfd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            raise
        finally:
            sock.close()
        return ForkedAgent(self.pid, self._pidfd)

    async def discard(self) -> None:
        """Never started: it ends when its link closes; reap it."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.close()
        agent = ForkedAgent(self.pid, self._pidfd)
        try:
            await asyncio.wait_for(agent.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                agent.kill()
            await agent.wait()


# --- the forked process's side ------------------------------------------------------------


def _hold_nothing_else(keep: int) -> None:
    """Every descriptor but 0-2 and ``keep`` becomes ``/dev/null``."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in (keep, null):
            with contextlib.suppress(OSError):
                os.dup2(null, fd, inheritable=False)
    os.close(null)


def _child(sock: socket.socket, parent: int, run: Run) -> int:
    import ctypes
    import pickle
    import random

    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    with contextlib.suppress(AttributeError):
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        return 0
    _hold_nothing_else(sock.fileno())
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    set_title(TITLE)
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_INIT, 1)
    sock.close()
    if not data.startswith(b"n ") or len(fds) != 1:
        return 0  # the link closed: onestack up stopped before starting it
    init = pickle.loads(data[2:])  # run() checks it is a process.Init
    random.seed()  # (os.fork re-seeds it too: never the API's sequence)
    gc.enable()
    return run(fds[0], init, parent)

