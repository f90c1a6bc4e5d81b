"""``onestack agent``: run a host's workers against a cloud's internal API.

The agent holds an agent credential (``onestack agent-credential create``)
and the cloud's URL - no database URL and no state directory of the cloud.
It heartbeats its host and binary, and runs a :class:`Worker` whose handlers
come from the roles it runs: a role names a module exposing ``HANDLERS``
(kind -> handler) and optionally ``BINARY`` (the name its heartbeat uses).
This module imports no database code.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onestack import __version__
from onestack.common.tasks.errors import BrokerError
from onestack.common.tasks.http_broker import HttpBroker
from onestack.common.tasks.worker import Handler, Worker

LOG = logging.getLogger(__name__)

# Roles an agent can run, by name -> the module with their handlers. The
# compute, network, volume and object agents add themselves here.
ROLES: dict[str, str] = {"noop": "onestack.common.tasks.noop"}


@dataclass
class AgentConfig:
    url: str
    host: str
    credential: str
    modules: list[str] = field(default_factory=list)
    binary: str | None = None
    concurrency: int = 4
    lease_seconds: float = 60.0
    long_poll_seconds: float = 20.0
    report_interval: float = 10.0
    availability_zone: str | None = None


def load_handlers(modules: list[str]) -> tuple[dict[str, Handler], str | None]:
    """The handlers of the given role modules (``module`` or ``module:ATTR``),
    and the binary name the first of them declares."""
    handlers: dict[str, Handler] = {}
    binary: str | None = None
    for spec in modules:
        name, _, attr = spec.partition(":")
        module = importlib.import_module(ROLES.get(name, name))
        found: Mapping[str, Handler] = getattr(module, attr or "HANDLERS")
        for kind, handler in found.items():
            if kind in handlers:
                raise ValueError(f"two roles handle the task kind {kind!r}")
            handlers[kind] = handler
        binary = binary or getattr(module, "BINARY", None)
    if not handlers:
        raise ValueError("the agent has no task handlers: name a role (--role)")
    return handlers, binary


async def run_agent(config: AgentConfig, stop: asyncio.Event | None = None) -> int:
    """Run until stopped (SIGTERM/SIGINT or ``stop``); 0 on a clean stop, 2 if
    the cloud refused the credential."""
    handlers, declared = load_handlers(config.modules)
    binary = config.binary or declared or "onestack-agent"
    broker = HttpBroker(config.url, config.credential, threads=config.concurrency + 4)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    info: dict[str, Any] = {"version": __version__,
                            "configuration": {"kinds": sorted(handlers)}}
    if config.availability_zone:
        info["availability_zone"] = config.availability_zone
    try:
        # The first heartbeat checks the credential before any work is taken.
        try:
            await broker.host_heartbeat(config.host, binary, started=True, **info)
        except BrokerError as exc:
            if exc.status in (401, 403):
                LOG.error("the cloud refused this agent's credential: %s", exc)
                return 2
            LOG.warning("first heartbeat failed (will retry): %s", exc)
        worker = Worker(broker, config.host, handlers, concurrency=config.concurrency,
                        lease_seconds=config.lease_seconds,
                        poll_interval=config.long_poll_seconds)
        await worker.start()
        refused = asyncio.Event()
        beats = asyncio.create_task(_heartbeats(broker, config, binary, info, stop, refused))
        LOG.info("agent for host %s (%s) running %s against %s", config.host, binary,
                 ", ".join(sorted(handlers)), config.url)
        stopped = asyncio.create_task(stop.wait())
        ended = asyncio.create_task(worker.wait_stopped())
        await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
        await worker.stop()
        beats.cancel()
        stopped.cancel()
        await asyncio.gather(beats, stopped, ended, return_exceptions=True)
        return 2 if worker.fatal is not None or refused.is_set() else 0
    finally:
        await broker.close()


async def _heartbeats(broker: HttpBroker, config: AgentConfig, binary: str,
                      info: dict[str, Any], stop: asyncio.Event,
                      refused: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), config.report_interval)
            return
        except TimeoutError:
            pass
        try:
            await broker.host_heartbeat(config.host, binary, **info)
        except BrokerError as exc:
            LOG.warning("heartbeat failed: %s", exc)
            if exc.status in (401, 403):
                LOG.error("the cloud refused this agent's credential: %s", exc)
                refused.set()
                stop.set()
