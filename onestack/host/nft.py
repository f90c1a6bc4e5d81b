"""nftables tables, applied whole and atomically with ``nft -j -f -``, in a namespace.

A table is the unit: :func:`apply` replaces the named table with exactly the
chains, sets and rules given, in one nftables transaction (the table is added,
deleted and added again within it), so a packet sees either the old rules or
the new ones, never a mixture, and a rule the caller no longer lists is gone.
Nothing here ever flushes a whole ruleset: tables we did not name are not ours.

Which rules to write is the caller's policy (security groups, NAT, anti-spoofing
belong to the network service); the small builders below only spare it the
JSON syntax of ``libnftables-json(5)``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from onestack.host import netns
from onestack.host.errors import CommandError, HostError

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
Json = dict[str, Any]


@dataclass
class Table:
    """A whole nftables table: ``items`` are ``{"chain": ...}``, ``{"set": ...}``,
    ``{"map": ...}``, ``{"rule": ...}``... objects without family/table (filled in)."""

    family: str
    name: str
    items: list[Json] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise HostError(f"invalid nftables family {self.family!r}")
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise HostError(f"invalid nftables table name {self.name!r}")

    def add(self, *items: Json) -> Table:
        self.items.extend(items)
        return self

    def commands(self) -> list[Json]:
        """The transaction that replaces the table with this one."""
        ident = {"family": self.family, "name": self.name}
        cmds: list[Json] = [{"add": {"table": dict(ident)}},
                            {"delete": {"table": dict(ident)}},
                            {"add": {"table": dict(ident)}}]
        for item in self.items:
            if len(item) != 1:
                raise HostError(f"an nftables item has one key: {item!r}")
            (kind, body), = item.items()
            body = dict(body)
            body["family"] = self.family
            body["table"] = self.name
            cmds.append({"add": {kind: body}})
        return cmds

    def document(self) -> str:
        return json.dumps({"nftables": self.commands()})


# --- builders (pure) ----------------------------------------------------------


def chain(name: str, *, type: str | None = None, hook: str | None = None,
          priority: int | str | None = None, policy: str | None = None,
          dev: str | None = None) -> Json:
    """A chain; a base chain when ``hook`` is given (type defaults to filter)."""
    body: Json = {"name": name}
    if hook is not None:
        body.update(type=type or "filter", hook=hook, prio=0 if priority is None else priority)
        if dev is not None:
            body["dev"] = dev
        if policy is not None:
            body["policy"] = policy
    return {"chain": body}


def rule(chain_name: str, *expr: Json, comment: str | None = None) -> Json:
    body: Json = {"chain": chain_name, "expr": list(expr)}
    if comment is not None:
        body["comment"] = comment
    return {"rule": body}


def named_set(name: str, type: str | Sequence[str], elements: Iterable[Any] = (),
              flags: Sequence[str] = ()) -> Json:
    body: Json = {"name": name, "type": type if isinstance(type, str) else list(type)}
    if flags:
        body["flags"] = list(flags)
    elem = list(elements)
    if elem:
        body["elem"] = elem
    return {"set": body}


def match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, fld: str) -> Json:
    return {"payload": {"protocol": protocol, "field": fld}}


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def ct(key: str) -> Json:
    return {"ct": {"key": key}}


def prefix(cidr: str) -> Json:
    address, _, length = cidr.partition("/")
    if not length:
        raise HostError(f"not a prefix: {cidr!r}")
    return {"prefix": {"addr": address, "len": int(length)}}


def setref(name: str) -> str:
    return f"@{name}"


def ct_state(*states: str) -> Json:
    return match(ct("state"), list(states) if len(states) > 1 else states[0], op="in")


def counter() -> Json:
    return {"counter": None}


def accept() -> Json:
    return {"accept": None}


def drop() -> Json:
    return {"drop": None}


def reject() -> Json:
    return {"reject": None}


def jump(target: str) -> Json:
    return {"jump": {"target": target}}


def goto(target: str) -> Json:
    return {"goto": {"target": target}}


def snat(addr: str, family: str | None = None) -> Json:
    body: Json = {"addr": addr}
    if family:
        body["family"] = family
    return {"snat": body}


def dnat(addr: str, port: int | None = None, family: str | None = None) -> Json:
    body: Json = {"addr": addr}
    if port is not None:
        body["port"] = port
    if family:
        body["family"] = family
    return {"dnat": body}


def masquerade() -> Json:
    return {"masquerade": None}


# --- effects (run inside a namespace) ----------------------------------------


def _nft(args: Sequence[str], stdin: str | None = None) -> str:
    binary = shutil.which("nft")
    if binary is None:
        raise HostError("nft is not installed (Debian package nftables)")
    argv = [binary, "-j", *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc.stdout


def _tables_here() -> list[tuple[str, str]]:
    out = _nft(["list", "tables"])
    doc = json.loads(out) if out.strip() else {"nftables": []}
    return sorted((x["table"]["family"], x["table"]["name"])
                  for x in doc["nftables"] if "table" in x)


def list_tables(ns: str | None) -> list[tuple[str, str]]:
    """(family, name) of every table in namespace ``ns``."""
    return netns.call(ns, _tables_here)


def get_table(ns: str | None, family: str, name: str) -> list[Json] | None:
    """The table's objects as ``nft -j list table`` gives them, or None if absent."""
    Table(family, name)  # validates

    def read() -> list[Json] | None:
        if (family, name) not in _tables_here():
            return None
        doc = json.loads(_nft(["list", "table", family, name]))
        return [x for x in doc["nftables"] if "metainfo" not in x]

    return netns.call(ns, read)


def apply(ns: str | None, table: Table) -> None:
    """Replaces ``table`` in namespace ``ns`` atomically (created if missing)."""
    document = table.document()
    netns.call(ns, _nft, ["-f", "-"], document)


def delete_table(ns: str | None, family: str, name: str) -> bool:
    """Removes the table; True if it existed."""
    Table(family, name)

    def drop_it() -> bool:
        if (family, name) not in _tables_here():
            return False
        _nft(["-f", "-"], json.dumps({"nftables": [
            {"delete": {"table": {"family": family, "name": name}}}]}))
        return True

    return netns.call(ns, drop_it)
