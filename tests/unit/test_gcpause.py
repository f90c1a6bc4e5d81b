"""common.gcpause: the collector pauses inside, nested and across threads, and
comes back only as it was."""

from __future__ import annotations

import gc
import threading

from onestack.common import gcpause


def test_nested_and_threaded_pauses_resume_once() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with gcpause.paused():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        t.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread is still inside
    leave.set()
    t.join()
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
