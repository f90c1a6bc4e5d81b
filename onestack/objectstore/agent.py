"""The object store's background work as the cloud's tasks.

Each job (replicator, updater, expirer, auditor) is a task kind; a small
scheduler enqueues one when its interval has passed and none is queued or
running, and a :class:`~onestack.common.tasks.Worker` runs them - so a job
survives a restart (its task is claimed again) and two processes never run
the same pass at once (the job's resource key). All the wiring to
``common/tasks`` is here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from onestack.common.web import run

if TYPE_CHECKING:
    from onestack.objectstore.core import ObjectStoreService

log = logging.getLogger(__name__)

REPLICATE = "objectstore.replicate"
UPDATE = "objectstore.update"
EXPIRE = "objectstore.expire"
AUDIT = "objectstore.audit"


class Jobs:
    """One pass of each job, callable directly (tests, `onestack` commands)."""

    def __init__(self, service: ObjectStoreService) -> None:
        self.service = service
        self._updater: Any = None

    def _rings(self) -> dict[str, Any]:
        c = self.service.cluster
        return {"object": c.object_ring, "container": c.container_ring,
                "account": c.account_ring}

    def replicate(self) -> dict[str, Any]:
        from onestack.objectstore.jobs.replicator import Replicator

        rep = Replicator(self.service.server, self._rings(), self.service.client.is_local)
        return rep.run().as_dict()

    def update(self) -> dict[str, Any]:
        from onestack.objectstore.jobs.updater import Updater

        if self._updater is None:
            self._updater = Updater(self.service.server, self._rings(), self.service.client)
        self._updater.rings = self._rings()
        return dict(self._updater.run().__dict__)

    def report_containers(self) -> None:
        """Only the updater's account reports of changed containers (cheap)."""
        from onestack.objectstore.jobs.updater import Updater, UpdateStats

        Updater(self.service.server, self._rings(), self.service.client).report_containers(
            UpdateStats())

    def audit(self, bytes_per_second: int | None = None) -> dict[str, Any]:
        from onestack.objectstore.jobs.auditor import Auditor

        rate = self.service.settings.auditor_bytes_per_second if bytes_per_second is None \
            else bytes_per_second
        auditor = Auditor(self.service.server, self.service.cluster.object_ring,
                          self.service.client.is_local, rate)
        return dict(auditor.run().__dict__)

    async def expire(self, now: float | None = None) -> dict[str, Any]:
        from onestack.objectstore.jobs.expirer import Expirer

        return dict((await Expirer(self.service.proxy).run(now)).__dict__)


class ObjectAgent:
    def __init__(self, service: ObjectStoreService) -> None:
        self.service = service
        self.jobs = Jobs(service)
        s = service.settings
        self.intervals: dict[str, float] = {REPLICATE: s.replicator_interval,
                                            UPDATE: s.updater_interval,
                                            EXPIRE: s.expirer_interval,
                                            AUDIT: s.auditor_interval}
        self.intervals = {k: v for k, v in self.intervals.items() if v > 0}
        self._last: dict[str, float] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self.worker: Any = None
        self.queue: Any = None

    def handlers(self) -> dict[str, Callable[[Any], Awaitable[dict[str, Any]]]]:
        jobs = self.jobs

        async def replicate(_task: Any) -> dict[str, Any]:
            return await run(jobs.replicate)

        async def update(_task: Any) -> dict[str, Any]:
            return await run(jobs.update)

        async def audit(_task: Any) -> dict[str, Any]:
            return await run(jobs.audit)

        async def expire(_task: Any) -> dict[str, Any]:
            return await jobs.expire()

        return {REPLICATE: replicate, UPDATE: update, EXPIRE: expire, AUDIT: audit}

    async def start(self) -> None:
        if not self.intervals:
            return
        from onestack.common.tasks import Worker

        self.queue = self.service.cloud.tasks
        name = f"objectstore-{socket.gethostname()}-{os.getpid()}"
        handlers = {k: v for k, v in self.handlers().items() if k in self.intervals}
        self.worker = Worker(self.queue, None, handlers, name=name, lease_seconds=600,
                             poll_interval=5.0)
        await self.worker.start()
        now = time.monotonic()
        self._last = {kind: now for kind in self.intervals}
        self._scheduler = asyncio.create_task(self._schedule(), name="objectstore-scheduler")

    async def _schedule(self) -> None:
        from onestack.common.tasks import QUEUED, RUNNING

        queue = self.queue
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            due = [k for k, every in self.intervals.items() if now - self._last[k] >= every]
            if not due:
                continue
            try:
                for kind in due:
                    self._last[kind] = now
                    busy = await run(queue.find, kind=kind, states=[QUEUED, RUNNING])
                    if not busy:
                        await run(self._enqueue, kind)
                # (finished tasks are purged by the cloud's tasks service:
                # [tasks] keep_finished_seconds)
            except Exception:
                log.exception("objectstore: scheduling background work failed")

    def _enqueue(self, kind: str) -> None:
        with self.service.cloud.db.write() as session:
            # one pass of a job at a time, across processes too (its resource key)
            self.queue.enqueue(session, kind, {}, max_attempts=1,
                               resource_key=f"objectstore:{kind}")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            self._scheduler = None
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
