"""The HTTP broker's transport, against sockets that misbehave."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from onestack.common.tasks.errors import BrokerError
from onestack.common.tasks.http_broker import HttpBroker


def test_closing_the_broker_ends_a_claim_stuck_on_a_silent_server() -> None:
    """A server that accepts and never answers (a network black hole): the
    long poll must not hold the agent's stop for its whole timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    port = listener.getsockname()[1]

    async def main() -> float:
        broker = HttpBroker(f"http://127.0.0.1:{port}", "id.secret")
        claim = asyncio.ensure_future(broker.claim("w", "h", ["k"], 60, 30))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await broker.close()
        with pytest.raises(BrokerError):
            await claim
        return time.monotonic() - start

    try:
        assert asyncio.run(main()) < 2
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_refused_connection_is_a_broker_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed

    async def main() -> None:
        broker = HttpBroker(f"http://127.0.0.1:{port}", "id.secret")
        try:
            with pytest.raises(BrokerError) as raised:
                await broker.host_heartbeat("h", "b")
            assert raised.value.status is None
        finally:
            await broker.close()

    asyncio.run(main())
