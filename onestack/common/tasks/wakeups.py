"""Wake-ups: a worker waiting for work returns as soon as a task it can run
may have appeared, instead of at its next poll.

* In-process: every :class:`Listener` of one ``Database`` hangs off one
  :class:`Hub`; an enqueue wakes the listeners of its kind once its
  transaction commits (a rolled-back enqueue wakes nobody).
* Across processes and hosts (PostgreSQL): the enqueueing transaction also
  runs ``pg_notify('onestack_tasks', kind)``, which PostgreSQL delivers at
  commit; each process keeps one connection that ``LISTEN``s (a thread of
  :class:`PgListener`) and wakes its local listeners.
* To a child process on this host (SQLite, where no NOTIFY exists): a
  forwarder registered with :meth:`Hub.forward` is told each kind woken (and
  its delay) and passes it on (the network agent's process:
  ``network/agent/process.py``).
* Polling remains as the fallback (a lost connection, SQLite across
  processes): a listener's ``wait`` always has a timeout.

``notify`` is safe from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from onestack.common.db import Database

LOG = logging.getLogger(__name__)

CHANNEL = "onestack_tasks"
_PENDING_KEY = "onestack.tasks.pending_kinds"


class Listener:
    """A registration for wake-ups of some task kinds (all kinds if ``None``).

    Notifications that arrive between waits are remembered, so a worker that
    listens before it claims never misses one. Call from the loop that waits.
    """

    def __init__(self, hub: Hub, kinds: Iterable[str] | None) -> None:
        self._hub = hub
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.closed = False

    def wants(self, kind: str | None) -> bool:
        return kind is None or self.kinds is None or kind in self.kinds

    def wake(self) -> None:
        """Wake this listener (any thread)."""
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop is closed
            pass

    def call_later(self, delay: float, fn: Callable[[], object]) -> None:
        """Call ``fn`` on this listener's loop in ``delay`` seconds (any thread)."""
        try:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay, fn)
        except RuntimeError:  # the loop is closed
            pass

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a notification; True if one came, False on timeout."""
        try:
            if timeout is None:
                await self._event.wait()
            elif timeout <= 0:
                if not self._event.is_set():
                    return False
            else:
                await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self.closed = True
        self._hub.remove(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """The listeners of one database's queues, and its cross-process listener."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listeners: set[Listener] = set()
        self._pg: PgListener | None = None
        self._pg_users = 0
        # (kind or None, delay) -> None: wake-ups passed on to another process
        self.forwarders: list[Callable[[str | None, float], None]] = []
        # kind -> seconds: the delayed wake-ups of a kind whose tasks a worker
        # runs together (``worker.Batched``): a task due within that long after
        # the last wake-up planned is woken that much after it is due, by one
        # wake-up for all the tasks due by then (a lone task: when it is due)
        self.windows: dict[str, float] = {}
        self._window_wake: dict[str, float] = {}  # kind -> when its next one comes (monotonic)

    def forward(self, forwarder: Callable[[str | None, float], None]) -> Callable[[], None]:
        """Tell ``forwarder`` of every wake-up of this hub (from any thread; it must
        not block). Returns the function that stops it."""
        with self.lock:
            self.forwarders.append(forwarder)

        def stop() -> None:
            with self.lock:
                if forwarder in self.forwarders:
                    self.forwarders.remove(forwarder)

        return stop

    def _forward(self, kind: str | None, delay: float) -> None:
        for forwarder in list(self.forwarders):
            try:
                forwarder(kind, delay)
            except Exception as exc:  # the other process is away: it polls meanwhile
                LOG.debug("task wake-up not forwarded: %s", exc)

    def listen(self, kinds: Iterable[str] | None = None) -> Listener:
        listener = Listener(self, kinds)
        with self.lock:
            self.listeners.add(listener)
        return listener

    def remove(self, listener: Listener) -> None:
        with self.lock:
            self.listeners.discard(listener)

    def notify(self, kind: str | None = None) -> None:
        """Wake the local listeners of ``kind`` (all of them if None)."""
        with self.lock:
            targets = [item for item in self.listeners if item.wants(kind)]
        for listener in targets:
            listener.wake()
        if self.forwarders:
            self._forward(kind, 0.0)

    def notify_later(self, kind: str, delay: float) -> None:
        """One task of ``kind`` becomes due in ``delay`` seconds: then wake one
        listener of ``kind`` waiting at that moment, if any (it claims the task).
        One is enough: a worker that starts waiting meanwhile has asked the queue
        when its next task is due, and one busy now claims again when it is done.
        Waking every worker (four in the all-in-one cloud) made three of them
        find nothing and ask again: six queries per task."""
        if self.forwarders:
            self._forward(kind, delay)
        window = self.windows.get(kind, 0.0)
        with self.lock:
            waiting = next((item for item in self.listeners if item.wants(kind)), None)
            if waiting is None:  # every worker is busy, and will look itself
                return
            if window > 0:
                due = time.monotonic() + delay
                coming = self._window_wake.get(kind)
                if coming is not None and due <= coming <= due + window:
                    return  # the wake-up already planned comes after this task is due
                if coming is not None and coming < due <= coming + window:
                    delay += window  # one of a stream: the next ones due come along
                self._window_wake[kind] = time.monotonic() + delay
        waiting.call_later(delay, lambda: self._wake_one(kind))

    def _wake_one(self, kind: str) -> None:
        with self.lock:
            waiting = next((item for item in self.listeners if item.wants(kind) and not item.closed), None)
        if waiting is not None:
            waiting.wake()

    # -- PostgreSQL LISTEN ------------------------------------------------------

    def retain_remote(self, db: Database) -> None:
        """Start (or keep) this process's LISTEN connection (PostgreSQL only)."""
        if not db.is_postgres:
            return
        with self.lock:
            self._pg_users += 1
            if self._pg is None or not self._pg.is_alive():
                self._pg = PgListener(db.url, self)
                self._pg.start()

    def release_remote(self) -> None:
        with self.lock:
            if self._pg_users == 0:
                return
            self._pg_users -= 1
            if self._pg_users == 0 and self._pg is not None:
                self._pg.stop()
                self._pg = None

    @property
    def remote_listening(self) -> bool:
        pg = self._pg
        return pg is not None and pg.connected.is_set()


_HUBS: weakref.WeakKeyDictionary[Database, Hub] = weakref.WeakKeyDictionary()
_HUBS_LOCK = threading.Lock()


def hub_for(db: Database) -> Hub:
    """The hub of ``db`` (every queue on the same Database shares it)."""
    with _HUBS_LOCK:
        hub = _HUBS.get(db)
        if hub is None:
            hub = _HUBS[db] = Hub()
        return hub


def notify_on_commit(session: Session, db: Database, kinds: Iterable[str], delay: float = 0.0) -> None:
    """Wake the workers of ``kinds`` once ``session``'s transaction commits:
    in this process, and through PostgreSQL's NOTIFY in every other. With a
    ``delay`` (a task that may not run before then), this process's workers are
    woken when it is due rather than at once, when each of them would only find
    nothing to run and look again (two queries per worker and write).

    What to wake is kept in ``session.info``; one listener on every session
    (installed once) acts on it at commit, or drops it at a rollback: no
    listener is registered per call (that was a third of an enqueue's cost)."""
    from sqlalchemy import text

    new = set(kinds)
    if not new:
        return
    _install_listeners()
    info = session.info
    info[_HUB_KEY] = hub_for(db)
    if delay > 0 and not db.is_postgres:
        info.setdefault(_LATER_KEY, []).extend((kind, delay) for kind in sorted(new))
        return
    pending: set[str] | None = info.get(_PENDING_KEY)
    fresh = new if pending is None else new - pending
    if db.is_postgres:
        for kind in sorted(fresh):
            session.execute(text("SELECT pg_notify(:channel, :kind)"),
                            {"channel": CHANNEL, "kind": kind})
    if pending is None:
        info[_PENDING_KEY] = set(new)
    else:
        pending |= new


_HUB_KEY = "onestack.tasks.hub"
_LATER_KEY = "onestack.tasks.later_kinds"
_installed = False
_install_lock = threading.Lock()


def _install_listeners() -> None:
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            from sqlalchemy import event
            from sqlalchemy.orm import Session

            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_soft_rollback", _after_rollback)
            _installed = True


def _after_commit(session: Session) -> None:
    info = session.info
    hub: Hub | None = info.pop(_HUB_KEY, None)
    if hub is None:
        return
    for kind, delay in info.pop(_LATER_KEY, ()):
        hub.notify_later(kind, delay)
    for kind in info.pop(_PENDING_KEY, ()):
        hub.notify(kind)


def _after_rollback(session: Session, _transaction: Any) -> None:
    info = session.info
    if _HUB_KEY in info:
        for key in (_HUB_KEY, _LATER_KEY, _PENDING_KEY):
            info.pop(key, None)


class PgListener(threading.Thread):
    """One connection that LISTENs and wakes this process's listeners.

    Reconnects with a growing delay after an error; after every (re)connect
    it wakes everyone, since notifications sent meanwhile were lost.
    """

    TICK = 0.5  # how often the thread looks at its stop flag

    def __init__(self, url: str, hub: Hub) -> None:
        super().__init__(name="onestack-pg-listen", daemon=True)
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.hub = hub
        self._stop_flag = threading.Event()
        self.connected = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        import psycopg

        delay = 0.2
        while not self._stop_flag.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.2
                    self.hub.notify(None)
                    while not self._stop_flag.is_set():
                        for note in conn.notifies(timeout=self.TICK):
                            self.hub.notify(note.payload or None)
            except Exception as exc:  # the server went away: poll meanwhile, retry
                self.connected.clear()
                if self._stop_flag.is_set():
                    break
                LOG.warning("task wake-ups: LISTEN connection failed (%s); retrying", exc)
                self._stop_flag.wait(delay)
                delay = min(delay * 2, 10.0)
        self.connected.clear()
