"""The auditor: reads every object replica and checks it against its ETag.

A replica whose body no longer hashes to the MD5 recorded with it, or whose
file cannot be parsed, is moved to ``<device>/quarantined/objects/``; the
replicator then restores a good copy from another replica.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass

from onestack.objectstore.ring import Ring
from onestack.objectstore.storage.diskfile import iter_hash_dirs, read_data_metadata, scan
from onestack.objectstore.storage.server import StorageServer

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass
class AuditStats:
    checked: int = 0
    quarantined: int = 0
    bytes_read: int = 0


class Auditor:
    def __init__(self, server: StorageServer, ring: Ring, is_local: object,
                 bytes_per_second: int = 0) -> None:
        self.server = server
        self.ring = ring
        self.is_local = is_local
        self.bytes_per_second = bytes_per_second

    def run(self) -> AuditStats:
        stats = AuditStats()
        started = time.monotonic()
        for dev in self.ring.devs.values():
            if not self.is_local(dev):  # type: ignore[operator]
                continue
            device = self.server.device(dev.device)
            for _part, _hash, directory in iter_hash_dirs(device.path):
                try:
                    state = scan(os.listdir(directory))
                except OSError:
                    continue
                if state.data is None:
                    continue
                stats.checked += 1
                reason = self._check(f"{directory}/{state.data}", stats)
                if reason:
                    device.quarantine(directory, state.data, reason)
                    stats.quarantined += 1
                if self.bytes_per_second:
                    due = started + stats.bytes_read / self.bytes_per_second
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(min(delay, 1.0))
        return stats

    def _check(self, path: str, stats: AuditStats) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                meta, length = read_data_metadata(fd, os.fstat(fd).st_size)
            except (ValueError, OSError) as exc:
                return f"unreadable metadata: {exc}"
            md5 = hashlib.md5(usedforsecurity=False)
            pos = 0
            while pos < length:
                data = os.pread(fd, min(CHUNK, length - pos), pos)
                if not data:
                    return "short file"
                md5.update(data)
                pos += len(data)
            stats.bytes_read += length
            if str(meta.get("Content-Length", length)) != str(length):
                return "length mismatch"
            if md5.hexdigest() != meta.get("ETag"):
                return f"ETag {meta.get('ETag')} but the data hashes to {md5.hexdigest()}"
            return None
        finally:
            os.close(fd)
