"""The replicator: every replica where the ring wants it, and only there.

One pass walks each local device. For every partition it holds, it compares
each object (its newest ``.data``/``.ts`` and ``.meta``) with the other
primaries and copies what they lack or hold older; a device that is not a
primary for a partition (a handoff) hands its objects to the primaries and
removes them once every primary has them. Databases (containers, accounts)
are replicated the same way: a missing replica is copied whole, an existing
one gets the rows it has not seen (sync points per peer) and the metadata.

Copies between devices of this node are file copies (temporary file, fsync,
rename); a device on another node is reported as unreachable until a
node-to-node transfer exists (the ring already says where it is).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

from onestack.objectstore.ring import Device, Ring
from onestack.objectstore.storage import dbs
from onestack.objectstore.storage.diskfile import DATA, META, TOMB, fsync_dir, iter_hash_dirs, scan
from onestack.objectstore.storage.server import StorageServer

log = logging.getLogger(__name__)


@dataclass
class ReplicationStats:
    objects_checked: int = 0
    objects_copied: int = 0
    handoffs_removed: int = 0
    dbs_checked: int = 0
    dbs_copied: int = 0
    rows_merged: int = 0
    unreachable: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {
            "errors": self.errors[:20]}


class Replicator:
    def __init__(self, server: StorageServer, rings: dict[str, Ring],
                 is_local: Any) -> None:
        self.server = server
        self.rings = rings
        self.is_local = is_local  # (ring.Device) -> bool

    def local_devices(self, ring: Ring) -> list[Device]:
        return [d for d in ring.devs.values() if self.is_local(d)]

    def run(self) -> ReplicationStats:
        """One pass over objects, containers and accounts (blocking)."""
        stats = ReplicationStats()
        self.objects(stats)
        for kind in ("container", "account"):
            self.databases(kind, stats)
        return stats

    # ---------------------------------------------------------------- objects

    def objects(self, stats: ReplicationStats) -> None:
        ring = self.rings["object"]
        for dev in self.local_devices(ring):
            path = self.server.device(dev.device).path
            by_part: dict[int, list[tuple[str, str]]] = {}
            for part, name_hash, directory in iter_hash_dirs(path):
                by_part.setdefault(part, []).append((name_hash, directory))
            for part, entries in by_part.items():
                if part >= ring.partition_count:
                    continue
                primaries = ring.get_part_nodes(part)
                is_primary = any(p.id == dev.id for p in primaries)
                peers = [p for p in primaries if p.id != dev.id]
                for name_hash, directory in entries:
                    stats.objects_checked += 1
                    ok = self._sync_object(dev, peers, part, name_hash, directory, stats)
                    if not is_primary and ok:
                        shutil.rmtree(directory, ignore_errors=True)
                        stats.handoffs_removed += 1

    def _sync_object(self, dev: Device, peers: list[Device], part: int, name_hash: str,
                     directory: str, stats: ReplicationStats) -> bool:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return True
        mine = scan(names)
        newest = mine.data or mine.tomb
        if newest is None:
            if not names:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
            return True
        wanted = [n for n in (newest, mine.meta) if n]
        all_ok = True
        for peer in peers:
            if not self.is_local(peer):
                stats.unreachable += 1
                all_ok = False
                continue
            theirs = self.server.device(peer.device).timestamps(part, name_hash)
            their_newest = theirs.data or theirs.tomb
            missing = []
            if their_newest is None or their_newest < newest:
                missing.append(newest)
            if mine.meta and (theirs.meta is None or theirs.meta < mine.meta) and (
                    their_newest is None or their_newest <= newest):
                missing.append(mine.meta)
            for name in missing:
                try:
                    self._copy_file(directory, peer, part, name_hash, name)
                    stats.objects_copied += 1
                except OSError as exc:
                    all_ok = False
                    stats.errors.append(f"{directory}/{name} -> {peer.device}: {exc}")
        return all_ok and bool(wanted)

    def _copy_file(self, directory: str, peer: Device, part: int, name_hash: str,
                   name: str) -> None:
        target = self.server.device(peer.device)
        tmp, fd = target.open_tmp()
        with open(f"{directory}/{name}", "rb") as src, open(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            if target.fsync:
                os.fdatasync(dst.fileno())
        dest_dir = f"{target.path}/objects/{part}/{name_hash[-3:]}/{name_hash}"
        os.makedirs(dest_dir, exist_ok=True)
        os.rename(tmp, f"{dest_dir}/{name}")
        if target.fsync:
            fsync_dir(dest_dir)
        target.cleanup(dest_dir)

    # ---------------------------------------------------------------- databases

    def databases(self, kind: str, stats: ReplicationStats) -> None:
        ring = self.rings[kind]
        cls: type[dbs.Broker] = dbs.ContainerBroker if kind == "container" else dbs.AccountBroker
        for dev in self.local_devices(ring):
            root = f"{self.server.device(dev.device).path}/{kind}s"
            for part, name_hash, directory in _walk_dbs(root):
                db_file = f"{directory}/{name_hash}.db"
                if not os.path.exists(db_file) or part >= ring.partition_count:
                    continue
                stats.dbs_checked += 1
                primaries = ring.get_part_nodes(part)
                is_primary = any(p.id == dev.id for p in primaries)
                broker = self.server.brokers.get(cls, db_file)
                all_ok = True
                for peer in (p for p in primaries if p.id != dev.id):
                    if not self.is_local(peer):
                        stats.unreachable += 1
                        all_ok = False
                        continue
                    try:
                        self._sync_db(broker, cls, kind, peer, part, name_hash, stats)
                    except (OSError, sqlite3.Error) as exc:
                        all_ok = False
                        stats.errors.append(f"{db_file} -> {peer.device}: {exc}")
                if not is_primary and all_ok:
                    self.server.brokers.forget(db_file)
                    shutil.rmtree(directory, ignore_errors=True)
                    stats.handoffs_removed += 1

    def _sync_db(self, broker: dbs.Broker, cls: type[dbs.Broker], kind: str, peer: Device,
                 part: int, name_hash: str, stats: ReplicationStats) -> None:
        peer_path = dbs.db_path(self.server.device(peer.device).path, kind, part, name_hash)
        if not os.path.exists(peer_path):
            self._copy_db(broker, peer_path)
            stats.dbs_copied += 1
            return
        other = self.server.brokers.get(cls, peer_path)
        info = broker.stat()
        theirs = other.stat()
        point = other.sync_point(info["id"])
        while True:
            rows = broker.rows_since(point)
            if not rows:
                break
            other.merge_items([tuple(r[1:]) for r in rows])
            stats.rows_merged += len(rows)
            point = int(rows[-1][0])
        other.set_sync_point(info["id"], point)
        other.set_timestamps(info["put_timestamp"], info["delete_timestamp"])
        updates = {k: (v[0], v[1]) for k, v in info["metadata"].items()
                   if theirs["metadata"].get(k, ["", ""])[1] < v[1]}
        if updates:
            other.update_metadata(updates)
        if kind == "container":
            self.server.dirty.add((peer.device, part, name_hash))

    def _copy_db(self, broker: dbs.Broker, peer_path: str) -> None:
        directory = os.path.dirname(peer_path)
        os.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.{uuid.uuid4().hex}.tmp"
        with broker.lock:
            broker.commit_pending()
            dest = sqlite3.connect(tmp)
            try:
                broker.conn().backup(dest)
                dest.execute("UPDATE stat SET id = ?", (uuid.uuid4().hex,))
                dest.commit()
            finally:
                dest.close()
        os.rename(tmp, peer_path)


def _walk_dbs(root: str) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    try:
        parts = os.listdir(root)
    except FileNotFoundError:
        return out
    for part in parts:
        if not part.isdigit():
            continue
        pdir = f"{root}/{part}"
        for suffix in _listdir(pdir):
            for name_hash in _listdir(f"{pdir}/{suffix}"):
                out.append((int(part), name_hash, f"{pdir}/{suffix}/{name_hash}"))
    return out


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


__all__ = ["DATA", "META", "TOMB", "ReplicationStats", "Replicator"]
