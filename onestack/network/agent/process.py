"""The network agent in a process of its own, beside the API's (the all-in-one cloud).

``onestack up`` with the data plane on (and ``[network] agent_process``, the
default) keeps only the writes and their tasks: the handlers (``runner.py``),
the link watch that makes ports ``ACTIVE`` and the metadata proxy run in a
child, ``onestack network-agent``, with an interpreter (and a CPU) of its own.

* **Started, stopped, restarted by the API's process** (:class:`AgentProcess`,
  from ``NetworkApp.start`` / ``stop``): SIGTERM at stop (SIGKILL after
  ``STOP_SECONDS``); if it dies it is started again (after 1 s, doubling to
  30 s while it keeps dying). It dies with the API's process: the kernel sends it
  SIGTERM when its parent ends (``PR_SET_PDEATHSIG``), and it stops when its end
  of the link below closes.
* **Its own database connections.** It registers as a cloud process (its task
  leases are its own: a killed agent's tasks run again as soon as the next one
  starts), claims the network kinds' tasks and runs them as the in-process
  agent does, reconciling the data plane at its start. Its writes are few and
  short (a claim, an outcome, ports' statuses, a DHCP port).
* **One local link**, a ``SOCK_SEQPACKET`` socket pair, one message per
  datagram, never waited on (a full link drops the message; each side polls
  anyway):

  ===========================  ===========  =========================================
  message                      direction    what
  ===========================  ===========  =========================================
  ``w <kind> <delay>``         API → agent  a task of ``kind`` enqueued (due in
                                            ``delay`` s): wake a worker (SQLite has
                                            no NOTIFY; PostgreSQL's reaches it itself)
  ``p <kind> <id> <seconds>``  agent → API  what applying it took (``notifier.Pace``:
                                            the API's next debounce; ``-``: gone)
  ``e <json>``                 agent → API  server events of ports' statuses
                                            (``ServerEvents``: Compute listens in the
                                            API's process)
  ===========================  ===========  =========================================

What the child is given (pickled on its standard input): the cloud's settings,
the parent's pid, the log level and Compute's metadata secret (the proxy signs
``X-Instance-ID`` with it; Compute runs in the API's process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import pickle
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onestack.network.agent import notifier

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.common.tasks.core import TasksService
    from onestack.config import Settings
    from onestack.network.agent.prefork import PreforkedAgent
    from onestack.network.agent.runner import DataPlane
    from onestack.network.core import NetworkService

log = logging.getLogger(__name__)

STOP_SECONDS = 15.0  # the child's worker lets running handlers finish for 10 s
RESTART_MIN, RESTART_MAX = 1.0, 30.0
MAX_MESSAGE = 60_000  # bytes of one datagram (below the socket's buffer)
SWITCH_INTERVAL = 0.0005  # seconds: the agent's threads' turns on the interpreter (see serve_child)


@dataclass
class Init:
    settings: Settings
    parent: int
    log_level: int
    metadata_secret: bytes | None


def _send(sock: socket.socket | None, message: bytes) -> None:
    """One datagram, never waiting (any thread); dropped if the link is full or gone."""
    if sock is None:
        return
    try:
        sock.send(message)
    except (BlockingIOError, OSError) as exc:
        log.debug("network agent link: message dropped: %s", exc)


def _messages(sock: socket.socket) -> tuple[list[bytes], bool]:
    """What is waiting on the link; True if it closed."""
    out: list[bytes] = []
    while True:
        try:
            data = sock.recv(MAX_MESSAGE + 1024)
        except BlockingIOError:
            return out, False
        except OSError:
            return out, True
        if not data:
            return out, True
        out.append(data)


# --- the API's side -----------------------------------------------------------------------


class AgentProcess:
    """The child running this cloud's network agent: start, supervise, stop."""

    def __init__(self, net: NetworkService, dataplane: DataPlane) -> None:
        self.net = net
        self.cloud = net.cloud
        self.pace = dataplane.pace
        # the running agent: an asyncio Process, or prefork.ForkedAgent
        self.proc: Any = None
        # forked by `onestack up` (NetworkApp.pre_fork) for the first start
        self.forked: PreforkedAgent | None = None
        self.starts = 0  # how many times it was started (tests)
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unforward: Any = None

    async def start(self) -> None:
        self._stopping = False
        if self.cloud.db.is_sqlite:  # PostgreSQL's NOTIFY reaches the child itself
            self._unforward = self.cloud.tasks.hub.forward(self._forward)
        self._task = asyncio.create_task(self._supervise(), name="network-agent-process")

    async def stop(self) -> None:
        self._stopping = True
        if self._unforward is not None:
            self._unforward()
            self._unforward = None
        if self._task is not None:  # no start again from here on
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_SECONDS)
            except TimeoutError:
                log.warning("network agent process %s did not stop: killed", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._close_link()
        forked, self.forked = self.forked, None
        if forked is not None:  # never started
            await forked.discard()

    def _close_link(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(sock)
            sock.close()

    def _forward(self, kind: str | None, delay: float) -> None:
        if kind in notifier.KINDS:
            _send(self._sock, f"w {kind} {delay:.4f}".encode())

    def _init(self) -> bytes:
        import importlib

        secret = None
        if self.cloud.services.get("compute") is not None:
            compute = importlib.import_module("onestack.compute.interface")
            try:
                secret = bytes(compute.metadata_proxy_secret(self.cloud))
            except LookupError:
                secret = None
        return pickle.dumps(Init(settings=self.cloud.settings, parent=os.getpid(),
                                 log_level=logging.getLogger().getEffectiveLevel(),
                                 metadata_secret=secret))

    async def _spawn(self, theirs: socket.socket) -> Any:
        """The agent: the process forked by ``onestack up`` at its first start
        (handed its settings on its link), else executed (handed them on its
        standard input)."""
        forked, self.forked = self.forked, None
        if forked is not None:  # the first start only (see prefork.py)
            try:
                return forked.start(self._init(), theirs)
            except OSError as exc:
                log.warning("network agent process: the forked one is gone (%s); executing it", exc)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "onestack.cli", "network-agent", "--fd", str(theirs.fileno()),
            stdin=asyncio.subprocess.PIPE, pass_fds=(theirs.fileno(),), start_new_session=True,
            env=_child_env())
        try:
            assert proc.stdin is not None
            proc.stdin.write(self._init())
            await proc.stdin.drain()
            proc.stdin.close()
        except (ConnectionError, OSError) as exc:
            log.warning("network agent process: could not hand it its settings: %s", exc)
        return proc

    async def _supervise(self) -> None:
        wait = RESTART_MIN
        loop = asyncio.get_running_loop()
        while not self._stopping:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            began = time.monotonic()
            try:
                proc = await self._spawn(theirs)
            except Exception:
                log.exception("network agent process: cannot start it")
                ours.close()
                await asyncio.sleep(wait)
                wait = min(wait * 2, RESTART_MAX)
                continue
            finally:
                theirs.close()
            self.proc = proc
            self.starts += 1
            ours.setblocking(False)
            self._sock = ours
            loop.add_reader(ours, self._receive, ours)
            code = await proc.wait()
            self._close_link()
            if self._stopping:
                return
            if time.monotonic() - began > 60:
                wait = RESTART_MIN
            log.warning("network agent process %s exited (%s); starting it again in %.0f s",
                        proc.pid, code, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RESTART_MAX)

    def _receive(self, sock: socket.socket) -> None:
        from onestack.network.dataplane import ServerEvent

        messages, closed = _messages(sock)
        for data in messages:
            try:
                head, _sep, rest = data.partition(b" ")
                if head == b"p":
                    kind, ident, seconds = rest.decode().split(" ")
                    self.pace.record(kind, "" if ident == "-" else ident,
                                     None if seconds == "-" else float(seconds))
                elif head == b"e":
                    self.net.server_events.publish([ServerEvent(*e) for e in json.loads(rest)])
            except Exception as exc:  # never the API's problem
                log.warning("network agent link: bad message %r: %s", data[:80], exc)
        if closed:
            asyncio.get_running_loop().remove_reader(sock)


def _child_env() -> dict[str, str]:
    """The child's environment: the API's, with glibc's malloc held to one arena.

    Memory: each of the child's threads (the task workers, ``to_thread``)
    otherwise gets an arena of its own, and the idle child held 5 MiB more
    (RSS 78 -> 73 MiB, measured). Its threads take turns on the interpreter
    anyway, so they do not contend for the one arena."""
    env = dict(os.environ)
    env.setdefault("MALLOC_ARENA_MAX", "1")
    return env


# --- the child's side ---------------------------------------------------------------------


def read_init() -> Init:
    """The child's settings from its standard input (see the module's doc)."""
    init = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(init, Init):
        raise SystemExit("onestack network-agent: started by onestack up only")
    return init


def die_with_parent(parent: int) -> None:
    """SIGTERM when the API's process ends (Linux); exit now if it already did."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # the link's end closing stops it too
        pass
    if os.getppid() != parent:
        raise SystemExit(0)


async def serve_child(cloud: Cloud, net: NetworkService, dataplane: DataPlane, tasks: TasksService,
                      fd: int, init: Init) -> None:
    """Run the agent until SIGTERM, SIGINT or the API's process goes away."""
    # A thread of this process holding SQLite's write lock (a claim, an outcome)
    # while the loop runs a handler got the interpreter back only after the loop
    # thread's 5 ms slice, and the API's writes waited for it (write units of
    # 2.5-3 ms): hand the interpreter over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hub = cloud.tasks.hub

    def receive() -> None:
        messages, closed = _messages(sock)
        for data in messages:
            parts = data.decode(errors="replace").split(" ")
            if parts[0] == "w" and len(parts) == 3:
                delay = float(parts[2])
                if delay > 0:
                    hub.notify_later(parts[1], delay)
                else:
                    hub.notify(parts[1])
        if closed:
            loop.remove_reader(sock)
            stop.set()

    def report(kind: str, ident: str, seconds: float | None) -> None:
        _send(sock, f"p {kind} {ident or '-'} {'-' if seconds is None else f'{seconds:.4f}'}".encode())

    def events(batch: Any) -> None:  # a thread of ServerEvents
        rows = [[e.name, e.server_id, e.port_id] for e in batch]
        step = 400
        for i in range(0, len(rows), step):
            _send(sock, b"e " + json.dumps(rows[i:i + step]).encode())

    if init.metadata_secret is not None:
        secret = init.metadata_secret

        def sign(instance_id: str) -> str:  # as Compute's metadata service checks it
            return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()

        dataplane.sign_instance = sign
    dataplane.pace.report = report
    net.server_events.subscribe(events)
    loop.add_reader(sock, receive)
    tasks.serves_api = False
    await asyncio.to_thread(tasks.register_process)
    await tasks.start()
    await dataplane.start()
    try:
        await stop.wait()
    finally:
        await dataplane.stop()
        await tasks.stop()
        loop.remove_reader(sock)
        sock.close()
        cloud.db.dispose()
