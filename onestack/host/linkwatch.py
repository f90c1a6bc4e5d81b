"""Being told when the links of a namespace change (rtnetlink's link group).

A netlink socket made inside the namespace (it stays that namespace's) and
bound to ``RTMGRP_LINK`` receives a message for every link added, changed
or removed there; a daemon thread waits on it and calls back with the names
of the links concerned (``None`` when messages were lost: anything may have
changed). The caller reads what it needs afterwards, so a burst of changes
costs one look, and changes of no interest (another network's bridge made)
none. The network agent uses it to see a port's device appear on its bridge
(its status turns ACTIVE at once).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from onestack.host import netns

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1


def _open() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, RTMGRP_LINK))
        sock.settimeout(0.5)
    except BaseException:
        sock.close()
        raise
    return sock


class LinkWatch:
    """Calls ``on_change(names)`` (from its own thread) after link changes in ``ns``."""

    def __init__(self, ns: str | None, on_change: Callable[[set[str] | None], None]) -> None:
        self._sock = netns.call(ns, _open)
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"linkwatch:{ns}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from onestack.host.linkdump import names_in

        while not self._stop.is_set():
            names: set[str] | None
            try:
                names = names_in(self._sock.recv(1 << 16))
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS (a burst overflowed it): anything may have changed
                if self._stop.is_set():
                    break
                names = None
            self._on_change(names)

    def close(self) -> None:
        """Stops watching (within half a second) and closes the socket, which
        no longer keeps the namespace alive."""
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
