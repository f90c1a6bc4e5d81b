"""Durable tasks: long operations as rows in the database, run by agents.

* :mod:`.queue` - the task table: enqueue (dedupe, per-resource order,
  supersede), fenced claims and outcomes, retries with backoff, cancel.
* :mod:`.kinds` - per-kind rules (attempts, backoff, host-down rule, hooks).
* :mod:`.worker` - runs handlers: heartbeats, cancellation, reporting.
* :mod:`.broker` - the seam between workers and the table: in-process
  (:class:`LocalBroker`) or :mod:`.http_broker` over the internal API
  (:mod:`.internal_api`), for agents that hold no database credentials.
* :mod:`.hosts` - host/service heartbeats (``os-services``, ``agents``).
* :mod:`.sweeper` - tasks of dead hosts failed or re-targeted; purging.
* :mod:`.wakeups` - in-process wake-ups and PostgreSQL LISTEN/NOTIFY.
* :mod:`.core` - the cloud's tasks service: own host heartbeat, sweeper, the
  internal API; :mod:`.agent` - ``onestack agent``.

Names are imported lazily, so an agent importing the worker and the HTTP
broker never loads the database layer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QUEUED": "onestack.common.models",
    "RUNNING": "onestack.common.models",
    "SUCCEEDED": "onestack.common.models",
    "FAILED": "onestack.common.models",
    "CANCELLED": "onestack.common.models",
    "Task": "onestack.common.models",
    "TaskQueue": "onestack.common.tasks.queue",
    "DbClock": "onestack.common.tasks.dbclock",
    "KindRule": "onestack.common.tasks.kinds",
    "KindRegistry": "onestack.common.tasks.kinds",
    "HostRegistry": "onestack.common.tasks.hosts",
    "ServiceView": "onestack.common.tasks.hosts",
    "Sweeper": "onestack.common.tasks.sweeper",
    "Listener": "onestack.common.tasks.wakeups",
    "Broker": "onestack.common.tasks.broker",
    "Claim": "onestack.common.tasks.broker",
    "LocalBroker": "onestack.common.tasks.broker",
    "HttpBroker": "onestack.common.tasks.http_broker",
    "Worker": "onestack.common.tasks.worker",
    "TaskContext": "onestack.common.tasks.worker",
    "LeaseLost": "onestack.common.tasks.errors",
    "BrokerError": "onestack.common.tasks.errors",
    "TaskFailed": "onestack.common.tasks.errors",
    "TaskCancelled": "onestack.common.tasks.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
