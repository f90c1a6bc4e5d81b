"""The network agent in a process of its own (root): ``onestack up`` starts it
as its child, wakes it when tasks are enqueued, starts it again if it dies, and
takes it along when it ends. One cloud, bounded (~20 s)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.host import netns
from onestack.network.agent.cleanup import remove_all
from onestack.network.agent.layout import cloud_prefix
from tests.conftest import start_cloud, stop_cloud
from tests.e2e.conftest import e2e_skip_reason
from tests.e2e.test_network_dataplane import ENV, Cloud, Vm, wait_for

pytestmark = pytest.mark.e2e


def agent_children(pid: int) -> list[int]:
    """The pids of ``pid``'s children running ``onestack network-agent``."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"network-agent" in argv:
            found.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    """On SQLite the API's process wakes the agent's over their link; on
    PostgreSQL the agent LISTENs for the API's NOTIFY itself."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    env = dict(ENV)
    if request.param == "postgresql":
        env["ONESTACK_DATABASE_URL"] = request.getfixturevalue("pg_server").new_database()
    state = tmp_path / "state"
    c = Cloud(start_cloud(state, env))
    try:
        yield c
    finally:
        stop_cloud(c.info)
        remove_all(state)
        assert not netns.names(cloud_prefix(state)), "namespaces left after removal"


def dhcp_port_after(cloud: Cloud, cidr: str) -> float:
    """Seconds from a network's first DHCP subnet to its DHCP port made by the agent."""
    net = cloud.net.create_network(name=f"ap-{uuid.uuid4().hex[:6]}")
    began = time.monotonic()
    cloud.net.create_subnet(network_id=net.id, ip_version=4, cidr=cidr)
    wait_for("the DHCP port", lambda: any(p.device_owner == "network:dhcp"
                                          for p in cloud.net.ports(network_id=net.id)), timeout=20)
    return time.monotonic() - began


def test_the_agent_runs_beside_the_api_restarts_and_dies_with_it(cloud: Cloud) -> None:
    assert cloud.info.process is not None
    server = cloud.info.process.pid
    first = wait_for("the agent's process", lambda: agent_children(server))
    assert len(first) == 1
    # woken by the API's process at once: the worker's poll fallback is 5 s
    took = [dhcp_port_after(cloud, f"10.91.{i}.0/24") for i in range(3)]
    assert max(took) < 1.5, took

    net = cloud.net.create_network(name=f"ap-{uuid.uuid4().hex[:6]}")
    cloud.net.create_subnet(network_id=net.id, ip_version=4, cidr="10.91.9.0/24")
    port = cloud.net.create_port(network_id=net.id)
    vm = Vm(cloud, port, net.mtu)
    try:
        # the link watch runs in the agent's process: plugged -> ACTIVE
        wait_for("the port ACTIVE", lambda: cloud.port_status(port.id) == "ACTIVE", timeout=5)

        os.kill(first[0], signal.SIGKILL)
        second = wait_for("the agent started again",
                          lambda: [p for p in agent_children(server) if p != first[0]], timeout=15)
        assert len(second) == 1
        # the new one watches the links too: unplugged -> DOWN
        vm.close()
        wait_for("the port DOWN", lambda: cloud.port_status(port.id) == "DOWN", timeout=10)
        assert dhcp_port_after(cloud, "10.91.10.0/24") < 1.5
    finally:
        vm.close()

    # the API's process killed outright: its agent goes with it
    cloud.info.process.kill()
    cloud.info.process.wait()
    wait_for("the agent gone", lambda: not alive(second[0]), timeout=5)
