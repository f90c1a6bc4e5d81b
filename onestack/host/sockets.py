"""Listening sockets made inside a network namespace.

A socket belongs to the namespace of the thread that created it, for its
whole life, whichever thread later uses it: the network agent makes its
metadata proxy's listening sockets here (inside a router or DHCP namespace)
and serves them on the process's event loop. An open socket keeps its
namespace alive: close it before the namespace is meant to go.
"""

from __future__ import annotations

import socket

from onestack.host import netns


def _listen(address: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The address may be added a moment after (or be a redirect's target).
        sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_in(ns: str | None, address: str, port: int, backlog: int = 128) -> socket.socket:
    """A non-blocking TCP socket listening on ``address:port`` in namespace ``ns``
    (blocking: call from a thread, or use :func:`alisten_in`)."""
    return netns.call(ns, _listen, address, port, backlog)


async def alisten_in(ns: str | None, address: str, port: int, backlog: int = 128) -> socket.socket:
    return await netns.acall(ns, _listen, address, port, backlog)
