"""The consistent-hash ring: which devices hold which partition.

As in Swift: a name (``/account[/container[/object]]``) is hashed with MD5
together with a cluster-wide secret prefix and suffix; the top ``part_power``
bits of the hash are its *partition*. The ring maps every partition to
``replicas`` devices (the primaries) and orders the other devices as
*handoffs* for when a primary is down. Devices carry a weight (their share of
partitions), a region and a zone (failure domains: replicas of one partition
are spread over as many regions, zones, hosts and devices as there are) and
the host/port of the storage node that serves them, so that storage nodes on
other machines need no format change.

A :class:`RingBuilder` holds the assignment and rebalances it, moving as few
partitions as it can; the ring file is the builder's JSON (the assignment
table as base64 of little-endian 16-bit device ids). This module is pure
logic and file I/O; ``onestack ring`` drives it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import struct
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NONE_DEV = 0xFFFF  # an unassigned replica slot
KINDS = ("account", "container", "object")


@dataclass
class Device:
    id: int
    device: str  # directory name under the storage node's devices root
    weight: float = 100.0
    region: int = 1
    zone: int = 1
    ip: str = "127.0.0.1"
    port: int = 6200
    meta: str = ""

    @property
    def host(self) -> str:
        return f"{self.ip}:{self.port}"

    def tiers(self) -> tuple[tuple[int], tuple[int, int], tuple[int, int, str], tuple[int, int, str, int]]:
        return (
            (self.region,),
            (self.region, self.zone),
            (self.region, self.zone, self.host),
            (self.region, self.zone, self.host, self.id),
        )


class RingError(ValueError):
    """A ring that cannot be built or used as asked."""


def hash_path(prefix: bytes, suffix: bytes, account: str, container: str | None = None,
              obj: str | None = None) -> str:
    """MD5 hex of the salted path (Swift's ``hash_path``)."""
    if obj is not None and container is None:
        raise ValueError("an object needs a container")
    path = "/" + account
    if container is not None:
        path += "/" + container
        if obj is not None:
            path += "/" + obj
    return hashlib.md5(prefix + path.encode("utf-8") + suffix, usedforsecurity=False).hexdigest()


@dataclass
class RingBuilder:
    part_power: int
    replicas: int
    min_part_hours: int = 1
    devices: list[Device] = field(default_factory=list)
    # replica2part2dev[r][p] = device id (NONE_DEV when unassigned)
    assignment: list[array[int]] = field(default_factory=list)
    last_moved: array[int] = field(default_factory=lambda: array("I"))  # hours since epoch
    version: int = 0
    removed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 1 <= self.part_power <= 24:
            raise RingError("part power must be between 1 and 24")
        if not 1 <= self.replicas <= 16:
            raise RingError("replicas must be between 1 and 16")
        if self.min_part_hours < 0:
            raise RingError("min_part_hours must not be negative")
        parts = 1 << self.part_power
        if not self.assignment:
            self.assignment = [array("H", [NONE_DEV]) * parts for _ in range(self.replicas)]
        if not self.last_moved:
            self.last_moved = array("I", [0]) * parts

    @property
    def parts(self) -> int:
        return 1 << self.part_power

    # ---------------------------------------------------------------- devices

    def add_device(self, device: str, *, weight: float = 100.0, region: int = 1, zone: int = 1,
                   ip: str = "127.0.0.1", port: int = 6200, meta: str = "") -> Device:
        if weight < 0:
            raise RingError("weight must not be negative")
        if not device or "/" in device or device in (".", ".."):
            raise RingError(f"invalid device name {device!r}")
        for d in self.devices:
            if d.device == device and d.ip == ip and d.port == port:
                raise RingError(f"device {ip}:{port}/{device} is already in the ring (id {d.id})")
        used = {d.id for d in self.devices} | self.removed
        new_id = next(i for i in range(NONE_DEV) if i not in used)
        dev = Device(id=new_id, device=device, weight=float(weight), region=region, zone=zone,
                     ip=ip, port=port, meta=meta)
        self.devices.append(dev)
        return dev

    def device(self, dev_id: int) -> Device:
        for d in self.devices:
            if d.id == dev_id:
                return d
        raise RingError(f"no device with id {dev_id}")

    def set_weight(self, dev_id: int, weight: float) -> None:
        if weight < 0:
            raise RingError("weight must not be negative")
        self.device(dev_id).weight = float(weight)

    def remove_device(self, dev_id: int) -> None:
        """Take a device out; its partitions move at the next rebalance."""
        dev = self.device(dev_id)
        self.devices.remove(dev)
        self.removed.add(dev.id)

    # ---------------------------------------------------------------- balance

    def _targets(self) -> dict[int, float]:
        weighted = [d for d in self.devices if d.weight > 0]
        total = sum(d.weight for d in weighted)
        if not weighted or total <= 0:
            raise RingError("the ring has no device with a weight above zero")
        slots = self.parts * self.replicas
        return {d.id: slots * d.weight / total for d in weighted}

    def rebalance(self, seed: int | None = None, now: float | None = None) -> int:
        """Assign every replica slot; returns how many slots moved.

        Slots on removed (or zero-weight) devices and replicas that share a
        failure domain with a sibling although a better one exists always
        move; slots on over-full devices move only if the partition was not
        moved in the last ``min_part_hours`` (Swift's rule: one replica of a
        partition moves at a time, so data stays readable while it shifts).
        """
        rng = random.Random(seed)
        before = [array("H", row) for row in self.assignment]
        hour = int((time.time() if now is None else now) // 3600)
        targets = self._targets()
        devs = {d.id: d for d in self.devices if d.id in targets}
        counts = {dev_id: 0 for dev_id in devs}
        for row in self.assignment:
            for dev_id in row:
                if dev_id in counts:
                    counts[dev_id] += 1
        moved = 0
        gather: list[tuple[int, int]] = []  # (part, replica) slots to (re)assign
        # 1. slots on devices no longer in the ring (or weight 0), and empty slots
        for r, row in enumerate(self.assignment):
            for p in range(self.parts):
                if row[p] not in devs:
                    if row[p] != NONE_DEV:
                        moved += 1
                    row[p] = NONE_DEV
                    gather.append((p, r))
        # 2. replicas of one partition that share a domain needlessly
        tier_count = self._tier_width(devs.values())
        for p in range(self.parts):
            members = [(r, self.assignment[r][p]) for r in range(self.replicas)
                       if self.assignment[r][p] != NONE_DEV]
            for level in range(4):
                seen: dict[Any, int] = {}
                for _r, dev_id in members:
                    key = devs[dev_id].tiers()[level]
                    seen[key] = seen.get(key, 0) + 1
                limit = -(-self.replicas // tier_count[level]) if tier_count[level] else self.replicas
                for r, dev_id in list(members):
                    key = devs[dev_id].tiers()[level]
                    if seen[key] > limit and (p, r) not in gather:
                        seen[key] -= 1
                        counts[dev_id] -= 1
                        self.assignment[r][p] = NONE_DEV
                        members.remove((r, dev_id))
                        gather.append((p, r))
                        moved += 1
        # 3. over-full devices give up slots of partitions free to move
        for dev_id, target in targets.items():
            excess = counts[dev_id] - int(target + 0.999999)
            if excess <= 0:
                continue
            candidates = [(p, r) for r, row in enumerate(self.assignment)
                          for p in range(self.parts) if row[p] == dev_id
                          and hour - self.last_moved[p] >= self.min_part_hours]
            rng.shuffle(candidates)
            for p, r in candidates[:excess]:
                self.assignment[r][p] = NONE_DEV
                counts[dev_id] -= 1
                gather.append((p, r))
                moved += 1
        # 4. place every gathered slot
        rng.shuffle(gather)
        gather.sort(key=lambda pr: pr[1])
        for p, r in gather:
            dev_id = self._choose(p, devs, counts, targets)
            self.assignment[r][p] = dev_id
            counts[dev_id] += 1
            if before[r][p] != dev_id:
                self.last_moved[p] = hour
        self.version += 1
        return sum(1 for r, row in enumerate(self.assignment) for p in range(self.parts)
                   if before[r][p] != NONE_DEV and before[r][p] != row[p])

    def _tier_width(self, devs: Any) -> list[int]:
        devs = list(devs)
        return [len({d.tiers()[level] for d in devs}) for level in range(4)]

    def _choose(self, part: int, devs: dict[int, Device], counts: dict[int, int],
                targets: dict[int, float]) -> int:
        used = [devs[self.assignment[r][part]] for r in range(self.replicas)
                if self.assignment[r][part] in devs]
        used_tiers = [set(d.tiers()[level] for d in used) for level in range(4)]
        best: tuple[Any, ...] | None = None
        best_id = NONE_DEV
        for dev_id, dev in devs.items():
            tiers = dev.tiers()
            if tiers[3] in used_tiers[3]:
                continue
            # prefer a new region, then zone, then host; then the most wanted
            overlap = tuple(tiers[level] in used_tiers[level] for level in range(3))
            wanted = (targets[dev_id] - counts[dev_id]) / max(targets[dev_id], 1e-9)
            key = (overlap, -wanted, dev_id)
            if best is None or key < best:
                best, best_id = key, dev_id
        if best_id == NONE_DEV:
            raise RingError(
                f"not enough devices for {self.replicas} replicas (have {len(devs)})")
        return best_id

    def balance(self) -> float:
        """The worst device's deviation from its share, in percent."""
        targets = self._targets()
        counts = dict.fromkeys(targets, 0)
        for row in self.assignment:
            for dev_id in row:
                if dev_id in counts:
                    counts[dev_id] += 1
        return max(abs(counts[d] - t) * 100.0 / t for d, t in targets.items())

    # ---------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "part_power": self.part_power,
            "replicas": self.replicas,
            "min_part_hours": self.min_part_hours,
            "version": self.version,
            "devices": [asdict(d) for d in self.devices],
            "removed": sorted(self.removed),
            "assignment": [_pack(row) for row in self.assignment],
            "last_moved": base64.b64encode(_le(self.last_moved).tobytes()).decode(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RingBuilder:
        if data.get("format") != 1:
            raise RingError("unknown ring file format")
        moved = array("I")
        moved.frombytes(base64.b64decode(data["last_moved"]))
        return cls(
            part_power=int(data["part_power"]),
            replicas=int(data["replicas"]),
            min_part_hours=int(data["min_part_hours"]),
            devices=[Device(**d) for d in data["devices"]],
            assignment=[_unpack(row) for row in data["assignment"]],
            last_moved=_le(moved),
            version=int(data["version"]),
            removed=set(data.get("removed", [])),
        )

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> RingBuilder:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RingError(f"cannot read ring {path}: {exc}") from None


def _le(a: array[int]) -> array[int]:
    if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover - big-endian hosts
        a = array(a.typecode, a)
        a.byteswap()
    return a


def _pack(row: array[int]) -> str:
    return base64.b64encode(_le(row).tobytes()).decode()


def _unpack(text: str) -> array[int]:
    row = array("H")
    row.frombytes(base64.b64decode(text))
    return _le(row)


class Ring:
    """A read-only view of a built ring, for lookups on the request path."""

    def __init__(self, builder: RingBuilder, hash_prefix: bytes, hash_suffix: bytes) -> None:
        if any(dev == NONE_DEV for row in builder.assignment for dev in row):
            raise RingError("the ring is not balanced yet (run `onestack ring rebalance`)")
        self.builder = builder
        self.part_power = builder.part_power
        self.replicas = builder.replicas
        self.prefix = hash_prefix
        self.suffix = hash_suffix
        self._shift = 32 - builder.part_power
        self.devs = {d.id: d for d in builder.devices}
        self._rows = [list(row) for row in builder.assignment]

    @property
    def partition_count(self) -> int:
        return 1 << self.part_power

    def hash(self, account: str, container: str | None = None, obj: str | None = None) -> str:
        return hash_path(self.prefix, self.suffix, account, container, obj)

    def partition_of_hash(self, name_hash: str) -> int:
        return int(name_hash[:8], 16) >> self._shift

    def get_part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        return self.partition_of_hash(self.hash(account, container, obj))

    def get_part_nodes(self, part: int) -> list[Device]:
        return [self.devs[row[part]] for row in self._rows]

    def get_nodes(self, account: str, container: str | None = None,
                  obj: str | None = None) -> tuple[int, list[Device]]:
        part = self.get_part(account, container, obj)
        return part, self.get_part_nodes(part)

    def get_more_nodes(self, part: int) -> Iterator[Device]:
        """Handoff devices for a partition: the others, new failure domains
        first, in an order fixed by the partition."""
        primaries = self.get_part_nodes(part)
        used_zones = {(d.region, d.zone) for d in primaries}
        used_hosts = {d.host for d in primaries}
        primary_ids = {d.id for d in primaries}

        def order(dev: Device) -> tuple[int, int, str]:
            salt = hashlib.md5(f"{part}-{dev.id}".encode(), usedforsecurity=False).hexdigest()
            return ((dev.region, dev.zone) in used_zones, dev.host in used_hosts, salt)

        others = [d for d in self.devs.values() if d.id not in primary_ids and d.weight > 0]
        yield from sorted(others, key=order)

    def nodes_for_device(self, dev_id: int) -> Device:
        return self.devs[dev_id]
