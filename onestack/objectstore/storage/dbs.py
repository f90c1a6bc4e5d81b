"""Container and account databases: one SQLite file per replica, as in Swift.

A container replica is ``<device>/containers/<part>/<suffix>/<hash>/<hash>.db``
holding its object rows (name, timestamp, size, type, etag, deleted) and one
stat row (counts kept by triggers, so they stay right however many updates
race). An account replica is the same for its containers.

An object row keeps three times, as Swift's does: ``created_at`` (the data: a
PUT or DELETE; size, etag and deleted go with it), ``ctype_timestamp`` (the
content type, which a POST may change) and ``meta_timestamp`` (the last POST:
the listing's ``last_modified``). Each part of a row is merged by its own
time, so a POST's update and a newer PUT's land right in either order. The
etag column may carry parameters bound to the data (``; swift_bytes=N``,
``; slo_etag=...``, ``; symlink_target=...``): they change only with it.
A row that changes gets a new ROWID, so the replicator's sync points see it.

Updates from object servers are appended to ``<hash>.db.pending`` (one line
each, cheap) and merged into the database in one transaction when the file
grows, before any read, and by the updater: Swift's design, which keeps a
burst of small PUTs from each paying a database transaction. Every row keeps
its timestamp, so merging (from the pending file, or from another replica by
the replicator) is idempotent and the newest row wins. Metadata is a JSON
object of ``name -> [value, timestamp]``, merged key by key.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

PENDING_CAP = 131072  # merge the pending file once it is this big (Swift's value)
ZERO_TS = "0000000000.00000"


def db_dir(device_path: str, kind: str, part: int, name_hash: str) -> str:
    return f"{device_path}/{kind}s/{part}/{name_hash[-3:]}/{name_hash}"


def db_path(device_path: str, kind: str, part: int, name_hash: str) -> str:
    return f"{db_dir(device_path, kind, part, name_hash)}/{name_hash}.db"


class DatabaseGone(Exception):
    """No database file (the container or account was never created here)."""


_CONTAINER_SCHEMA = """
CREATE TABLE object (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    ctype_timestamp TEXT NOT NULL DEFAULT '',
    meta_timestamp TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ix_object_deleted_name ON object (deleted, name);
CREATE TRIGGER object_insert AFTER INSERT ON object BEGIN
    UPDATE stat SET item_count = item_count + (1 - new.deleted),
                    bytes_used = bytes_used + (1 - new.deleted) * new.size;
END;
CREATE TRIGGER object_update AFTER UPDATE ON object BEGIN
    UPDATE stat SET item_count = item_count + (old.deleted - new.deleted),
                    bytes_used = bytes_used - (1 - old.deleted) * old.size
                                            + (1 - new.deleted) * new.size;
END;
CREATE TRIGGER object_delete AFTER DELETE ON object BEGIN
    UPDATE stat SET item_count = item_count - (1 - old.deleted),
                    bytes_used = bytes_used - (1 - old.deleted) * old.size;
END;
"""

_ACCOUNT_SCHEMA = """
CREATE TABLE container (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    put_timestamp TEXT NOT NULL,
    delete_timestamp TEXT NOT NULL,
    object_count INTEGER NOT NULL,
    bytes_used INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ix_container_deleted_name ON container (deleted, name);
CREATE TRIGGER container_insert AFTER INSERT ON container BEGIN
    UPDATE stat SET item_count = item_count + (1 - new.deleted),
                    object_count = object_count + (1 - new.deleted) * new.object_count,
                    bytes_used = bytes_used + (1 - new.deleted) * new.bytes_used;
END;
CREATE TRIGGER container_update AFTER UPDATE ON container BEGIN
    UPDATE stat SET item_count = item_count + (old.deleted - new.deleted),
                    object_count = object_count - (1 - old.deleted) * old.object_count
                                                + (1 - new.deleted) * new.object_count,
                    bytes_used = bytes_used - (1 - old.deleted) * old.bytes_used
                                            + (1 - new.deleted) * new.bytes_used;
END;
"""

_STAT_SCHEMA = """
CREATE TABLE stat (
    account TEXT NOT NULL,
    container TEXT,
    id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    put_timestamp TEXT NOT NULL,
    delete_timestamp TEXT NOT NULL,
    status_changed_at TEXT NOT NULL,
    item_count INTEGER NOT NULL DEFAULT 0,
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    reported TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sync (remote_id TEXT PRIMARY KEY, point INTEGER NOT NULL);
"""


class Broker:
    """One database replica. Thread-safe: calls are serialised per database."""

    kind = ""
    table = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending = path + ".pending"
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    # ---------------------------------------------------------------- files

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            if not os.path.exists(self.path):
                raise DatabaseGone(self.path)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self.migrate(conn)
            self._conn = conn
        return self._conn

    def migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a database made by an older release up to the current schema."""

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def initialize(self, account: str, container: str | None, put_timestamp: str) -> bool:
        """Create the database (atomically); False if it already existed."""
        with self.lock:
            if os.path.exists(self.path):
                return False
            directory = os.path.dirname(self.path)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{directory}/.{uuid.uuid4().hex}.tmp"
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                schema = _CONTAINER_SCHEMA if self.kind == "container" else _ACCOUNT_SCHEMA
                conn.executescript(_STAT_SCHEMA + schema)
                conn.execute(
                    "INSERT INTO stat (account, container, id, created_at, put_timestamp,"
                    " delete_timestamp, status_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (account, container, uuid.uuid4().hex, put_timestamp, put_timestamp,
                     ZERO_TS, put_timestamp),
                )
                conn.close()
                os.rename(tmp, self.path)
            except BaseException:
                conn.close()
                _unlink(tmp)
                raise
            return True

    # ---------------------------------------------------------------- pending

    def put_pending(self, record: Sequence[Any]) -> None:
        """Queue one row update; merged into the database later."""
        line = orjson.dumps(record) + b"\n"
        if not os.path.exists(self.path):
            raise DatabaseGone(self.path)
        fd = os.open(self.pending, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size >= PENDING_CAP:
            self.commit_pending()

    def commit_pending(self) -> None:
        """Merge what the pending file holds into the database."""
        with self.lock:
            try:
                fd = os.open(self.pending, os.O_RDWR)
            except FileNotFoundError:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if not size:
                    return
                data = os.pread(fd, size, 0)
                records = []
                for line in data.split(b"\n"):
                    if line:
                        try:
                            records.append(orjson.loads(line))
                        except orjson.JSONDecodeError:
                            continue  # a torn line from a crash
                self.merge_items(records)
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)

    # ---------------------------------------------------------------- stat

    def stat(self) -> dict[str, Any]:
        with self.lock:
            self.commit_pending()
            row = self.conn().execute(
                "SELECT account, container, id, created_at, put_timestamp, delete_timestamp,"
                " status_changed_at, item_count, object_count, bytes_used, metadata, reported"
                " FROM stat").fetchone()
        keys = ("account", "container", "id", "created_at", "put_timestamp", "delete_timestamp",
                "status_changed_at", "item_count", "object_count", "bytes_used", "metadata",
                "reported")
        info = dict(zip(keys, row, strict=True))
        info["metadata"] = orjson.loads(info["metadata"])
        return info

    def is_deleted(self, info: dict[str, Any] | None = None) -> bool:
        info = info or self.stat()
        return bool(info["delete_timestamp"] > info["put_timestamp"] and info["item_count"] == 0)

    def set_timestamps(self, put_timestamp: str | None = None,
                       delete_timestamp: str | None = None) -> None:
        with self.lock:
            conn = self.conn()
            row = conn.execute("SELECT put_timestamp, delete_timestamp FROM stat").fetchone()
            put = max(row[0], put_timestamp or ZERO_TS)
            dele = max(row[1], delete_timestamp or ZERO_TS)
            if (put, dele) != tuple(row):
                conn.execute("UPDATE stat SET put_timestamp = ?, delete_timestamp = ?,"
                             " status_changed_at = ?", (put, dele, max(put, dele)))

    def update_metadata(self, updates: dict[str, tuple[str, str]]) -> dict[str, Any]:
        """Merge ``name -> (value, timestamp)``; newer timestamps win."""
        with self.lock:
            conn = self.conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = orjson.loads(conn.execute("SELECT metadata FROM stat").fetchone()[0])
                changed = False
                for key, (value, ts) in updates.items():
                    old = current.get(key)
                    if old is None or old[1] < ts:
                        current[key] = [value, ts]
                        changed = True
                if changed:
                    conn.execute("UPDATE stat SET metadata = ?", (orjson.dumps(current).decode(),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return dict(current)

    def set_reported(self, value: str) -> None:
        with self.lock:
            self.conn().execute("UPDATE stat SET reported = ?", (value,))

    # ---------------------------------------------------------------- replication

    def sync_point(self, remote_id: str) -> int:
        with self.lock:
            row = self.conn().execute("SELECT point FROM sync WHERE remote_id = ?",
                                      (remote_id,)).fetchone()
            return int(row[0]) if row else -1

    def set_sync_point(self, remote_id: str, point: int) -> None:
        with self.lock:
            self.conn().execute("INSERT INTO sync (remote_id, point) VALUES (?, ?) ON CONFLICT"
                                "(remote_id) DO UPDATE SET point = excluded.point",
                                (remote_id, point))

    def rows_since(self, point: int, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Rows (ROWID first) changed after ``point``, for the replicator."""
        with self.lock:
            self.commit_pending()
            cur = self.conn().execute(
                f"SELECT ROWID, * FROM {self.table} WHERE ROWID > ? ORDER BY ROWID LIMIT ?",
                (point, limit))
            return [tuple(r) for r in cur]

    def max_row(self) -> int:
        with self.lock:
            row = self.conn().execute(f"SELECT MAX(ROWID) FROM {self.table}").fetchone()
            return int(row[0] or -1)

    def merge_items(self, records: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- listing

    def list_names(self, limit: int, marker: str, end_marker: str, prefix: str,
                   delimiter: str, reverse: bool, columns: str,
                   reserved: bool = False) -> list[tuple[Any, ...]]:
        """Swift's listing walk: rows (name first) or ``(subdir,)`` for a delimiter;
        names in the reserved namespace (starting with ``\x00``) only if ``reserved``."""
        with self.lock:
            self.commit_pending()
            return _walk(self.conn(), self.table, columns, limit, marker, end_marker, prefix,
                         delimiter, reverse, reserved)


def _walk(conn: sqlite3.Connection, table: str, columns: str, limit: int, marker: str,
          end_marker: str, prefix: str, delimiter: str, reverse: bool,
          reserved: bool = False) -> list[tuple[Any, ...]]:
    if reverse:
        marker, end_marker = end_marker, marker
    end_prefix = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else ""
    orig_marker = marker
    results: list[tuple[Any, ...]] = []
    force_gte = False
    while len(results) < limit:
        conds = ["deleted = 0"] if reserved else ["deleted = 0", "name >= '\x01'"]
        args: list[Any] = []
        if end_marker and (not prefix or end_marker < end_prefix):
            conds.append("name < ?")
            args.append(end_marker)
        elif prefix:
            conds.append("name < ?")
            args.append(end_prefix)
        if force_gte:
            conds.append("name >= ?")
            args.append(marker)
            force_gte = False
        elif marker and (not prefix or marker >= prefix):
            conds.append("name > ?")
            args.append(marker)
        elif prefix:
            conds.append("name >= ?")
            args.append(prefix)
        sql = (f"SELECT {columns} FROM {table} WHERE {' AND '.join(conds)} "
               f"ORDER BY name {'DESC' if reverse else ''} LIMIT ?")
        want = limit - len(results)
        args.append(want)
        rows = conn.execute(sql, args).fetchall()
        if not delimiter:
            results.extend(rows)
            return results
        broke = False
        for row in rows:
            name = row[0]
            if reverse:
                end_marker = name
            else:
                marker = name
            end = name.find(delimiter, len(prefix))
            if end >= 0:
                dir_name = name[:end + len(delimiter)]
                if reverse:
                    end_marker = dir_name
                else:
                    marker = name[:end] + delimiter[:-1] + chr(ord(delimiter[-1]) + 1)
                    force_gte = True
                if dir_name != orig_marker:
                    results.append((dir_name,))
                broke = True
                break
            results.append(row)
            if len(results) >= limit:
                return results
        if not rows or (not broke and len(rows) < want):
            break
    return results


class ContainerBroker(Broker):
    kind = "container"
    table = "object"

    def put_object(self, name: str, timestamp: str, size: int, content_type: str, etag: str,
                   deleted: int = 0, ctype_timestamp: str = "", meta_timestamp: str = "") -> None:
        self.put_pending((name, timestamp, size, content_type, etag, deleted, ctype_timestamp,
                          meta_timestamp))

    def migrate(self, conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(object)")}
        for column in ("ctype_timestamp", "meta_timestamp"):
            if column not in columns:
                conn.execute(f"ALTER TABLE object ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")

    def merge_items(self, records: Iterable[Sequence[Any]]) -> None:
        """Rows ``(name, created_at, size, content_type, etag, deleted[, ctype_timestamp,
        meta_timestamp])``, a ROWID first for a replicated row: each part of a row
        is taken from the record whose time for it is newest."""
        newest: dict[str, tuple[Any, ...]] = {}
        for rec in records:
            row = _object_row(rec)
            old = newest.get(row[0])
            newest[row[0]] = row if old is None else _merge_rows(old, row)
        if not newest:
            return
        with self.lock:
            conn = self.conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_MERGE_OBJECT, list(newest.values()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def list_objects(self, limit: int, marker: str = "", end_marker: str = "", prefix: str = "",
                     delimiter: str = "", reverse: bool = False) -> list[tuple[Any, ...]]:
        return self.list_names(limit, marker, end_marker, prefix, delimiter, reverse,
                               LISTING_COLUMNS)

    def reclaim(self, before: str) -> int:
        """Drop deleted rows older than ``before`` (replicas had time to see them)."""
        with self.lock:
            cur = self.conn().execute("DELETE FROM object WHERE deleted = 1 AND created_at < ?",
                                      (before,))
            return cur.rowcount


# the listing's columns: last_modified is the time of the row's newest part
LISTING_COLUMNS = ("name, max(created_at, ctype_timestamp, meta_timestamp), size, content_type,"
                   " etag")

# An update's parts win by their own times (Swift's update_new_item_from_existing);
# max(created_at, ctype_timestamp) is the content type's time ('' = the data's).
_CTYPE_TS = "max({t}.created_at, {t}.ctype_timestamp)"
_META_TS = "max({t}.created_at, {t}.ctype_timestamp, {t}.meta_timestamp)"
_NEW, _OLD = "excluded", "object"
_DATA_NEWER = "excluded.created_at > object.created_at"
_CTYPE_NEWER = f"{_CTYPE_TS.format(t=_NEW)} > {_CTYPE_TS.format(t=_OLD)}"
_META_NEWER = f"{_META_TS.format(t=_NEW)} > {_META_TS.format(t=_OLD)}"
_MERGE_OBJECT = (
    "INSERT INTO object (name, created_at, size, content_type, etag, deleted, ctype_timestamp,"
    " meta_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
    f" size = CASE WHEN {_DATA_NEWER} THEN excluded.size ELSE object.size END,"
    f" etag = CASE WHEN {_DATA_NEWER} THEN excluded.etag ELSE object.etag END,"
    f" deleted = CASE WHEN {_DATA_NEWER} THEN excluded.deleted ELSE object.deleted END,"
    f" content_type = CASE WHEN {_CTYPE_NEWER} THEN excluded.content_type"
    " ELSE object.content_type END,"
    " created_at = max(excluded.created_at, object.created_at),"
    f" ctype_timestamp = max({_CTYPE_TS.format(t=_NEW)}, {_CTYPE_TS.format(t=_OLD)}),"
    f" meta_timestamp = max({_META_TS.format(t=_NEW)}, {_META_TS.format(t=_OLD)}),"
    " ROWID = (SELECT MAX(ROWID) FROM object) + 1"
    f" WHERE {_DATA_NEWER} OR {_CTYPE_NEWER} OR {_META_NEWER}")


def _object_row(rec: Sequence[Any]) -> tuple[Any, ...]:
    """An update record or a replicated row (ROWID first) as the 8 columns."""
    if len(rec) in (7, 9):  # a replicated row: its ROWID first
        rec = rec[1:]
    row = tuple(rec[:8])
    return row + ("",) * (8 - len(row))


def _merge_rows(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """Two updates of one name in a batch, merged part by part (as the SQL does)."""
    data = a if a[1] >= b[1] else b
    ctype = a if max(a[1], a[6]) >= max(b[1], b[6]) else b
    return (data[0], max(a[1], b[1]), data[2], ctype[3], data[4], data[5],
            max(a[1], a[6], b[1], b[6]), max(a[1], a[6], a[7], b[1], b[6], b[7]))


class AccountBroker(Broker):
    kind = "account"
    table = "container"

    def put_container(self, name: str, put_timestamp: str, delete_timestamp: str,
                      object_count: int, bytes_used: int) -> None:
        self.put_pending((name, put_timestamp, delete_timestamp, object_count, bytes_used))

    def merge_items(self, records: Iterable[Sequence[Any]]) -> None:
        """Rows ``(name, put_ts, delete_ts, count, bytes)``; the latest report wins."""
        newest: dict[str, tuple[Any, ...]] = {}
        for rec in records:
            if len(rec) == 7:  # a replicated row: ROWID first, deleted last
                rec = rec[1:6]
            rec = tuple(rec[:5])
            old = newest.get(rec[0])
            if old is None or max(old[1], old[2]) <= max(rec[1], rec[2]):
                newest[rec[0]] = rec
        if not newest:
            return
        rows = [(*r, 1 if r[2] > r[1] else 0) for r in newest.values()]
        with self.lock:
            conn = self.conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO container (name, put_timestamp, delete_timestamp, object_count,"
                    " bytes_used, deleted) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE"
                    " SET put_timestamp = max(put_timestamp, excluded.put_timestamp),"
                    " delete_timestamp = max(delete_timestamp, excluded.delete_timestamp),"
                    " object_count = excluded.object_count, bytes_used = excluded.bytes_used,"
                    " deleted = CASE WHEN max(delete_timestamp, excluded.delete_timestamp)"
                    " > max(put_timestamp, excluded.put_timestamp) THEN 1 ELSE 0 END"
                    " WHERE max(excluded.put_timestamp, excluded.delete_timestamp)"
                    " >= max(container.put_timestamp, container.delete_timestamp)",
                    rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def list_containers(self, limit: int, marker: str = "", end_marker: str = "",
                        prefix: str = "", delimiter: str = "",
                        reverse: bool = False) -> list[tuple[Any, ...]]:
        return self.list_names(limit, marker, end_marker, prefix, delimiter, reverse,
                               "name, object_count, bytes_used, put_timestamp")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class BrokerCache:
    """Open brokers by path (a database is opened once, not per request)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._brokers: dict[str, Broker] = {}
        self._lock = threading.Lock()

    def get(self, cls: type[Broker], path: str) -> Broker:
        with self._lock:
            broker = self._brokers.get(path)
            if broker is not None and broker._conn is not None and not os.path.exists(path):
                broker.close()  # the file went away (a replaced or wiped device)
                broker = None
            if broker is None:
                broker = cls(path)
                self._brokers[path] = broker
                if len(self._brokers) > self.size:
                    old_path = next(iter(self._brokers))
                    self._brokers.pop(old_path).close()
            return broker

    def forget(self, path: str) -> None:
        with self._lock:
            broker = self._brokers.pop(path, None)
        if broker is not None:
            broker.close()

    def close_all(self) -> None:
        with self._lock:
            brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            broker.close()
