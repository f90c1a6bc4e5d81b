"""The cloud's tasks service: the host this process runs on, the sweeper, the
cross-process wake-ups and the internal API for remote agents.

* This host (``[hosts] name``, default the hostname) heartbeats as
  ``onestack-api`` every ``report_interval``.
* The sweeper (tasks of dead hosts, old finished tasks) runs every
  ``sweep_interval`` in whichever process holds its short lease.
* On PostgreSQL, one LISTEN connection wakes this process's waiters.
* ``/internal`` serves agents on other hosts (:mod:`.internal_api`), built
  on first use.
* Before serving, this process registers its identity (``host:pid:random``)
  in the ``process`` table, heartbeats it with its host and removes it on a
  clean stop; the task leases of processes that are gone are released at
  start (``processes``), so their tasks run again at once.
* The handlers services registered with ``cloud.handle_tasks(kind, handler,
  rule)`` run in this process: one worker for this host's and host-less
  tasks. A task left running by a process that died (or was restarted) is
  taken again once its lease expires - by the next process, or another.

Services reach the queue as ``cloud.tasks`` (enqueue in their own write
transactions), their kinds' rules as ``cloud.task_kinds``, the host table as
``cloud.hosts``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from onestack import __version__

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from onestack.common.db import Database
    from onestack.common.tasks.broker import LocalBroker
    from onestack.common.tasks.hosts import HostRegistry
    from onestack.common.tasks.processes import ProcessRegistry
    from onestack.common.tasks.queue import TaskQueue
    from onestack.common.tasks.worker import Worker
    from onestack.config import Settings


class Cloud(Protocol):
    """What the tasks service needs of the cloud (``common.cloud.Cloud``)."""

    settings: Settings
    db: Database
    task_handlers: dict[str, Any]

    @property
    def tasks(self) -> TaskQueue: ...

    @property
    def hosts(self) -> HostRegistry: ...

    @property
    def processes(self) -> ProcessRegistry: ...

    @property
    def host_name(self) -> str: ...

    @property
    def process_identity(self) -> str: ...


LOG = logging.getLogger(__name__)

BINARY = "onestack-api"


class _Lazy:
    """An ASGI app built on its first request (keeps start-up light)."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)


class TasksService:
    name = "tasks"
    prefix = "/internal"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.catalog: list[Any] = []  # internal: not in the service catalog
        self.host_name = cloud.host_name
        self.identity = cloud.process_identity
        self.closing = False
        self._broker: LocalBroker | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._remote = False
        self.worker: Worker | None = None
        # False in a process that only runs handlers beside an API process on
        # this host (the network agent's): no onestack-api heartbeat, no sweeper.
        self.serves_api = True

    @property
    def db(self) -> Database:
        return self.cloud.db

    @property
    def queue(self) -> TaskQueue:
        return self.cloud.tasks

    @property
    def hosts(self) -> HostRegistry:
        return self.cloud.hosts

    @property
    def broker(self) -> LocalBroker:
        """The in-process broker: local workers and the internal API use it."""
        if self._broker is None:
            from onestack.common.tasks.broker import LocalBroker

            self._broker = LocalBroker(self.queue, self.hosts,
                                       poll_interval=self.settings.tasks.poll_interval)
        return self._broker

    # --- Service protocol -----------------------------------------------------

    def asgi(self) -> ASGIApp:
        def build() -> ASGIApp:
            from onestack.common.tasks.internal_api import build as build_api

            return build_api(self)

        return _Lazy(build)

    def prepare(self) -> None:
        """Before serving (``app.prepare``): this process is alive (its uploads
        and leases are its own), and the leases of processes gone are
        released at once, so that their tasks run again now."""
        self.register_process()

    def register_process(self) -> None:
        """See :meth:`prepare` and ``common.tasks.processes``."""
        processes = self.cloud.processes
        processes.beat(self.identity, self.host_name, os.getpid(), started=True)
        released = processes.release_leases_of_gone(
            down_after=self.settings.hosts.service_down_time, here=self.host_name)
        if released:
            LOG.info("released %d task lease(s) of processes that are gone", released)

    async def start(self) -> None:
        self.closing = False
        if self.cloud.db.is_postgres:
            self.queue.hub.retain_remote(self.cloud.db)
            self._remote = True
        self._loops = [asyncio.create_task(self._process_heartbeats(), name="tasks-process-heartbeat")]
        if self.serves_api:
            self._loops += [
                asyncio.create_task(self._heartbeats(), name="tasks-host-heartbeat"),
                asyncio.create_task(self._sweeps(), name="tasks-sweeper"),
            ]
        if self.cloud.task_handlers:
            from onestack.common.tasks.worker import Worker

            tasks = self.settings.tasks
            self.worker = Worker(
                self.broker, self.host_name, self.cloud.task_handlers,
                name=f"{self.identity}/local", concurrency=tasks.local_concurrency,
                lease_seconds=tasks.lease_seconds, poll_interval=tasks.poll_interval,
            )
            await self.worker.start()

    def begin_shutdown(self) -> None:
        """The process is stopping (any thread, e.g. a signal handler): end
        the long-polling claims of remote agents now, and accept no new wait."""
        self.closing = True
        if self._broker is not None:
            self._broker.interrupt_all()

    async def stop(self) -> None:
        if self.worker is not None:  # running handlers finish (or go back) first
            await self.worker.stop()
            self.worker = None
        self.begin_shutdown()
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        if self._broker is not None:
            await self._broker.close()
        if self._remote:
            self._remote = False
            self.queue.hub.release_remote()
        try:
            await asyncio.to_thread(self.cloud.processes.forget, self.identity)
        except Exception as exc:  # its heartbeat ages instead
            LOG.warning("could not unregister process %s: %s", self.identity, exc)

    # --- periodic work ----------------------------------------------------------

    async def _heartbeats(self) -> None:
        hosts = self.settings.hosts
        started = True
        # Not in the start-up's way: the first heartbeat (and the import of
        # the queue's modules) waits until the cloud answers.
        await asyncio.sleep(min(0.5, hosts.report_interval))
        while True:
            try:
                await asyncio.to_thread(
                    self.hosts.heartbeat, self.host_name, BINARY,
                    availability_zone=hosts.availability_zone, version=__version__,
                    started=started,
                )
                started = False
            except Exception as exc:  # the database is away: say so, try again
                LOG.warning("host heartbeat of %s failed: %s", self.host_name, exc)
            await asyncio.sleep(hosts.report_interval)

    async def _process_heartbeats(self) -> None:
        """This process's own row (registered in ``prepare``): its uploads and
        leases stay its own while it beats."""
        interval = self.settings.hosts.report_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.cloud.processes.beat, self.identity,
                                        self.host_name, os.getpid())
            except Exception as exc:
                LOG.warning("process heartbeat of %s failed: %s", self.identity, exc)

    async def _sweeps(self) -> None:
        tasks = self.settings.tasks
        while True:
            await asyncio.sleep(tasks.sweep_interval)
            try:
                await asyncio.to_thread(self.sweep_once)
            except Exception as exc:
                LOG.warning("task sweep failed: %s", exc)

    def sweep_once(self) -> bool:
        """Sweep if this process holds the sweeper's lease; True if it swept."""
        from onestack.common.tasks.sweeper import Sweeper, take_job_lease

        tasks = self.settings.tasks
        lease = max(tasks.sweep_interval * 3, 30.0)
        if not take_job_lease(self.cloud.db, self.queue.clock, "task-sweeper", self.identity,
                              lease):
            return False
        report = Sweeper(self.queue, self.hosts, dead_after=tasks.dead_host_seconds,
                         live_after=self.settings.hosts.service_down_time,
                         keep_finished=tasks.keep_finished_seconds).sweep()
        if report.failed or report.retargeted or report.purged:
            LOG.info("task sweep: %d failed, %d moved, %d purged", len(report.failed),
                     len(report.retargeted), report.purged)
        return True


def create(cloud: Cloud) -> TasksService:
    return TasksService(cloud)
