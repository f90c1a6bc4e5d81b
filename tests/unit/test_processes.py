"""Process identities and heartbeats: who owns work in flight, and who is gone."""

from __future__ import annotations

import os
import subprocess

from onestack.common.db import Database
from onestack.common.models import QUEUED, RUNNING, Task
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.processes import ProcessRegistry, parse
from onestack.common.tasks.queue import TaskQueue
from tests.unit.tasks_support import add


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_parse() -> None:
    assert parse("node-1:4242:ab12cd34") == ("node-1", 4242)
    assert parse("fe80::1:4242:ab12cd34") == ("fe80::1", 4242)  # a host name with colons
    for bad in ("", "node", "node:12", "node:x:ab", ":12:ab", "node:12:"):
        assert parse(bad) is None, bad


def test_gone_by_row_heartbeat_and_pid(db: Database, clock: DbClock) -> None:
    reg = ProcessRegistry(db, clock=clock)
    me = f"here:{os.getpid()}:aaaa"
    killed = f"here:{dead_pid()}:bbbb"
    remote = "there:1:cccc"
    for ident in (me, killed, remote):
        host, pid = parse(ident) or ("", 0)
        reg.beat(ident, host, pid, started=True)
    never = "there:2:dddd"
    assert reg.gone([me, killed, remote, never, ""], down_after=60, here="here") == {killed, never}
    clock.advance(61)  # nobody heartbeats for longer than the down time
    reg.beat(me, "here", os.getpid())
    assert reg.gone([me, remote], down_after=60, here="here") == {remote}
    reg.forget(me)  # a clean stop
    assert reg.gone([me], down_after=60, here="here") == {me}


def test_leases_of_gone_processes_are_released_and_no_others(db: Database, queue: TaskQueue) -> None:
    reg = ProcessRegistry(db, clock=queue.clock)
    alive = f"here:{os.getpid()}:aaaa"
    killed = f"here:{dead_pid()}:bbbb"
    reg.beat(alive, "here", os.getpid(), started=True)
    reg.beat(killed, "here", int(killed.split(":")[1]), started=True)  # its row is fresh
    owners = {
        "killed": f"{killed}/local/0",
        "alive": f"{alive}/local/0",
        "agent": "here:1:eeee/3",  # a remote agent's loop: left to its lease
    }
    ids = {name: add(queue, "boot", resource_key=name) for name in owners}
    for owner in owners.values():
        assert queue.claim(owner, None, ["boot"], lease_seconds=3600) is not None
    # the killed process's pid is gone although its row is fresh
    released = reg.release_leases_of_gone(down_after=60, here="here")
    assert released == 1
    claim = queue.claim("here:9:ffff/local/0", None, ["boot"], lease_seconds=60)
    assert claim is not None and claim.id == ids["killed"] and claim.attempts == 2
    with db.read() as s:
        rows = {name: s.get(Task, i) for name, i in ids.items()}
        states = {name: (row.state, row.lease_owner) for name, row in rows.items() if row is not None}
    assert states == {"killed": (RUNNING, "here:9:ffff/local/0"), "alive": (RUNNING, owners["alive"]),
                      "agent": (RUNNING, owners["agent"])}
    assert QUEUED not in {state for state, _ in states.values()}
