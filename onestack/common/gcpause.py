"""Pause the cyclic garbage collector while a request builds a large response.

``onestack up`` freezes what start-up made (``gc.freeze()``), so each full
collection walks only the objects made since. A request that builds tens of
thousands of objects that all stay alive until the response is written (a
list of 10,000 ports: about 100,000 dicts and lists) triggers a collection
every few thousand of them, each walking everything made so far - a third of
the time of such a request spent finding no garbage. Nothing such a request
builds is cyclic, and reference counting still frees everything: inside
``paused()`` the collector simply does not run. Nesting and concurrent
requests are counted; the collector resumes when the last one leaves, if it
was running when the first came in.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
