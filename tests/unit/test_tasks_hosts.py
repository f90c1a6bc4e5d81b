"""Hosts: heartbeats, up/down as os-services and agents show them; the
sweeper failing or re-targeting the tasks of dead hosts; periodic-job leases.

Each test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import threading

import pytest

from onestack.common.db import Database
from onestack.common.models import FAILED, QUEUED, SUCCEEDED
from onestack.common.tasks.dbclock import DbClock
from onestack.common.tasks.errors import LeaseLost
from onestack.common.tasks.hosts import HostRegistry
from onestack.common.tasks.kinds import KindRegistry, KindRule
from onestack.common.tasks.queue import TaskQueue
from onestack.common.tasks.sweeper import Sweeper, take_job_lease
from tests.unit.tasks_support import add, db_now

NOVA_DOWN = 60.0  # Nova's service_down_time
NEUTRON_DOWN = 75.0  # Neutron's agent_down_time


def test_heartbeat_creates_then_updates_one_row(hosts: HostRegistry, clock: DbClock) -> None:
    hosts.heartbeat("compute-1", "onestack-compute", availability_zone="nova", version="0.1.0",
                    configuration={"vcpus": 2}, started=True)
    [svc] = hosts.services(NOVA_DOWN)
    assert (svc.host, svc.binary, svc.availability_zone, svc.version) == (
        "compute-1", "onestack-compute", "nova", "0.1.0")
    assert svc.configuration == {"vcpus": 2} and svc.alive and not svc.disabled
    clock.advance(30)
    hosts.heartbeat("compute-1", "onestack-compute", configuration={"vcpus": 4})
    [again] = hosts.services(NOVA_DOWN)
    assert again.id == svc.id and again.created_at == svc.created_at
    assert again.started_at == svc.started_at  # not a restart
    assert again.heartbeat_at > svc.heartbeat_at and again.configuration == {"vcpus": 4}
    assert again.availability_zone == "nova" and again.version == "0.1.0"  # kept
    hosts.heartbeat("compute-1", "onestack-compute", started=True)
    [restarted] = hosts.services(NOVA_DOWN)
    assert restarted.started_at > svc.started_at


def test_up_and_down_by_the_database_clock(hosts: HostRegistry, clock: DbClock) -> None:
    hosts.heartbeat("compute-1", "onestack-compute", availability_zone="nova")
    hosts.heartbeat("net-1", "onestack-network-agent", agent_type="Linux bridge agent",
                    topic="N/A")
    clock.advance(NOVA_DOWN + 1)
    up = {s.host: (s.state, s.alive) for s in hosts.services(NOVA_DOWN)}
    assert up == {"compute-1": ("down", False), "net-1": ("down", False)}
    [agent] = hosts.services(NEUTRON_DOWN, binary="onestack-network-agent")
    assert agent.alive  # Neutron allows 75 s
    clock.advance(15)
    [agent] = hosts.services(NEUTRON_DOWN, binary="onestack-network-agent")
    assert not agent.alive
    hosts.heartbeat("compute-1", "onestack-compute")
    assert [s.host for s in hosts.services(NOVA_DOWN) if s.alive] == ["compute-1"]
    assert hosts.live_hosts(NOVA_DOWN) == ["compute-1"]


def test_disabled_and_forced_down(hosts: HostRegistry) -> None:
    hosts.heartbeat("compute-1", "onestack-compute", availability_zone="nova")
    [svc] = hosts.services(NOVA_DOWN)
    assert hosts.update(svc.id, disabled=True, disabled_reason="maintenance")
    view = hosts.get(svc.id, NOVA_DOWN)
    assert view is not None and (view.status, view.disabled_reason, view.state) == (
        "disabled", "maintenance", "up")
    assert hosts.live_hosts(NOVA_DOWN) == []  # not a target for new work
    assert hosts.update(svc.id, disabled=False)
    assert hosts.update(svc.id, forced_down=True)
    view = hosts.get(svc.id, NOVA_DOWN)
    assert view is not None and (view.status, view.disabled_reason, view.state) == (
        "enabled", None, "down")
    assert not hosts.update("no-such-service", disabled=True)
    assert hosts.delete(svc.id) and hosts.services(NOVA_DOWN) == []


def test_rows_render_as_nova_services_and_neutron_agents(hosts: HostRegistry) -> None:
    hosts.heartbeat("compute-1", "nova-compute", availability_zone="nova", topic="compute")
    hosts.heartbeat("net-1", "neutron-linuxbridge-agent", agent_type="Linux bridge agent",
                    topic="N/A", configuration={"bridge_mappings": {}})
    compute, agent = hosts.services(NOVA_DOWN)
    nova = compute.as_nova_service()
    assert set(nova) == {"id", "binary", "disabled_reason", "host", "state", "status",
                         "updated_at", "zone", "forced_down"}
    assert (nova["binary"], nova["host"], nova["state"], nova["status"], nova["zone"],
            nova["forced_down"]) == ("nova-compute", "compute-1", "up", "enabled", "nova", False)
    neutron = agent.as_neutron_agent()
    assert set(neutron) == {"id", "agent_type", "binary", "host", "topic", "admin_state_up",
                            "alive", "availability_zone", "configurations", "created_at",
                            "started_at", "heartbeat_timestamp", "description",
                            "resources_synced"}
    assert (neutron["agent_type"], neutron["admin_state_up"], neutron["alive"],
            neutron["configurations"]) == ("Linux bridge agent", True, True,
                                           {"bridge_mappings": {}})
    assert len(neutron["heartbeat_timestamp"]) == len("2017-09-12 19:48:14")


def test_heartbeat_rejects_bad_names(hosts: HostRegistry) -> None:
    with pytest.raises(ValueError, match="host must be 1 to 255 characters"):
        hosts.heartbeat("", "onestack-compute")
    with pytest.raises(ValueError, match="binary must be 1 to 255 characters"):
        hosts.heartbeat("h", "b" * 256)
    assert hosts.services(NOVA_DOWN) == []


def test_concurrent_heartbeats_of_a_new_service_make_one_row(db: Database) -> None:
    handles = [type(db)(db.url) for _ in range(4)]
    try:
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def beat(i: int) -> None:
            try:
                barrier.wait()
                HostRegistry(handles[i % 4]).heartbeat("h", "onestack-compute")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=beat, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(HostRegistry(db).services(NOVA_DOWN)) == 1
    finally:
        for h in handles:
            h.dispose()


# ------------------------------------------------------------------ the sweeper


def sweeper(queue: TaskQueue, hosts: HostRegistry) -> Sweeper:
    return Sweeper(queue, hosts, dead_after=120, keep_finished=0)


def test_a_dead_hosts_queued_task_is_failed_with_a_reason(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock, kinds: KindRegistry
) -> None:
    faults: list[tuple[str, str | None]] = []
    kinds.register("boot", KindRule(on_give_up=lambda s, t: faults.append((t.id, t.reason))))
    hosts.heartbeat("compute-1", "onestack-compute")
    hosts.heartbeat("compute-2", "onestack-compute")
    doomed = add(queue, "boot", host="compute-1")
    safe = add(queue, "boot", host="compute-2")
    anywhere = add(queue, "boot")
    clock.advance(100)
    hosts.heartbeat("compute-2", "onestack-compute")
    assert sweeper(queue, hosts).sweep().failed == []  # compute-1 silent 100 s < 120 s
    clock.advance(30)
    hosts.heartbeat("compute-2", "onestack-compute")
    report = sweeper(queue, hosts).sweep()
    assert report.failed == [doomed] and report.retargeted == {}
    task = queue.get(doomed)
    assert task is not None and task.state == FAILED
    assert task.reason == (f"Host compute-1 is down: no heartbeat from its services for more "
                           f"than 120 seconds. Task boot {doomed} failed.")
    assert faults == [(doomed, task.reason)]
    assert {t.id: t.state for t in queue.find(states=[QUEUED])} == {safe: QUEUED,
                                                                       anywhere: QUEUED}


def test_a_dead_hosts_task_is_retargeted_by_its_kinds_rule(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock, kinds: KindRegistry
) -> None:
    kinds.register("replicate", KindRule(on_host_down="retarget", binary="onestack-object"))
    for host in ("store-1", "store-2", "store-3"):
        hosts.heartbeat(host, "onestack-object")
    hosts.heartbeat("store-3", "onestack-compute")
    busy = add(queue, "replicate", host="store-2")
    moved = add(queue, "replicate", host="store-1")
    # store-1's holder died mid-task: its lease expires and the host goes silent
    claim = queue.claim("old", "store-1", ["replicate"], lease_seconds=10)
    assert claim is not None and claim.id == moved
    clock.advance(150)
    for host in ("store-2", "store-3"):
        hosts.heartbeat(host, "onestack-object")
    report = sweeper(queue, hosts).sweep()
    assert report.retargeted == {moved: "store-3"}  # store-2 already has work
    task = queue.get(moved)
    assert task is not None and (task.state, task.target_host, task.lease_owner) == (
        QUEUED, "store-3", None)
    assert task.error is not None and "Moved to host store-3." in task.error
    with pytest.raises(LeaseLost):  # the old holder is fenced off
        queue.heartbeat(moved, claim.claim_token)
    assert not queue.complete(moved, claim.claim_token)
    taken = queue.claim("new", "store-3", ["replicate"])
    assert taken is not None and taken.id == moved
    assert queue.get(busy).state == QUEUED  # type: ignore[union-attr]


def test_the_kinds_binary_decides_whose_heartbeat_counts(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock, kinds: KindRegistry
) -> None:
    kinds.register("boot", KindRule(binary="onestack-compute"))
    hosts.heartbeat("node-1", "onestack-compute")
    hosts.heartbeat("node-1", "onestack-network-agent")
    boot = add(queue, "boot", host="node-1")
    plug = add(queue, "plug", host="node-1")
    clock.advance(130)
    hosts.heartbeat("node-1", "onestack-network-agent")  # only the network agent lives
    report = sweeper(queue, hosts).sweep()
    assert report.failed == [boot]
    task = queue.get(boot)
    assert task is not None and task.reason is not None
    assert "no heartbeat from its onestack-compute service" in task.reason
    assert queue.get(plug).state == QUEUED  # type: ignore[union-attr]


def test_retarget_without_a_live_host_fails(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock, kinds: KindRegistry
) -> None:
    kinds.register("replicate", KindRule(on_host_down="retarget"))
    hosts.heartbeat("store-1", "onestack-object")
    task_id = add(queue, "replicate", host="store-1")
    clock.advance(130)
    assert sweeper(queue, hosts).sweep().failed == [task_id]
    task = queue.get(task_id)
    assert task is not None and task.reason is not None
    assert "No other live host can run it." in task.reason


def test_forced_down_and_never_seen_hosts(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock
) -> None:
    hosts.heartbeat("compute-1", "onestack-compute")
    [svc] = hosts.services(NOVA_DOWN)
    hosts.update(svc.id, forced_down=True)
    forced = add(queue, "boot", host="compute-1")
    unknown = add(queue, "boot", host="compute-9")
    assert sweeper(queue, hosts).sweep().failed == [forced]  # at once
    clock.advance(130)
    assert sweeper(queue, hosts).sweep().failed == [unknown]  # after the grace
    assert queue.get(unknown).state == FAILED  # type: ignore[union-attr]


def test_a_running_task_with_a_live_lease_is_left_alone(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock
) -> None:
    hosts.heartbeat("compute-1", "onestack-compute")
    task_id = add(queue, "boot", host="compute-1")
    claim = queue.claim("w", "compute-1", ["boot"], lease_seconds=1000)
    assert claim is not None
    clock.advance(130)
    assert sweeper(queue, hosts).sweep().failed == []
    assert queue.complete(task_id, claim.claim_token)
    assert queue.get(task_id).state == SUCCEEDED  # type: ignore[union-attr]


def test_the_sweeper_purges_old_finished_tasks(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock
) -> None:
    task_id = add(queue)
    claim = queue.claim("w", None, None)
    assert claim is not None and queue.complete(task_id, claim.claim_token)
    keep = Sweeper(queue, hosts, dead_after=120, keep_finished=3600)
    assert keep.sweep().purged == 0
    clock.advance(3601)
    assert keep.sweep().purged == 1


def test_one_holder_of_a_periodic_job_at_a_time(db: Database, clock: DbClock) -> None:
    assert take_job_lease(db, clock, "sweep", "api-1", 30)
    assert not take_job_lease(db, clock, "sweep", "api-2", 30)
    assert take_job_lease(db, clock, "sweep", "api-1", 30)  # renewed
    assert take_job_lease(db, clock, "other-job", "api-2", 30)
    clock.advance(31)
    assert take_job_lease(db, clock, "sweep", "api-2", 30)  # api-1 went quiet
    assert not take_job_lease(db, clock, "sweep", "api-1", 30)


def test_concurrent_job_lease_takers_have_one_winner(db: Database) -> None:
    clock = DbClock()
    handles = [type(db)(db.url) for _ in range(4)]
    try:
        barrier = threading.Barrier(8)
        won: list[str] = []

        def take(i: int) -> None:
            barrier.wait()
            if take_job_lease(handles[i % 4], clock, "sweep", f"api-{i}", 30):
                won.append(f"api-{i}")

        threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
    finally:
        for h in handles:
            h.dispose()


def test_the_time_a_service_was_last_seen(hosts: HostRegistry, clock: DbClock,
                                          queue: TaskQueue) -> None:
    hosts.heartbeat("h", "b")
    clock.advance(42)
    [svc] = hosts.services(NOVA_DOWN)
    assert 41 < svc.seen_seconds_ago < 50
    assert svc.heartbeat_at < db_now(queue)



def test_a_task_moves_only_to_a_host_that_is_up(
    queue: TaskQueue, hosts: HostRegistry, clock: DbClock, kinds: KindRegistry
) -> None:
    """The target must be up by the service down time (60 s here), not
    merely not dead yet (120 s)."""
    kinds.register("replicate", KindRule(on_host_down="retarget"))
    for host in ("store-1", "store-2", "store-3"):
        hosts.heartbeat(host, "onestack-object")
    task_id = add(queue, "replicate", host="store-1")
    clock.advance(40)
    hosts.heartbeat("store-2", "onestack-object")
    clock.advance(90)  # store-1 silent 130 s (dead), store-2 90 s (down, not dead)
    hosts.heartbeat("store-3", "onestack-object")
    report = sweeper(queue, hosts).sweep()
    assert report.retargeted == {task_id: "store-3"}
