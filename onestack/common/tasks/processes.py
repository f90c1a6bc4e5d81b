"""The running cloud processes, and whether the owner of some work is gone.

Every cloud process (``onestack up``, each API replica) has an identity,
``host:pid:random``, registers it before it serves and heartbeats it with its
host's heartbeat; a clean stop removes the row. Work in flight names its owner
(an image upload's ``upload_owner``; a task lease taken by a process's own
worker, ``<identity>/local/<n>``), so that a process that starts - or restarts
next to others on one database - recovers only the work whose owner is gone:

* no row: the owner stopped (cleanly) or never registered;
* a heartbeat older than ``down_after`` (by the database's clock);
* on this very host, a pid that no longer runs (a process killed and started
  again at once: no need to wait for its heartbeat to age).

Blocking calls: run them from a thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from onestack.common.db import Database
from onestack.common.models import RUNNING, Process, Task
from onestack.common.tasks.dbclock import DbClock, dialect_insert

# A lease owner of a cloud process's own worker: "<identity>/local/<n>".
LOCAL_WORKER = "/local/"
# Rows of processes silent this long are deleted when a process registers.
FORGET_AFTER = 7 * 86400.0


def parse(identity: str) -> tuple[str, int] | None:
    """(host, pid) of ``host:pid:random``, or None if it is not one."""
    host, sep, rest = identity.rpartition(":")
    if not sep:
        return None
    host, sep, pid = host.rpartition(":")
    if not sep or not host or not pid.isdigit() or not rest:
        return None
    return host, int(pid)


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


class ProcessRegistry:
    """The ``process`` table's operations."""

    def __init__(self, db: Database, *, clock: DbClock | None = None) -> None:
        self.db = db
        self.clock = clock or DbClock()

    def beat(self, identity: str, host: str, pid: int, *, started: bool = False) -> None:
        """Register (``started``) or heartbeat this process."""
        now = self.clock.now(self.db.is_sqlite)
        insert = dialect_insert(self.db.is_sqlite)
        with self.db.write(auto_lock=False) as session:
            if started:
                session.execute(
                    delete(Process)
                    .where(Process.heartbeat_at < self.clock.now(self.db.is_sqlite, -FORGET_AFTER))
                    .execution_options(synchronize_session=False)
                )
            stmt = insert(Process).values(id=identity, host=host, pid=pid, started_at=now,
                                          heartbeat_at=now)
            session.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                                       set_={"heartbeat_at": now}))

    def forget(self, identity: str) -> None:
        """This process stops: its work in flight is anyone's to recover."""
        with self.db.write(auto_lock=False) as session:
            session.execute(delete(Process).where(Process.id == identity)
                            .execution_options(synchronize_session=False))

    def gone(self, owners: Iterable[str], *, down_after: float, here: str) -> set[str]:
        """The ``owners`` (process identities) that are gone; ``here`` is this host."""
        wanted = {o for o in owners if o}
        if not wanted:
            return set()
        fresh = self.clock.now(self.db.is_sqlite, -down_after)
        with self.db.read() as session:
            rows = session.execute(
                select(Process.id, Process.heartbeat_at >= fresh).where(Process.id.in_(wanted))
            ).all()
        alive = {ident for ident, beating in rows if beating}
        result = wanted - alive
        for ident in alive:
            where = parse(ident)
            if where is not None and where[0] == here and not pid_running(where[1]):
                result.add(ident)
        return result

    def release_leases_of_gone(self, *, down_after: float, here: str) -> int:
        """Expire the leases that gone processes' own workers hold, so that
        their tasks run again now rather than when the leases run out.
        Returns how many. (Remote agents' leases are left to expire.)"""
        with self.db.read() as session:
            owners = session.execute(
                select(Task.lease_owner).where(Task.state == RUNNING,
                                               Task.lease_owner.contains(LOCAL_WORKER))
            ).scalars().all()
        by_process = {o: o.split(LOCAL_WORKER, 1)[0] for o in owners if o}
        gone = self.gone(set(by_process.values()), down_after=down_after, here=here)
        stale = sorted(o for o, ident in by_process.items() if ident in gone)
        if not stale:
            return 0
        with self.db.write(auto_lock=False) as session:
            done = session.execute(
                update(Task)
                .where(Task.state == RUNNING, Task.lease_owner.in_(stale))
                .values(lease_expires_at=self.clock.now(self.db.is_sqlite, -1.0))
                .execution_options(synchronize_session=False)
            )
        return int(getattr(done, "rowcount", 0) or 0)
