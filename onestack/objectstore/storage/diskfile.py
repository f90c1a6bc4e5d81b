"""One device's object files: atomic replica writes, tombstones, metadata.

Layout (Swift's): ``<device>/objects/<partition>/<suffix>/<hash>/`` holds the
object's files, named by their timestamp:

* ``<ts>.data`` — the body, then the metadata as JSON, then a 16-byte trailer
  (metadata length, magic). One file: body and metadata land together.
* ``<ts>.ts`` — a tombstone (a DELETE at that time); JSON metadata inside.
* ``<ts>.meta`` — metadata set by a POST after the data was written.

A write goes to ``<device>/tmp/`` first, is fsynced, and renamed into the
hash directory (then the directory is fsynced): a killed process leaves a
stray temporary, never a half-written object. The newest ``.data`` or ``.ts``
wins (last write wins by timestamp); older files are removed after each write.
A file that cannot be parsed is moved to ``<device>/quarantined/objects/``.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

MAGIC = b"onestk01"
TRAILER_SIZE = 16
SYNC_EVERY = 64 << 20
READ_CHUNK = 1 << 20
DATA, TOMB, META = ".data", ".ts", ".meta"


class DiskError(OSError):
    """A device failed (unwritable, unreadable): the node answers 507/503."""


class Conflict(Exception):
    """A newer (or equal) timestamp is already on disk."""

    def __init__(self, existing: str) -> None:
        super().__init__(existing)
        self.existing = existing


def suffix_of(name_hash: str) -> str:
    return name_hash[-3:]


def hash_dir(device_path: str, part: int, name_hash: str) -> str:
    return f"{device_path}/objects/{part}/{name_hash[-3:]}/{name_hash}"


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ts_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


@dataclass
class DirState:
    """What a hash directory holds, newest first."""

    data: str | None = None  # file name of the newest .data (if newer than any .ts)
    tomb: str | None = None  # file name of the newest .ts (if newer than any .data)
    meta: str | None = None  # newest .meta newer than the data
    obsolete: list[str] = field(default_factory=list)

    @property
    def timestamp(self) -> str | None:
        newest = self.data or self.tomb
        return _ts_of(newest) if newest else None


def scan(names: list[str]) -> DirState:
    """Sort a hash directory's file names into what counts and what is obsolete."""
    state = DirState()
    for name in sorted(names, reverse=True):
        ext = name[name.rfind("."):] if "." in name else ""
        if ext not in (DATA, TOMB, META) or len(name) < 10:
            continue  # foreign files are left alone
        if state.data is None and state.tomb is None:
            if ext == META:
                if state.meta is None:
                    state.meta = name
                else:
                    state.obsolete.append(name)
            elif ext == DATA:
                state.data = name
            else:
                state.tomb = name
                if state.meta is not None:  # a .meta older than... newer than the tombstone
                    state.obsolete.append(state.meta)
                    state.meta = None
        else:
            state.obsolete.append(name)
    return state


def read_data_metadata(fd: int, size: int) -> tuple[dict[str, Any], int]:
    """The metadata of a ``.data`` file and the length of its body."""
    if size < TRAILER_SIZE:
        raise ValueError("file shorter than its trailer")
    trailer = os.pread(fd, TRAILER_SIZE, size - TRAILER_SIZE)
    if trailer[8:] != MAGIC:
        raise ValueError("bad trailer")
    meta_len = int.from_bytes(trailer[:8], "big")
    body_len = size - TRAILER_SIZE - meta_len
    if meta_len <= 0 or body_len < 0:
        raise ValueError("bad metadata length")
    raw = os.pread(fd, meta_len, body_len)
    meta = orjson.loads(raw)
    if not isinstance(meta, dict):
        raise ValueError("metadata is not an object")
    return meta, body_len


def encode_trailer(metadata: dict[str, Any]) -> bytes:
    raw = orjson.dumps(metadata)
    return raw + len(raw).to_bytes(8, "big") + MAGIC


@dataclass
class OpenObject:
    """An object's newest data file, open for reading."""

    fd: int
    path: str
    metadata: dict[str, Any]
    length: int
    timestamp: str
    closed: bool = False

    def read(self, start: int, end: int, chunk: int = READ_CHUNK) -> bytes:
        """Bytes ``[start, end)`` (at most ``chunk``); blocking."""
        return os.pread(self.fd, min(chunk, end - start), start)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        while start < end:
            data = self.read(start, end)
            if not data:
                raise DiskError(f"{self.path}: short read")
            start += len(data)
            yield data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


@dataclass
class Found:
    """The outcome of looking an object up on one device."""

    status: int  # 200 found, 404 missing or deleted
    timestamp: str | None = None  # of the data or the tombstone
    obj: OpenObject | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None  # the whole body of a small object, read at once


# user metadata a POST replaces, and the few headers it may set too (Swift's
# object server allowed_headers); an SLO's X-Static-Large-Object and the
# system metadata stay the data's (Swift's DATAFILE_SYSTEM_META)
POST_HEADERS = frozenset({
    "content-disposition", "content-encoding", "x-delete-at", "x-object-manifest",
    "cache-control", "content-language", "expires", "x-robots-tag",
})


def is_post_replaceable(key: str) -> bool:
    k = key.lower()
    return k.startswith("x-object-meta-") or k.startswith("x-object-transient-sysmeta-") or k in POST_HEADERS


def is_data_only(key: str) -> bool:
    """Metadata a POST's ``.meta`` never overrides."""
    k = key.lower()
    return k == "x-static-large-object" or k.startswith("x-object-sysmeta-")


class Device:
    """The object files of one device directory."""

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def _tmp(self) -> str:
        tmp = f"{self.path}/tmp"
        if tmp not in self._made:
            os.makedirs(tmp, exist_ok=True)
            self._made.add(tmp)
        return f"{tmp}/{uuid.uuid4().hex}"

    def open_tmp(self) -> tuple[str, int]:
        """A new temporary file on this device (its directory is made again if
        the device was emptied meanwhile)."""
        path = self._tmp()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            return path, os.open(path, flags, 0o600)
        except FileNotFoundError:
            self._made.clear()
            path = self._tmp()
            return path, os.open(path, flags, 0o600)

    # ---------------------------------------------------------------- reading

    def lookup(self, part: int, name_hash: str) -> Found:
        """Open the newest data (or report the tombstone); blocking."""
        directory = hash_dir(self.path, part, name_hash)
        for _attempt in range(3):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                return Found(404)
            except NotADirectoryError:
                return Found(404)
            state = scan(names)
            if state.tomb is not None:
                meta = self._small(f"{directory}/{state.tomb}") or {}
                return Found(404, _ts_of(state.tomb), metadata=meta)
            if state.data is None:
                return Found(404)
            path = f"{directory}/{state.data}"
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # replaced by a newer write meanwhile: look again
            try:
                meta, length = read_data_metadata(fd, os.fstat(fd).st_size)
            except (ValueError, OSError) as exc:
                os.close(fd)
                self.quarantine(directory, state.data, str(exc))
                continue
            if state.meta is not None:
                extra = self._small(f"{directory}/{state.meta}")
                if extra is not None:
                    meta = {k: v for k, v in meta.items() if not is_post_replaceable(k)}
                    meta.update((k, v) for k, v in extra.items() if not is_data_only(k))
            ts = _ts_of(state.data)
            return Found(200, ts, OpenObject(fd, path, meta, length, ts), meta)
        return Found(404)

    def _small(self, path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
            value = orjson.loads(data) if data else {}
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    def timestamps(self, part: int, name_hash: str) -> DirState:
        try:
            return scan(os.listdir(hash_dir(self.path, part, name_hash)))
        except (FileNotFoundError, NotADirectoryError):
            return DirState()

    # ---------------------------------------------------------------- writing

    def writer(self, part: int, name_hash: str, timestamp: str) -> ObjectWriter:
        return ObjectWriter(self, part, name_hash, timestamp)

    def put_whole(self, part: int, name_hash: str, timestamp: str, body: bytes,
                  metadata: dict[str, Any]) -> None:
        """Write a small object in one call (raises Conflict / DiskError)."""
        w = self.writer(part, name_hash, timestamp)
        try:
            w.write(body)
            w.commit(metadata)
        finally:
            w.abort()

    def write_small(self, part: int, name_hash: str, timestamp: str, ext: str,
                    metadata: dict[str, Any], check_newer: bool = True) -> None:
        """A tombstone or a .meta file, atomically (raises Conflict)."""
        directory = hash_dir(self.path, part, name_hash)
        if check_newer:
            current = self.timestamps(part, name_hash)
            newest = current.timestamp
            if ext == META and current.meta is not None:
                newest = max(newest or "", _ts_of(current.meta))
            if newest is not None and newest >= timestamp:
                raise Conflict(newest)
        tmp = ""
        try:
            tmp, fd = self.open_tmp()
            try:
                os.write(fd, orjson.dumps(metadata))
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            self._install(tmp, directory, f"{timestamp}{ext}")
        except OSError as exc:
            if tmp:
                _unlink(tmp)
            raise DiskError(str(exc)) from exc

    def _install(self, tmp: str, directory: str, name: str) -> None:
        """Rename a complete temporary into the hash directory.

        As Swift does, directories made here are fsynced (up to the partition),
        so a new object's path survives a power cut; the rename itself reaches
        the disk with the file system's next journal commit.
        """
        try:
            os.rename(tmp, f"{directory}/{name}")
        except FileNotFoundError:
            made = _makedirs(directory)
            os.rename(tmp, f"{directory}/{name}")
            if self.fsync:
                for path in made:
                    fsync_dir(os.path.dirname(path))
                fsync_dir(directory)
        self.cleanup(directory)

    def cleanup(self, directory: str) -> DirState:
        """Remove what newer files made obsolete; an empty directory goes too."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return DirState()
        state = scan(names)
        for name in state.obsolete:
            _unlink(f"{directory}/{name}")
        return state

    def delete_hash_dir(self, part: int, name_hash: str) -> None:
        directory = hash_dir(self.path, part, name_hash)
        try:
            for name in os.listdir(directory):
                _unlink(f"{directory}/{name}")
            os.rmdir(directory)
        except OSError:
            pass

    def quarantine(self, directory: str, name: str, reason: str) -> None:
        """Move a damaged file aside; the replicator restores a good copy."""
        name_hash = os.path.basename(directory)
        target = f"{self.path}/quarantined/objects/{name_hash}"
        try:
            os.makedirs(target, exist_ok=True)
            os.rename(f"{directory}/{name}", f"{target}/{name}.{uuid.uuid4().hex[:8]}")
            log.warning("quarantined %s/%s: %s", directory, name, reason)
        except OSError:
            log.exception("could not quarantine %s/%s", directory, name)


class ObjectWriter:
    """Streams one replica to a temporary file; ``commit`` makes it the object."""

    def __init__(self, device: Device, part: int, name_hash: str, timestamp: str) -> None:
        self.device = device
        self.directory = hash_dir(device.path, part, name_hash)
        self.timestamp = timestamp
        self.part = part
        self.name_hash = name_hash
        self.written = 0
        self._unsynced = 0
        self._syncer: _Syncer | None = None
        newest = device.timestamps(part, name_hash).timestamp
        if newest is not None and newest >= timestamp:
            raise Conflict(newest)
        self.tmp = ""
        self.fd: int | None = None
        try:
            self.tmp, self.fd = device.open_tmp()
        except OSError as exc:
            raise DiskError(str(exc)) from exc

    def write(self, data: bytes | memoryview) -> None:
        if self.fd is None:
            raise DiskError("write after close")
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as exc:
            raise DiskError(str(exc)) from exc
        self.written += len(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY and self.device.fsync:
            self._unsynced = 0
            if self._syncer is None:
                self._syncer = _Syncer(self.fd)
            self._syncer.wanted.set()

    def commit(self, metadata: dict[str, Any]) -> None:
        """Append the metadata, fsync, rename into place (raises Conflict/DiskError)."""
        if self.fd is None:
            raise DiskError("commit after close")
        fd = self.fd
        try:
            self.write(encode_trailer(metadata))
            if self._syncer is not None:
                self._syncer.stop()
                self._syncer = None
            if self.device.fsync:
                os.fdatasync(fd)
        except OSError as exc:
            raise DiskError(str(exc)) from exc
        os.close(fd)
        self.fd = None
        newest = self.device.timestamps(self.part, self.name_hash).timestamp
        if newest is not None and newest >= self.timestamp:
            raise Conflict(newest)
        try:
            self.device._install(self.tmp, self.directory, f"{self.timestamp}{DATA}")
        except OSError as exc:
            raise DiskError(str(exc)) from exc
        self.tmp = ""

    def abort(self) -> None:
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp:
            _unlink(self.tmp)
            self.tmp = ""


class _Syncer:
    """fdatasync of one file in a thread whenever asked, so the final one is short."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.wanted = threading.Event()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="object-sync", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.closing:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fdatasync reports it

    def stop(self) -> None:
        self.closing = True
        self.wanted.set()
        self.thread.join()


def _makedirs(directory: str) -> list[str]:
    """Make ``directory`` and its missing parents; the ones made, outermost first."""
    missing = []
    path = directory
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
    return list(reversed(missing))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def iter_hash_dirs(device_path: str) -> Iterator[tuple[int, str, str]]:
    """Every (partition, hash, directory) on a device (for replicator/auditor)."""
    root = f"{device_path}/objects"
    try:
        parts = os.listdir(root)
    except FileNotFoundError:
        return
    for part in parts:
        if not part.isdigit():
            continue
        pdir = f"{root}/{part}"
        try:
            suffixes = os.listdir(pdir)
        except OSError:
            continue
        for suffix in suffixes:
            sdir = f"{pdir}/{suffix}"
            try:
                hashes = os.listdir(sdir)
            except OSError:
                continue
            for name_hash in hashes:
                yield int(part), name_hash, f"{sdir}/{name_hash}"


def sweep_tmp(devices_root: str, older_than: float = 0.0) -> int:
    """Remove temporaries a killed process left (``<device>/tmp/*``)."""
    import time

    count = 0
    try:
        devices = os.listdir(devices_root)
    except FileNotFoundError:
        return 0
    now = time.time()
    for dev in devices:
        tmp = f"{devices_root}/{dev}/tmp"
        try:
            names = os.listdir(tmp)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            path = f"{tmp}/{name}"
            try:
                if older_than and now - os.stat(path).st_mtime < older_than:
                    continue
                os.unlink(path)
                count += 1
            except OSError:
                pass
    return count
