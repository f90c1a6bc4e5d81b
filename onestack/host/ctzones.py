"""Tracked connections of the calling thread's namespace, IPv4 and IPv6, with
their conntrack zone: listed, and forgotten one by one (``conntrack -L``/``-D``
over netlink, pyroute2; call inside :func:`onestack.host.netns.call`).

A firewall that accepts established connections before its rules keeps a
connection alive after the rule that admitted it is gone, until its entry is
forgotten: what Neutron's firewall drivers do with ``conntrack -D`` when a
security group rule is deleted.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}


@dataclass(frozen=True)
class Connection:
    """One connection in its original direction (who opened it, to what)."""

    family: int  # 4 or 6
    zone: int
    proto: int  # 6 tcp, 17 udp, 1 icmp, 58 icmpv6...
    src: str
    dst: str
    sport: int | None
    dport: int | None
    icmp_type: int | None
    icmp_code: int | None
    entry: Any = field(default=None, compare=False, repr=False)


def connections(zones: Collection[int] | None = None) -> list[Connection]:
    """The connections tracked here (in ``zones`` only, if given)."""
    from pyroute2 import Conntrack

    out: list[Connection] = []
    for family, version in FAMILIES.items():
        ct = Conntrack(nfgen_family=family)
        try:
            for entry in ct.dump_entries():
                zone = entry.zone or 0
                if zones is not None and zone not in zones:
                    continue
                orig = entry.tuple_orig
                out.append(Connection(
                    family=version, zone=zone, proto=orig.proto, src=orig.saddr,
                    dst=orig.daddr, sport=orig.sport, dport=orig.dport,
                    icmp_type=getattr(orig, "icmp_type", None),
                    icmp_code=getattr(orig, "icmp_code", None), entry=entry))
        finally:
            ct.close()
    return out


def forget(stale: Iterable[Connection]) -> int:
    """Deletes these connections' entries (ended meanwhile: fine); how many went."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError

    count = 0
    by_family: dict[int, list[Connection]] = {}
    for conn in stale:
        by_family.setdefault(conn.family, []).append(conn)
    for family, version in FAMILIES.items():
        if version not in by_family:
            continue
        ct = Conntrack(nfgen_family=family)
        try:
            for conn in by_family[version]:
                try:
                    ct.entry("del", tuple_orig=conn.entry.tuple_orig,
                             zone=conn.zone or None)
                except NetlinkError as exc:
                    if exc.code != 2:  # ENOENT: it ended meanwhile
                        raise
                else:
                    count += 1
        finally:
            ct.close()
    return count
