"""The delivery of Networking's server events to Compute (``dataplane.ServerEvents``):
in order, in batches, off the publisher's thread, a failing listener logged."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from onestack.network import dataplane
from onestack.network.dataplane import ServerEvent, ServerEvents


def event(n: int, name: str = dataplane.NETWORK_CHANGED) -> ServerEvent:
    return ServerEvent(name, f"server-{n}", f"port-{n}")


def test_delivered_in_order_off_the_publishers_thread_and_deduplicated() -> None:
    hub = ServerEvents()
    got: list[ServerEvent] = []
    threads: set[str] = set()

    def listener(events: Sequence[ServerEvent]) -> None:
        threads.add(threading.current_thread().name)
        got.extend(events)

    hub.subscribe(listener)
    for n in range(50):
        hub.publish([event(n), event(n)])
    assert hub.wait_idle(5)
    assert got == [event(n) for n in range(50)]
    assert threads == {"network-server-events"}


def test_a_slow_listener_gets_what_queued_meanwhile_as_one_batch() -> None:
    hub = ServerEvents()
    batches: list[list[ServerEvent]] = []
    gate = threading.Event()

    def listener(events: Sequence[ServerEvent]) -> None:
        batches.append(list(events))
        gate.wait(5)

    hub.subscribe(listener)
    hub.publish([event(0)])
    while not batches:
        time.sleep(0.005)
    hub.publish([event(1)])
    hub.publish([event(2), event(1)])
    gate.set()
    assert hub.wait_idle(5)
    assert batches == [[event(0)], [event(1), event(2)]]


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    hub = ServerEvents()
    got: list[ServerEvent] = []

    def broken(events: Sequence[ServerEvent]) -> None:
        raise RuntimeError("compute is gone")

    hub.subscribe(broken)
    hub.subscribe(got.extend)
    hub.publish([event(1)])
    assert hub.wait_idle(5)
    hub.publish([event(2)])
    assert hub.wait_idle(5)
    assert got == [event(1), event(2)]
    assert "could not be delivered" in caplog.text and "compute is gone" in caplog.text


def test_nothing_to_send_starts_nothing_and_the_thread_ends_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = ServerEvents()
    hub.publish([event(1)])  # no listener: dropped, no thread
    assert hub._thread is None
    hub.subscribe(lambda events: None)
    hub.publish([])
    assert hub._thread is None
    monkeypatch.setattr(ServerEvents, "IDLE", 0.05)
    hub.publish([event(1)])
    worker = hub._thread
    assert worker is not None
    worker.join(2)
    assert not worker.is_alive() and hub._thread is None
    got: list[ServerEvent] = []
    hub.subscribe(got.extend)
    hub.publish([event(3)])  # a new thread for the next one
    assert hub.wait_idle(5) and got == [event(3)]


def test_only_servers_ports_make_events() -> None:
    assert dataplane.is_server_port("compute:nova", "a-server")
    assert dataplane.is_server_port("compute:az1", "a-server")
    assert not dataplane.is_server_port("compute:nova", "")
    assert not dataplane.is_server_port("network:dhcp", "dhcp-host-net")
    assert not dataplane.is_server_port("", "something")
    assert not dataplane.is_server_port(None, None)
