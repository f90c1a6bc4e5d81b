"""How the proxy reaches a storage node: the seam where a network call comes later.

:class:`NodeClient` is the interface the proxy and the background jobs use;
every call names the ring device (its ``ip:port`` says which node serves it).
:class:`LocalClient` serves the devices of the in-process storage node and
answers 503 for any other node (a node on another host needs an HTTP client
with the same methods; the ring format already carries its address).
Blocking disk work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio.to_thread

from onestack.objectstore.ring import Device as RingDevice
from onestack.objectstore.storage.diskfile import DiskError, Found, ObjectWriter
from onestack.objectstore.storage.server import ContainerUpdate, StorageServer, Target

PREFETCH = 1 << 16  # bodies up to this size are read with their metadata


class NodeDown(Exception):
    """The node could not be reached (or does not serve this device)."""


class Writer(Protocol):
    node: RingDevice

    async def write(self, chunk: bytes | memoryview) -> None: ...

    async def commit(self, metadata: dict[str, Any], update: ContainerUpdate | None) -> int: ...

    async def abort(self) -> None: ...


class ObjectBody(Protocol):
    """An object replica being read."""

    length: int
    metadata: dict[str, Any]
    timestamp: str

    def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class NodeClient(Protocol):
    async def object_get(self, node: RingDevice, part: int, name_hash: str,
                         ) -> tuple[int, str | None, ObjectBody | None, dict[str, Any]]: ...

    async def object_put(self, node: RingDevice, part: int, name_hash: str, ts: str, body: bytes,
                         metadata: dict[str, Any], update: ContainerUpdate | None,
                         target: Target | None) -> int: ...

    async def object_writer(self, node: RingDevice, part: int, name_hash: str, ts: str,
                            target: Target | None) -> Writer: ...

    async def object_post(self, node: RingDevice, part: int, name_hash: str, ts: str,
                          metadata: dict[str, Any], target: Target | None = None) -> int: ...

    async def object_delete(self, node: RingDevice, part: int, name_hash: str, ts: str,
                            update: ContainerUpdate | None, target: Target | None,
                            if_delete_at: str | None = None) -> int: ...

    async def db_put(self, kind: str, node: RingDevice, part: int, name_hash: str, account: str,
                     container: str | None, ts: str,
                     metadata: dict[str, tuple[str, str]]) -> int: ...

    async def db_info(self, kind: str, node: RingDevice, part: int,
                      name_hash: str) -> tuple[int, dict[str, Any] | None]: ...

    async def db_list(self, kind: str, node: RingDevice, part: int, name_hash: str, limit: int,
                      marker: str, end_marker: str, prefix: str, delimiter: str, reverse: bool,
                      names_only: bool = False, reserved: bool = False,
                      ) -> tuple[int, dict[str, Any] | None, list[tuple[Any, ...]]]: ...

    async def db_post(self, kind: str, node: RingDevice, part: int, name_hash: str,
                      metadata: dict[str, tuple[str, str]]) -> int: ...

    async def db_delete(self, kind: str, node: RingDevice, part: int, name_hash: str,
                        ts: str) -> int: ...

    async def account_update(self, node: RingDevice, part: int, name_hash: str, account: str,
                             record: tuple[str, str, str, int, int]) -> int: ...


async def _thread(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


class _LocalBody:
    def __init__(self, found: Found) -> None:
        assert found.obj is not None
        self.obj = found.obj
        self.length = found.obj.length
        self.metadata = found.metadata
        self.timestamp = found.obj.timestamp
        self.data = found.data

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        if self.data is not None:
            if end > start:
                yield self.data[start:end]
            return
        pos = start
        while pos < end:
            data: bytes = await _thread(self.obj.read, pos, end)
            if not data:
                raise DiskError(f"{self.obj.path}: short read")
            pos += len(data)
            yield data

    def close(self) -> None:
        self.obj.close()


class _LocalWriter:
    def __init__(self, server: StorageServer, node: RingDevice, writer: ObjectWriter,
                 target: Target | None) -> None:
        self.server = server
        self.node = node
        self.writer = writer
        self.target = target

    async def write(self, chunk: bytes | memoryview) -> None:
        await _thread(self.writer.write, chunk)

    def write_now(self, chunk: bytes | memoryview) -> None:
        """Blocking write, for callers already in a worker thread."""
        self.writer.write(chunk)

    async def commit(self, metadata: dict[str, Any], update: ContainerUpdate | None) -> int:
        status: int = await _thread(self.server.object_commit, self.writer, metadata,
                                    update, self.target)
        return status

    async def abort(self) -> None:
        await _thread(self.writer.abort)


class LocalClient:
    """The in-process storage node: devices whose ``ip:port`` is in ``hosts``."""

    def __init__(self, server: StorageServer, hosts: set[str] | None = None) -> None:
        self.server = server
        self.hosts = hosts  # None: every device is local (the all-in-one node)
        self.down: set[int] = set()  # device ids treated as unreachable (tests, drills)

    def _local(self, node: RingDevice) -> None:
        if node.id in self.down or (self.hosts is not None and node.host not in self.hosts):
            raise NodeDown(node.host)

    def is_local(self, node: RingDevice) -> bool:
        try:
            self._local(node)
        except NodeDown:
            return False
        return True

    # ---------------------------------------------------------------- objects

    async def object_get(self, node: RingDevice, part: int, name_hash: str,
                         ) -> tuple[int, str | None, ObjectBody | None, dict[str, Any]]:
        self._local(node)
        found: Found = await _thread(self.server.object_get, node.device, part, name_hash,
                                     PREFETCH)
        body = _LocalBody(found) if found.obj is not None else None
        return found.status, found.timestamp, body, found.metadata

    async def object_put(self, node: RingDevice, part: int, name_hash: str, ts: str, body: bytes,
                         metadata: dict[str, Any], update: ContainerUpdate | None,
                         target: Target | None) -> int:
        self._local(node)
        status: int = await _thread(self.server.object_put, node.device, part, name_hash, ts,
                                    body, metadata, update, target)
        return status

    async def object_writer(self, node: RingDevice, part: int, name_hash: str, ts: str,
                            target: Target | None) -> Writer:
        self._local(node)
        writer = await _thread(self.server.object_writer, node.device, part, name_hash, ts)
        return _LocalWriter(self.server, node, writer, target)

    async def object_post(self, node: RingDevice, part: int, name_hash: str, ts: str,
                          metadata: dict[str, Any], target: Target | None = None) -> int:
        self._local(node)
        status: int = await _thread(self.server.object_post, node.device, part, name_hash, ts,
                                    metadata, target)
        return status

    async def object_delete(self, node: RingDevice, part: int, name_hash: str, ts: str,
                            update: ContainerUpdate | None, target: Target | None,
                            if_delete_at: str | None = None) -> int:
        self._local(node)
        status: int = await _thread(self.server.object_delete, node.device, part, name_hash, ts,
                                    update, target, if_delete_at)
        return status

    # ---------------------------------------------------------------- databases

    async def db_put(self, kind: str, node: RingDevice, part: int, name_hash: str, account: str,
                     container: str | None, ts: str,
                     metadata: dict[str, tuple[str, str]]) -> int:
        self._local(node)
        status: int = await _thread(self.server.db_put, kind, node.device, part, name_hash,
                                    account, container, ts, metadata)
        return status

    async def db_info(self, kind: str, node: RingDevice, part: int,
                      name_hash: str) -> tuple[int, dict[str, Any] | None]:
        self._local(node)
        result: tuple[int, dict[str, Any] | None] = await _thread(
            self.server.db_info, kind, node.device, part, name_hash)
        return result

    async def db_list(self, kind: str, node: RingDevice, part: int, name_hash: str, limit: int,
                      marker: str, end_marker: str, prefix: str, delimiter: str, reverse: bool,
                      names_only: bool = False, reserved: bool = False,
                      ) -> tuple[int, dict[str, Any] | None, list[tuple[Any, ...]]]:
        self._local(node)
        result: tuple[int, dict[str, Any] | None, list[tuple[Any, ...]]] = await _thread(
            self.server.db_list, kind, node.device, part, name_hash, limit, marker, end_marker,
            prefix, delimiter, reverse, names_only, reserved)
        return result

    async def db_post(self, kind: str, node: RingDevice, part: int, name_hash: str,
                      metadata: dict[str, tuple[str, str]]) -> int:
        self._local(node)
        status: int = await _thread(self.server.db_post, kind, node.device, part, name_hash,
                                    metadata)
        return status

    async def db_delete(self, kind: str, node: RingDevice, part: int, name_hash: str,
                        ts: str) -> int:
        self._local(node)
        status: int = await _thread(self.server.db_delete, kind, node.device, part, name_hash,
                                    ts)
        return status

    async def account_update(self, node: RingDevice, part: int, name_hash: str, account: str,
                             record: tuple[str, str, str, int, int]) -> int:
        self._local(node)
        status: int = await _thread(self.server.account_update, node.device, part, name_hash,
                                    account, record)
        return status

    # ---------------------------------------------------------------- node to node

    def send_container_update(self, target: Target, update: ContainerUpdate,
                              name_hash: str) -> bool:
        """Blocking: an object server's update to a container replica."""
        if not self.is_local(target.node):
            return False
        return self.server.container_update(target.node.device, target.part, name_hash,
                                            update) == 201
