"""The network agent's process forked at start-up (``network/agent/prefork.py``),
before it is started: what it holds, how it is signalled, reaped and ended.
(Running the agent in it: tests/e2e/test_network_agent_process.py.)"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.network.agent.prefork import ForkedAgent, PreforkedAgent
from onestack.network.app import run_agent_process


def argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return []


def ready(pid: int) -> None:
    """Until it has set itself up (its name is set last, before it waits)."""
    deadline = time.monotonic() + 10
    while argv(pid) != [b"onestack network-agent"]:
        assert time.monotonic() < deadline, argv(pid)
        time.sleep(0.01)


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def forked() -> Iterator[PreforkedAgent]:
    pf = PreforkedAgent.fork(run_agent_process)
    assert pf is not None
    try:
        yield pf
    finally:
        asyncio.run(pf.discard())


def test_it_holds_only_its_link_and_ends_when_discarded() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        pf = PreforkedAgent.fork(run_agent_process)  # with the listener open here
        assert pf is not None
        ready(pf.pid)
        fds = {int(fd.name): os.readlink(fd) for fd in Path(f"/proc/{pf.pid}/fd").iterdir()}
        others = {fd: target for fd, target in fds.items() if fd > 2 and target != os.devnull}
        assert len(others) == 1 and next(iter(others.values())).startswith("socket:["), fds
        ours = os.readlink(f"/proc/self/fd/{listener.fileno()}")
        assert ours not in fds.values()
        # its own session: a Ctrl-C on onestack up's terminal does not reach it
        assert os.getsid(pf.pid) == pf.pid
        asyncio.run(pf.discard())
        assert gone(pf.pid)
    finally:
        listener.close()


def test_a_start_message_that_is_no_init_ends_it_with_status_1(forked: PreforkedAgent) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        agent = forked.start(pickle.dumps("not an Init"), theirs)
        theirs.close()
        assert asyncio.run(agent.wait()) == 1
        assert gone(agent.pid)
        with pytest.raises(ProcessLookupError):
            agent.terminate()
        with pytest.raises(OSError, match="started already"):
            forked.start(b"", ours)
    finally:
        ours.close()


def test_terminate_ends_it_with_sigterm(forked: PreforkedAgent) -> None:
    ready(forked.pid)
    agent = ForkedAgent(forked.pid, os.pidfd_open(forked.pid))

    async def run() -> int:
        agent.terminate()
        return await agent.wait()

    assert asyncio.run(run()) == -signal.SIGTERM
    assert gone(forked.pid)
