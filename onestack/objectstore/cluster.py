"""Where the object store keeps its rings and devices, and the hash secret.

    <state_dir>/objectstore/
        hash_path.json             the cluster's hash-path prefix and suffix (never change)
        rings/{account,container,object}.ring.json
        devices/d1, d2, d3         the all-in-one storage node's devices

The first start writes the secret and, when no ring exists, three rings over
``devices`` directories (one zone each). A running cloud picks up a ring
changed by ``onestack ring`` on its next lookup after the file's mtime moves.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

from onestack.objectstore.ring import KINDS, Ring, RingBuilder, RingError


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ring_dir = root / "rings"
        self.devices_root = root / "devices"
        self._lock = threading.Lock()
        self._rings: dict[str, tuple[float, Ring]] = {}
        self._secret: tuple[bytes, bytes] | None = None
        self._checked: dict[str, float] = {}
        self.reload_interval = 1.0  # seconds between checks of a ring file's mtime

    # ---------------------------------------------------------------- secret

    @property
    def secret(self) -> tuple[bytes, bytes]:
        if self._secret is None:
            path = self.root / "hash_path.json"
            if not path.exists():
                self.root.mkdir(parents=True, exist_ok=True)
                data = {"prefix": secrets.token_hex(8), "suffix": secrets.token_hex(8)}
                tmp = path.with_name(".hash_path.json.tmp")
                tmp.write_text(json.dumps(data))
                try:
                    os.link(tmp, path)  # never replace a secret another process wrote
                except FileExistsError:
                    pass
                tmp.unlink()
            data = json.loads(path.read_text())
            self._secret = (data["prefix"].encode(), data["suffix"].encode())
        return self._secret

    # ---------------------------------------------------------------- rings

    def ring_path(self, kind: str) -> Path:
        if kind not in KINDS:
            raise RingError(f"unknown ring {kind!r} (one of {', '.join(KINDS)})")
        return self.ring_dir / f"{kind}.ring.json"

    def ensure_default(self, part_power: int, replicas: int, devices: int,
                       min_part_hours: int = 1) -> None:
        """First start: a ring per kind over ``devices`` local directories."""
        _ = self.secret
        for kind in KINDS:
            path = self.ring_path(kind)
            if path.exists():
                continue
            builder = RingBuilder(part_power, min(replicas, devices), min_part_hours)
            for i in range(1, devices + 1):
                builder.add_device(f"d{i}", zone=i)
            builder.rebalance(seed=1)
            builder.save(path)
        for i in range(1, devices + 1):
            (self.devices_root / f"d{i}").mkdir(parents=True, exist_ok=True)

    def ring(self, kind: str) -> Ring:
        cached = self._rings.get(kind)
        now = time.monotonic()
        if cached is not None and now - self._checked.get(kind, 0.0) < self.reload_interval:
            return cached[1]
        self._checked[kind] = now
        path = self.ring_path(kind)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise RingError(f"no {kind} ring at {path}") from None
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with self._lock:
            prefix, suffix = self.secret
            ring = Ring(RingBuilder.load(path), prefix, suffix)
            self._rings[kind] = (mtime, ring)
            return ring

    @property
    def account_ring(self) -> Ring:
        return self.ring("account")

    @property
    def container_ring(self) -> Ring:
        return self.ring("container")

    @property
    def object_ring(self) -> Ring:
        return self.ring("object")
