"""The storage server of one node: its devices' objects, containers and accounts.

Every method is blocking (the caller runs it in a worker thread) and speaks in
statuses, as Swift's object, container and account servers do over HTTP; the
node client (``client.py``) is the seam where a network call comes later.

* Objects: PUT/GET/HEAD/POST/DELETE of one replica, last write wins by
  timestamp (409 for an older one). After a PUT or DELETE the object server
  tells one replica of the container (the proxy says which); if that fails the
  update is saved under ``<device>/async_pending/`` for the updater.
* Containers and accounts: their databases (``dbs.py``). A container PUT or
  DELETE updates the account at once; object counts reach the account
  through the updater (dirty containers are remembered here).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from onestack.objectstore import timestamp
from onestack.objectstore.storage import dbs
from onestack.objectstore.storage.diskfile import (
    DATA,
    META,
    TOMB,
    Conflict,
    Device,
    DiskError,
    Found,
    ObjectWriter,
)

log = logging.getLogger(__name__)

EXPIRING_ACCOUNT = ".expiring_objects"
# metadata kept with an object for its container row: the content type's time
# (when a POST set it) and the etag parameters bound to the data (an SLO's
# swift_bytes and slo_etag, a symlink's target), sent again with every update
CTYPE_TS = "Content-Type-Timestamp"
LISTING_PARAMS = "X-Object-Sysmeta-Listing-Etag-Params"
EXPIRING_DIVISOR = 86400


@dataclass(frozen=True)
class Target:
    """One replica of a container (or account) that an update goes to."""

    node: Any  # ring.Device
    part: int


@dataclass(frozen=True)
class ContainerUpdate:
    """An object row for a container listing (Swift's container update)."""

    account: str
    container: str
    name: str
    timestamp: str
    size: int = 0
    content_type: str = ""
    etag: str = ""  # may carry parameters bound to the data ("<md5>; swift_bytes=N")
    deleted: int = 0
    ctype_timestamp: str = ""  # when the content type was set, if not with the data
    meta_timestamp: str = ""  # the last POST's time, if any

    def record(self) -> tuple[Any, ...]:
        return (self.name, self.timestamp, self.size, self.content_type, self.etag, self.deleted,
                self.ctype_timestamp, self.meta_timestamp)


def expiring_container(delete_at: int) -> str:
    return str(delete_at // EXPIRING_DIVISOR * EXPIRING_DIVISOR)


def expiring_name(delete_at: int, account: str, container: str, obj: str) -> str:
    return f"{delete_at:010d}-{account}/{container}/{obj}"


# Sends a container update to a replica (maybe on another node); True if done.
UpdateSender = Callable[[Target, ContainerUpdate], bool]
# Finds the primaries of a container: (part, nodes).
ContainerLocator = Callable[[str, str], tuple[int, list[Any]]]


class StorageServer:
    def __init__(self, devices_root: str, *, fsync: bool = True) -> None:
        self.root = devices_root
        self.fsync = fsync
        self.devices: dict[str, Device] = {}
        self.brokers = dbs.BrokerCache()
        self._lock = threading.Lock()
        self.dirty: set[tuple[str, int, str]] = set()  # container dbs whose stats changed
        self.send_update: UpdateSender | None = None
        self.locate_container: ContainerLocator | None = None
        # (account) -> (part, hash, nodes): where an account's replicas are
        self.locate_account: Callable[[str], tuple[int, str, list[Any]]] | None = None

    def device(self, name: str) -> Device:
        dev = self.devices.get(name)
        if dev is None:
            with self._lock:
                dev = self.devices.get(name)
                if dev is None:
                    dev = Device(f"{self.root}/{name}", fsync=self.fsync)
                    self.devices[name] = dev
        return dev

    # ================================================================ objects

    def object_get(self, device: str, part: int, name_hash: str, prefetch: int = 0) -> Found:
        """The newest replica on a device; a body up to ``prefetch`` bytes is read
        in the same call (one trip to a worker thread for a small object)."""
        found = self.device(device).lookup(part, name_hash)
        if found.obj is not None:
            delete_at = found.metadata.get("X-Delete-At")
            if delete_at and int(delete_at) <= int(float(timestamp.now())):
                found.obj.close()
                return Found(404, found.timestamp, metadata={"expired": True})
            if found.obj.length <= prefetch:
                data = os.pread(found.obj.fd, found.obj.length, 0)
                if len(data) == found.obj.length:
                    found.data = data
        return found

    def object_writer(self, device: str, part: int, name_hash: str, ts: str) -> ObjectWriter:
        return self.device(device).writer(part, name_hash, ts)

    def object_commit(self, writer: ObjectWriter, metadata: dict[str, Any],
                      update: ContainerUpdate | None, target: Target | None) -> int:
        """Finish a streamed replica; 201, 409 (newer exists) or 507."""
        old = self._old_delete_at(writer.device, writer.part, writer.name_hash)
        try:
            writer.commit(metadata)
        except Conflict:
            return 409
        except DiskError:
            log.exception("object write failed on %s", writer.device.path)
            return 507
        finally:
            writer.abort()
        self._after_write(writer.device, writer.name_hash, metadata, update, target, old)
        return 201

    def object_put(self, device: str, part: int, name_hash: str, ts: str, body: bytes,
                   metadata: dict[str, Any], update: ContainerUpdate | None,
                   target: Target | None) -> int:
        try:
            writer = self.object_writer(device, part, name_hash, ts)
        except Conflict:
            return 409
        except DiskError:
            return 507
        try:
            writer.write(body)
        except DiskError:
            writer.abort()
            return 507
        return self.object_commit(writer, metadata, update, target)

    def object_post(self, device: str, part: int, name_hash: str, ts: str,
                    metadata: dict[str, Any], target: Target | None = None) -> int:
        """New user metadata (a ``.meta``): 202, 404, 409. A content type set by a
        POST is kept by later POSTs that set none; the container replica ``target``
        is told the row's new content type and time (as Swift's object server does)."""
        dev = self.device(device)
        found = self.object_get(device, part, name_hash)
        if found.obj is None:
            return 404
        old_meta = found.metadata
        data_ts = found.timestamp or ""
        size = found.obj.length
        found.obj.close()
        if data_ts >= ts:
            return 409
        metadata = dict(metadata)
        if "Content-Type" in metadata:
            metadata[CTYPE_TS] = ts
        elif CTYPE_TS in old_meta:  # an earlier POST's content type stays
            metadata["Content-Type"] = old_meta.get("Content-Type", "")
            metadata[CTYPE_TS] = old_meta[CTYPE_TS]
        try:
            dev.write_small(part, name_hash, ts, META, metadata)
        except Conflict:
            return 409
        except DiskError:
            return 507
        name = str(old_meta.get("name", ""))
        old_at = old_meta.get("X-Delete-At")
        new_at = metadata.get("X-Delete-At")
        if old_at != new_at:
            self._expirer_updates(dev, name_hash, name, ts, new_at, old_at)
        if target is not None and name.count("/") >= 3:
            _, account, container, obj = name.split("/", 3)
            etag = str(old_meta.get("ETag", ""))
            params = old_meta.get(LISTING_PARAMS)
            ctype = str(metadata.get("Content-Type") or old_meta.get("Content-Type", ""))
            update = ContainerUpdate(account, container, obj, data_ts, size, ctype,
                                     f"{etag}; {params}" if params else etag, 0,
                                     str(metadata.get(CTYPE_TS) or data_ts), ts)
            self._send_or_save(dev, name_hash, target, update)
        return 202

    def object_delete(self, device: str, part: int, name_hash: str, ts: str,
                      update: ContainerUpdate | None, target: Target | None,
                      if_delete_at: str | None = None) -> int:
        """Write a tombstone: 204 if there was an object, 404 if not, 409, 412."""
        dev = self.device(device)
        found = dev.lookup(part, name_hash)
        meta = found.metadata
        existed = found.obj is not None
        if found.obj is not None:
            found.obj.close()
            delete_at = meta.get("X-Delete-At")
            if delete_at and if_delete_at is None and int(delete_at) <= int(float(
                    timestamp.now())):
                existed = False  # expired: already gone to its readers
        if if_delete_at is not None and str(meta.get("X-Delete-At")) != if_delete_at:
            return 412
        if found.timestamp is not None and found.timestamp >= ts:
            return 409
        name = str(meta.get("name") or (f"/{update.account}/{update.container}/{update.name}"
                                        if update else ""))
        try:
            dev.write_small(part, name_hash, ts, TOMB, {"X-Timestamp": ts, "name": name})
        except Conflict:
            return 409
        except DiskError:
            return 507
        if update is not None:
            self._send_or_save(dev, name_hash, target, update)
        if meta.get("X-Delete-At"):
            self._expirer_updates(dev, name_hash, name, ts, None, meta.get("X-Delete-At"))
        return 204 if existed else 404

    def _old_delete_at(self, dev: Device, part: int, name_hash: str) -> str | None:
        found = dev.lookup(part, name_hash)
        if found.obj is not None:
            found.obj.close()
            value = found.metadata.get("X-Delete-At")
            return str(value) if value else None
        return None

    def _after_write(self, dev: Device, name_hash: str, metadata: dict[str, Any],
                     update: ContainerUpdate | None, target: Target | None,
                     old_delete_at: str | None) -> None:
        if update is not None:
            self._send_or_save(dev, name_hash, target, update)
        new_at = metadata.get("X-Delete-At")
        if new_at or old_delete_at:
            self._expirer_updates(dev, name_hash, str(metadata.get("name", "")),
                                  str(metadata["X-Timestamp"]), new_at, old_delete_at)

    def _expirer_updates(self, dev: Device, name_hash: str, name: str, ts: str,
                         new_at: Any, old_at: Any) -> None:
        """Keep the expirer's queue (``.expiring_objects``) in step with X-Delete-At."""
        if self.locate_container is None or not name:
            return
        try:
            _, account, container, obj = name.split("/", 3)
        except ValueError:
            return
        changes: list[tuple[int, int]] = []
        if old_at and str(old_at) != str(new_at or ""):
            changes.append((int(old_at), 1))
        if new_at:
            changes.append((int(new_at), 0))
        for at, deleted in changes:
            queue = expiring_container(at)
            update = ContainerUpdate(EXPIRING_ACCOUNT, queue,
                                     expiring_name(at, account, container, obj), ts,
                                     0, "text/plain", "d41d8cd98f00b204e9800998ecf8427e", deleted)
            part, nodes = self.locate_container(EXPIRING_ACCOUNT, queue)
            for node in nodes:
                self._send_or_save(dev, name_hash, Target(node, part), update)

    def _send_or_save(self, dev: Device, name_hash: str, target: Target | None,
                      update: ContainerUpdate) -> None:
        sender = self.send_update
        if target is not None and sender is not None:
            try:
                if sender(target, update):
                    return
            except Exception:
                log.exception("container update failed")
        save_async_pending(dev.path, name_hash, update)

    # ================================================================ containers

    def _broker(self, kind: str, device: str, part: int, name_hash: str) -> dbs.Broker:
        cls: type[dbs.Broker] = dbs.ContainerBroker if kind == "container" else dbs.AccountBroker
        path = dbs.db_path(self.device(device).path, kind, part, name_hash)
        return self.brokers.get(cls, path)

    def container_broker(self, device: str, part: int, name_hash: str) -> dbs.ContainerBroker:
        broker = self._broker("container", device, part, name_hash)
        assert isinstance(broker, dbs.ContainerBroker)
        return broker

    def account_broker(self, device: str, part: int, name_hash: str) -> dbs.AccountBroker:
        broker = self._broker("account", device, part, name_hash)
        assert isinstance(broker, dbs.AccountBroker)
        return broker

    def db_put(self, kind: str, device: str, part: int, name_hash: str, account: str,
               container: str | None, ts: str, metadata: dict[str, tuple[str, str]]) -> int:
        """Create (201) or re-create/update (202) a container or account."""
        broker = self._broker(kind, device, part, name_hash)
        try:
            created = broker.initialize(account, container, ts)
            if created:
                status = 201
            else:
                info = broker.stat()
                deleted = broker.is_deleted(info)
                broker.set_timestamps(put_timestamp=ts)
                status = 201 if deleted else 202
            if metadata:
                broker.update_metadata(metadata)
        except OSError:
            log.exception("database PUT failed")
            return 507
        if kind == "container":
            self.dirty.add((device, part, name_hash))
        return status

    def db_info(self, kind: str, device: str, part: int,
                name_hash: str) -> tuple[int, dict[str, Any] | None]:
        broker = self._broker(kind, device, part, name_hash)
        try:
            info = broker.stat()
        except dbs.DatabaseGone:
            return 404, None
        except OSError:
            return 507, None
        if broker.is_deleted(info):
            return 404, info
        return 200, info

    def db_list(self, kind: str, device: str, part: int, name_hash: str, limit: int,
                marker: str, end_marker: str, prefix: str, delimiter: str,
                reverse: bool, names_only: bool = False, reserved: bool = False,
                ) -> tuple[int, dict[str, Any] | None, list[tuple[Any, ...]]]:
        """A listing page; names in the reserved namespace (``\x00...``, e.g.
        versions containers) only when ``reserved`` (a middleware's sub-request)."""
        status, info = self.db_info(kind, device, part, name_hash)
        if status != 200:
            return status, info, []
        broker = self._broker(kind, device, part, name_hash)
        columns = "name" if names_only else (dbs.LISTING_COLUMNS if kind == "container" else
                                             "name, object_count, bytes_used, put_timestamp")
        rows = broker.list_names(limit, marker, end_marker, prefix, delimiter, reverse, columns,
                                 reserved)
        return 200, info, rows

    def db_post(self, kind: str, device: str, part: int, name_hash: str,
                metadata: dict[str, tuple[str, str]]) -> int:
        status, _ = self.db_info(kind, device, part, name_hash)
        if status != 200:
            return status
        self._broker(kind, device, part, name_hash).update_metadata(metadata)
        return 204

    def db_delete(self, kind: str, device: str, part: int, name_hash: str, ts: str) -> int:
        """204; 404 if missing; 409 if a container still has objects."""
        status, info = self.db_info(kind, device, part, name_hash)
        if status != 200 or info is None:
            return status
        if kind == "container" and info["item_count"] > 0:
            return 409
        broker = self._broker(kind, device, part, name_hash)
        broker.set_timestamps(delete_timestamp=ts)
        if kind == "container":
            self.dirty.add((device, part, name_hash))
        return 204

    def container_update(self, device: str, part: int, name_hash: str,
                         update: ContainerUpdate) -> int:
        """An object server's listing update: 201, or 404 without a database."""
        broker = self.container_broker(device, part, name_hash)
        try:
            broker.put_object(*update.record())
        except dbs.DatabaseGone:
            if not update.account.startswith("."):
                return 404
            # the expirer's queue is made on demand, and listed in its account at once
            if broker.initialize(update.account, update.container, update.timestamp):
                self._announce(update.account, update.container, update.timestamp)
            broker.put_object(*update.record())
        self.dirty.add((device, part, name_hash))
        return 201

    def _announce(self, account: str, container: str, ts: str) -> None:
        locate = self.locate_account
        if locate is None:
            return
        part, name_hash, nodes = locate(account)
        for node in nodes:
            if node.device in self.devices or os.path.isdir(f"{self.root}/{node.device}"):
                self.account_update(node.device, part, name_hash, account,
                                    (container, ts, dbs.ZERO_TS, 0, 0))

    def account_update(self, device: str, part: int, name_hash: str, account: str,
                       record: tuple[str, str, str, int, int]) -> int:
        """A container's report to its account: 201, or 404 without an account."""
        broker = self.account_broker(device, part, name_hash)
        try:
            broker.put_container(*record)
        except dbs.DatabaseGone:
            if not account.startswith("."):
                return 404
            broker.initialize(account, None, record[1])
            broker.put_container(*record)
        return 201


def save_async_pending(device_path: str, name_hash: str, update: ContainerUpdate) -> None:
    """Remember a container update that could not be made (the updater retries)."""
    directory = f"{device_path}/async_pending/{name_hash[-3:]}"
    os.makedirs(directory, exist_ok=True)
    name = f"{directory}/{name_hash}-{update.timestamp}-{uuid.uuid4().hex[:6]}"
    os.makedirs(f"{device_path}/tmp", exist_ok=True)
    tmp = f"{device_path}/tmp/{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(update.__dict__))
    os.rename(tmp, name)


def load_async_pending(path: str) -> ContainerUpdate | None:
    try:
        with open(path, "rb") as f:
            return ContainerUpdate(**orjson.loads(f.read()))
    except (OSError, ValueError, TypeError):
        return None


__all__ = ["DATA", "META", "TOMB", "ContainerUpdate", "StorageServer", "Target"]
