"""Cluster-wide housekeeping of the task table: tasks pinned to dead hosts,
and old finished tasks.

A task pinned to a host whose services have not heartbeated for
``dead_after`` seconds (or that is ``forced_down``), and that is queued or
running under an expired lease, is failed with a reason or re-targeted to
another live host, by its kind's rule (``on_host_down``; the kind's
``binary`` says whose heartbeat counts). A task pinned to a host that never
reported is given ``dead_after`` from its creation. Each task is taken with a
row lock and a compare-and-set, like a claim, so the sweeper and the workers
never both act on it.

One process at a time runs the sweep: :func:`take_job_lease` gives a named
periodic job to whichever process holds its short lease in
``periodic_job`` (all-in-one: the only process; several API processes:
one of them, another when it dies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from onestack.common.models import (
    FAILED,
    QUEUED,
    RUNNING,
    UNFINISHED,
    HostService,
    PeriodicJob,
    Task,
)
from onestack.common.tasks.dbclock import DbClock, dialect_insert
from onestack.common.tasks.hosts import HostRegistry
from onestack.common.tasks.kinds import RETARGET, KindRule
from onestack.common.tasks.queue import TaskQueue
from onestack.common.tasks.wakeups import notify_on_commit

LOG = logging.getLogger(__name__)


@dataclass
class SweepReport:
    failed: list[str] = field(default_factory=list)
    retargeted: dict[str, str] = field(default_factory=dict)  # task id -> new host
    purged: int = 0


class Sweeper:
    """Fails or re-targets the tasks of dead hosts; purges old finished tasks."""

    def __init__(
        self,
        queue: TaskQueue,
        hosts: HostRegistry,
        *,
        dead_after: float = 300.0,
        live_after: float = 60.0,
        keep_finished: float = 7 * 86400.0,
    ) -> None:
        self.queue = queue
        self.hosts = hosts
        self.db = queue.db
        self.dead_after = dead_after
        # a host a task may move to: heartbeat within this (service_down_time)
        self.live_after = min(live_after, dead_after)
        self.keep_finished = keep_finished

    def sweep(self) -> SweepReport:
        report = SweepReport()
        for task_id in self._orphans():
            with self.db.write() as session:
                self._handle(session, task_id, report)
        if self.keep_finished > 0:
            report.purged = self.queue.purge(self.keep_finished)
        return report

    # -- finding the tasks of dead hosts ---------------------------------------

    def _host_dead(self, binary: str | None) -> Any:
        """SQL: ``Task.target_host`` has no live service (``binary`` if given)."""
        live = and_(HostService.host == Task.target_host,
                    self.hosts.alive_clause(self.dead_after))
        known = HostService.host == Task.target_host
        if binary is not None:
            live = and_(live, HostService.binary == binary)
            known = and_(known, HostService.binary == binary)
        never_reported_long_ago = and_(
            not_(exists().where(known)), Task.created_at < self.queue.now(-self.dead_after)
        )
        return and_(
            not_(exists().where(live)),
            or_(exists().where(known), never_reported_long_ago),
        )

    def _stranded(self) -> Any:
        now = self.queue.now()
        return and_(
            Task.target_host.is_not(None),
            or_(Task.state == QUEUED,
                and_(Task.state == RUNNING, Task.lease_expires_at < now)),
        )

    def _orphans(self) -> list[str]:
        by_binary: dict[str, list[str]] = {}
        for kind, rule in self.queue.kinds.items():
            if rule.binary is not None:
                by_binary.setdefault(rule.binary, []).append(kind)
        special = [kind for kinds in by_binary.values() for kind in kinds]
        found: list[str] = []
        with self.db.read() as session:
            generic = select(Task.id).where(self._stranded(), self._host_dead(None))
            if special:
                generic = generic.where(Task.kind.not_in(special))
            found.extend(session.execute(generic.order_by(Task.seq)).scalars())
            for binary, kinds in sorted(by_binary.items()):
                stmt = select(Task.id).where(
                    self._stranded(), Task.kind.in_(kinds), self._host_dead(binary)
                )
                found.extend(session.execute(stmt.order_by(Task.seq)).scalars())
        return found

    # -- acting on one ------------------------------------------------------------

    def _handle(self, session: Session, task_id: str, report: SweepReport) -> None:
        stmt = select(Task).where(Task.id == task_id, self._stranded())
        stmt = stmt.execution_options(populate_existing=True)
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        task = session.execute(stmt).scalars().first()
        if task is None:
            return  # claimed, finished or locked meanwhile
        rule = self.queue.kinds.rule(task.kind)
        still_dead = session.execute(
            select(self._host_dead(rule.binary)).select_from(Task).where(Task.id == task.id)
        ).scalar()
        if not still_dead:
            return  # the host came back
        dead = task.target_host or ""
        what = f"its {rule.binary} service" if rule.binary else "its services"
        why = (f"Host {dead} is down: no heartbeat from {what} for more than "
               f"{self.dead_after:g} seconds.")
        if rule.on_host_down == RETARGET:
            new_host = self._pick_host(session, task, rule, dead)
            if new_host is not None:
                self._retarget(session, task, new_host, why)
                report.retargeted[task.id] = new_host
                return
            why += " No other live host can run it."
        self.queue._finish(session, task, FAILED, reason=f"{why} Task {task.kind} {task.id} failed.")
        report.failed.append(task.id)
        LOG.warning("task %s (%s) failed: %s", task.id, task.kind, why)

    def _pick_host(self, session: Session, task: Task, rule: KindRule, dead: str) -> str | None:
        live = [h for h in self.hosts.live_hosts(self.live_after, rule.binary, session=session)
                if h != dead]
        if rule.retarget is not None:
            chosen = rule.retarget(session, task, live)
            return chosen if chosen in live else None
        if not live:
            return None
        load = dict(
            session.execute(
                select(Task.target_host, func.count())
                .where(Task.target_host.in_(live), Task.state.in_(UNFINISHED))
                .group_by(Task.target_host)
            ).all()
        )
        return min(live, key=lambda h: (load.get(h, 0), h))

    def _retarget(self, session: Session, task: Task, new_host: str, why: str) -> None:
        won = session.execute(
            update(Task)
            .where(Task.id == task.id, Task.state == task.state,
                   Task.claim_token == task.claim_token)
            .values(
                target_host=new_host,
                state=QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                # fence a holder of the dead host that might still wake up
                claim_token=Task.claim_token + 1,
                error=f"{why} Moved to host {new_host}.",
                updated_at=self.queue.now(),
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(won, "rowcount", 0) == 1:
            notify_on_commit(session, self.db, [task.kind])
            LOG.warning("task %s (%s) moved from host %s to %s", task.id, task.kind,
                        task.target_host, new_host)


def take_job_lease(
    db: Any, clock: DbClock, name: str, holder: str, seconds: float
) -> bool:
    """Hold the periodic job ``name`` for ``seconds`` (renewing it if this
    ``holder`` has it already). True if this holder runs the job now."""
    insert = dialect_insert(db.is_sqlite)
    now = clock.now(db.is_sqlite)
    with db.write(auto_lock=False) as session:  # one row, compare-and-set
        session.execute(
            insert(PeriodicJob).values(name=name).on_conflict_do_nothing(index_elements=["name"])
        )
        taken = session.execute(
            update(PeriodicJob)
            .where(
                PeriodicJob.name == name,
                or_(PeriodicJob.holder == holder, PeriodicJob.holder.is_(None),
                    PeriodicJob.lease_expires_at.is_(None),
                    PeriodicJob.lease_expires_at < now),
            )
            .values(holder=holder, lease_expires_at=clock.now(db.is_sqlite, seconds),
                    last_run_at=now)
            .execution_options(synchronize_session=False)
        )
        return getattr(taken, "rowcount", 0) == 1
