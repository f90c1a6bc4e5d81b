"""What the firewall's tables hold, per port, and the nftables commands that
turn one such state into another (pure: no I/O).

A full :func:`firewall.render` replaces both tables whole; after it, a change
of a few ports (created, deleted, an address or a group changed) is a handful
of set and map elements: the port's name in ``ports``, its number in
``port_numbers``, its MAC and source elements in ``macs``/``sources4``/
``sources6`` (bridge table), its jumps in ``egress``/``ingress``, its router
advertisement sources in ``ra_sources``, and the addresses it adds to or takes
from remote groups' sets (inet table). :func:`diff` gives those element
deletions and additions as one transaction (deletions first), and the
``zone`` chain's one rule again when the bridges changed. Ports keep their
number (their packet mark) from one sync to the next, so an unchanged port's
elements stay as they are. Anything else (a rule chain to add or remove, a
remote group set to add or remove) is left to a full render: ``diff`` answers
None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from onestack.host.nft import Json, jump

TABLE = "onestack_sg"
BRIDGE = "bridge"
INET = "inet"


@dataclass(frozen=True)
class PortFacts:
    """One filtered port as the tables hold it."""

    number: int  # its packet mark
    macs: tuple[Json, ...]
    sources4: tuple[Json, ...]
    sources6: tuple[Json, ...]
    egress: str  # the name of its egress rules chain
    ingress: str
    ra_sources: tuple[str, ...]  # addresses it takes router advertisements from


@dataclass
class Rendered:
    """What the two tables hold after a sync."""

    ports: dict[str, PortFacts] = field(default_factory=dict)  # by device
    chains: frozenset[str] = frozenset()  # the rules chains of the inet table
    groups: dict[str, tuple[Json | str, ...]] = field(default_factory=dict)  # set name -> elements
    zone_rule: Json | None = None  # the ``zone`` chain's rule (None: no bridge)

    @property
    def numbers(self) -> dict[str, int]:
        return {device: facts.number for device, facts in self.ports.items()}


MAX_NUMBER = 0xFFFFFFFF


def numbering(devices: Sequence[str], previous: Mapping[str, int] | None) -> list[int]:
    """The numbers (marks) of these devices: the one each had before; the next
    unused ones for new devices. Without a previous state (or past the largest
    mark): 1, 2, 3... in the given order."""
    if previous:
        start = max(previous.values(), default=0)
        out = []
        for device in devices:
            number = previous.get(device)
            if number is None:
                start += 1
                number = start
            out.append(number)
        if start <= MAX_NUMBER:
            return out
    return list(range(1, len(devices) + 1))


def tables_there() -> bool:
    """Both tables are in the calling thread's namespace (read through
    libnftables: no process), so a delta has something to change."""
    from onestack.host import libnft

    listed = orjson.loads(libnft.run("list tables") or '{"nftables": []}')["nftables"]
    have = {(x["table"]["family"], x["table"]["name"]) for x in listed if "table" in x}
    return {(BRIDGE, TABLE), (INET, TABLE)} <= have


def families(commands: Iterable[Json]) -> set[str]:
    """The families of the tables these commands change."""
    out = set()
    for command in commands:
        for body in command.values():
            for thing in body.values():
                out.add(thing["family"])
    return out


def _key(element: Json | str) -> bytes:
    return orjson.dumps(element, option=orjson.OPT_SORT_KEYS)


class _Commands:
    """Element deletions and additions, by (family, set or map)."""

    def __init__(self) -> None:
        self.deleted: dict[tuple[str, str], list[Json | str | int]] = {}
        self.added: dict[tuple[str, str], list[object]] = {}

    def delete(self, family: str, name: str, keys: Iterable[Json | str | int]) -> None:
        keys = list(keys)
        if keys:
            self.deleted.setdefault((family, name), []).extend(keys)

    def add(self, family: str, name: str, elements: Iterable[object]) -> None:
        elements = list(elements)
        if elements:
            self.added.setdefault((family, name), []).extend(elements)

    def elements(self, family: str, name: str, old: Iterable[Json | str], new: Iterable[Json | str]) -> None:
        """A set's elements from ``old`` to ``new``."""
        before = {_key(e): e for e in old}
        after = {_key(e): e for e in new}
        self.delete(family, name, [e for k, e in before.items() if k not in after])
        self.add(family, name, [e for k, e in after.items() if k not in before])

    def commands(self) -> list[Json]:
        out: list[Json] = []
        for (family, name), keys in self.deleted.items():
            out.append({"delete": {"element": {"family": family, "table": TABLE, "name": name,
                                               "elem": keys}}})
        for (family, name), elements in self.added.items():
            out.append({"add": {"element": {"family": family, "table": TABLE, "name": name,
                                            "elem": elements}}})
        return out


def diff(before: Rendered, after: Rendered) -> list[Json] | None:
    """The commands that make tables holding ``before`` hold ``after`` (an empty
    list: nothing to do), or None when only a full render can (a rules chain
    or a remote group's set comes or goes, or a port's number changed)."""
    if before.chains != after.chains or before.groups.keys() != after.groups.keys():
        return None
    out = _Commands()
    for device in sorted(before.ports.keys() | after.ports.keys()):
        old, new = before.ports.get(device), after.ports.get(device)
        if old == new:
            continue
        if old is not None and new is not None and old.number != new.number:
            return None
        if new is None:
            assert old is not None
            out.delete(BRIDGE, "ports", [device])
            out.delete(BRIDGE, "port_numbers", [device])
            out.delete(INET, "egress", [old.number])
            out.delete(INET, "ingress", [old.number])
        elif old is None:
            out.add(BRIDGE, "ports", [device])
            out.add(BRIDGE, "port_numbers", [[device, new.number]])
            out.add(INET, "egress", [[new.number, jump(new.egress)]])
            out.add(INET, "ingress", [[new.number, jump(new.ingress)]])
        else:
            for name, was, now in (("egress", old.egress, new.egress), ("ingress", old.ingress, new.ingress)):
                if was != now:
                    out.delete(INET, name, [old.number])
                    out.add(INET, name, [[new.number, jump(now)]])
        empty = PortFacts(0, (), (), (), "", "", ())
        o, n = old or empty, new or empty
        out.elements(BRIDGE, "macs", o.macs, n.macs)
        out.elements(BRIDGE, "sources4", o.sources4, n.sources4)
        out.elements(BRIDGE, "sources6", o.sources6, n.sources6)
        out.elements(INET, "ra_sources", [{"concat": [o.number, a]} for a in o.ra_sources],
                     [{"concat": [n.number, a]} for a in n.ra_sources])
    for name, elements in after.groups.items():
        if before.groups[name] != elements:
            out.elements(INET, name, before.groups[name], elements)
    commands = out.commands()
    if before.zone_rule != after.zone_rule:
        commands.append({"flush": {"chain": {"family": INET, "table": TABLE, "name": "zone"}}})
        if after.zone_rule is not None:
            commands.append({"add": {"rule": {"family": INET, "table": TABLE, **after.zone_rule["rule"]}}})
    # deletions before additions (an element may be deleted and added again changed)
    return sorted(commands, key=lambda c: 0 if "flush" in c else 1 if "delete" in c else 2)
