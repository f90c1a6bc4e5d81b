"""Helpers for the network agent's API-level tests: a cloud whose Networking
queues the agent's tasks, with a ``DataPlane`` on ``FakeHost`` that the tests
drive themselves (no handler in the cloud's worker), and a netlink counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from onestack.host.fake import FakeHost
from onestack.network.agent import notifier
from onestack.network.agent.runner import DataPlane
from tests.api.conftest import Api, make_api

Rig = tuple[Api, DataPlane, FakeHost]


def agent_rig(tmp_path: Path) -> Iterator[Rig]:
    """What an ``agent`` fixture yields: the cloud, its data plane, the host."""
    for api in make_api(tmp_path / "state"):
        net = api.cloud.services["network"]
        host = FakeHost()
        dp = DataPlane(net, host, serve_metadata=False)
        # the notifier and the binding's namespace, but no handler in the cloud's
        # worker: the tests run the handlers themselves and see the queued tasks
        net.notifier = notifier.TaskNotifier(api.cloud)
        net.vif_netns = dp.layout.root_ns
        yield api, dp, host


def count_netlink(host: FakeHost) -> dict[str | None, int]:
    """Counts the netlink conversations per namespace from now on."""
    counts: dict[str | None, int] = {}
    real = host.net.netlink

    async def counting(ns: str | None, fn: Any) -> Any:
        counts[ns] = counts.get(ns, 0) + 1
        return await real(ns, fn)

    host.net.netlink = counting  # type: ignore[method-assign]
    return counts
