"""Connection tracking entries of a namespace: list those touching some
addresses, forget some (call inside :func:`onestack.host.netns.call`).

NAT is decided once per connection and kept in its conntrack entry: when a
translation goes (a floating IP disassociated, a port forwarding deleted), the
connections it made keep flowing until their entries are forgotten, which is
what ``conntrack -D`` does for Neutron's L3 agent. Over netlink (pyroute2), in
the calling thread's namespace; nothing parses the output of a command.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flow:
    """One tracked connection: its original direction and its reply direction
    (after NAT, the reply's addresses show what the connection was translated to)."""

    proto: int  # 6 tcp, 17 udp, 1 icmp...
    orig_src: str
    orig_dst: str
    orig_dport: int | None
    reply_src: str
    reply_sport: int | None
    reply_dst: str
    entry: Any = None  # pyroute2's entry, for forget()


def flows(addresses: Collection[str]) -> list[Flow]:
    """The IPv4 connections here whose original destination or reply
    destination is one of ``addresses``."""
    from pyroute2 import Conntrack

    wanted = set(addresses)
    out = []
    ct = Conntrack()
    try:
        for entry in ct.dump_entries():
            orig, reply = entry.tuple_orig, entry.tuple_reply
            if orig.daddr in wanted or reply.daddr in wanted:
                out.append(Flow(proto=orig.proto, orig_src=orig.saddr, orig_dst=orig.daddr,
                                orig_dport=orig.dport, reply_src=reply.saddr,
                                reply_sport=reply.sport, reply_dst=reply.daddr, entry=entry))
    finally:
        ct.close()
    return out


def forget(stale: Iterable[Flow]) -> int:
    """Deletes these connections' entries (gone already: fine); how many went."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError

    count = 0
    ct = Conntrack()
    try:
        for flow in stale:
            try:
                ct.delete(flow.entry)
            except NetlinkError as exc:
                if exc.code != 2:  # ENOENT: it ended meanwhile
                    raise
            else:
                count += 1
    finally:
        ct.close()
    return count
