"""The network agent in a process of its own (root): ``onestack up`` starts it
as its child (forked at start-up, holding nothing of the API's; executed when
started again), wakes it when tasks are enqueued, starts it again if it dies,
and takes it along when it ends. Bounded (~30 s)."""

from __future__ import annotations

import contextlib
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


def argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return []


def forked(pid: int) -> bool:
    """Forked by ``onestack up`` (named so), not executed (``-m onestack.cli network-agent --fd N``)."""
    return argv(pid) == [b"onestack network-agent"]


def sockets(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[8:-1])
    return found


def listening(port: int) -> str:
    """The inode of the TCP socket listening on ``port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return fields[9]
    raise AssertionError(f"nothing listens on {port}")


def holds_nothing_of(agent: int, server: int, port: int, state: Path) -> None:
    """The agent holds no socket of the API's process (its listening one above
    all) and not its state directory's lock."""
    api = sockets(server)
    assert listening(port) in api
    assert not sockets(agent) & api, "the agent holds a socket of the API's process"
    held = {os.readlink(fd) for fd in Path(f"/proc/{agent}/fd").iterdir()}
    assert not {h for h in held if h.startswith(str(state)) and "lock" in h.lower()}, held


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
        if any(b"network-agent" in arg for arg in argv):
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
    assert forked(first[0]), argv(first[0])
    api_port = int(cloud.info.url.rsplit(":", 1)[1])
    holds_nothing_of(first[0], server, api_port, cloud.info.state_dir)
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
        assert not forked(second[0]) and b"--fd" in argv(second[0]), argv(second[0])
        holds_nothing_of(second[0], server, api_port, cloud.info.state_dir)
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


def test_the_forked_agent_dies_with_the_api(tmp_path: Path) -> None:
    """The agent forked at start-up goes when the API's process is killed outright."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path / "state"
    c = Cloud(start_cloud(state, dict(ENV)))
    agent = 0
    try:
        assert c.info.process is not None
        agent = wait_for("the agent's process", lambda: agent_children(c.info.process.pid))[0]
        assert forked(agent)
        # it serves: the link watch makes a plugged port ACTIVE
        net = c.net.create_network(name=f"ap-{uuid.uuid4().hex[:6]}")
        c.net.create_subnet(network_id=net.id, ip_version=4, cidr="10.91.20.0/24")
        port = c.net.create_port(network_id=net.id)
        vm = Vm(c, port, net.mtu)
        try:
            wait_for("the port ACTIVE", lambda: c.port_status(port.id) == "ACTIVE", timeout=5)
        finally:
            vm.close()
        wait_for("the port DOWN", lambda: c.port_status(port.id) == "DOWN", timeout=10)
        c.info.process.kill()
        c.info.process.wait()
        # SIGTERM from the kernel: it stops as when told to (a running handler
        # gets up to 10 s to finish)
        wait_for("the agent gone", lambda: not alive(agent), timeout=15)
    finally:
        stop_cloud(c.info)
        if agent and alive(agent):  # else it would make again what remove_all takes away
            os.kill(agent, signal.SIGKILL)
            wait_for("the agent killed", lambda: not alive(agent), timeout=5)
        remove_all(state)
        assert not netns.names(cloud_prefix(state)), "namespaces left after removal"
