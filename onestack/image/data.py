"""The data path: image bytes stream through a sink into a store.

A ``DataSink`` does the per-byte work in a worker thread: it counts the bytes
against the allowed size, feeds the format inspector, computes the md5
checksum and the sha512 multihash, and writes to the store writer. ``pump``
moves an async byte stream (the request body) into a sink in batches of a few
MiB, receiving the next batch while the previous one is written, so memory
stays flat whatever the image size.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio
import anyio.to_thread

from onestack.image.formats import Inspector
from onestack.image.stores.base import StoreWriter

BATCH = 4 << 20
PARALLEL_MIN = 256 << 10


class TooLarge(Exception):
    """More data than the quota or size cap allows."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass
class Received:
    size: int
    checksum: str
    os_hash_value: str
    virtual_size: int | None


class DataSink:
    def __init__(
        self,
        writer: StoreWriter | None,
        inspector: Inspector | None,
        limit: int | None = None,
    ) -> None:
        self.writer = writer
        self.inspector = inspector
        self.limit = limit
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        # md5 and the store's write run beside sha512 (hashlib and file writes
        # release the GIL on large buffers): a transfer costs the slowest lane.
        self._helper: ThreadPoolExecutor | None = None

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise TooLarge(self.size)
        if self.inspector is not None:
            self.inspector.feed(data)
        if len(data) < PARALLEL_MIN:
            self.md5.update(data)
            self.sha512.update(data)
            if self.writer is not None:
                self.writer.write(data)
            return
        # Two lanes, one per core: sha512 (the slowest hash) here; md5 and the
        # store's write in the helper. hashlib and file writes release the GIL.
        if self._helper is None:
            self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-md5")
        side = self._helper.submit(self._md5_and_store, data)
        try:
            self.sha512.update(data)
        finally:
            side.result()

    def _md5_and_store(self, data: bytes | memoryview) -> None:
        self.md5.update(data)
        if self.writer is not None:
            self.writer.write(data)

    def _close_helper(self) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None

    def finish(self) -> Received:
        """Verify the format and describe the data (the writer is not committed)."""
        self._close_helper()
        virtual = self.inspector.finish(self.size) if self.inspector is not None else None
        return Received(self.size, self.md5.hexdigest(), self.sha512.hexdigest(), virtual)

    def abort(self) -> None:
        self._close_helper()
        if self.writer is not None:
            self.writer.abort()


async def pump(
    chunks: AsyncIterator[bytes],
    write: Callable[[bytes], None],
    batch: int = BATCH,
) -> None:
    """Feed ``chunks`` to the blocking ``write`` in a thread, one batch ahead."""
    try:
        await _pump(chunks, write, batch)
    except BaseExceptionGroup as group:  # the task group wraps what the writer raised
        inner = group.exceptions[0] if len(group.exceptions) == 1 else None
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if inner is None:
            raise
        raise inner from None


async def _pump(chunks: AsyncIterator[bytes], write: Callable[[bytes], None], batch: int) -> None:
    pending: list[bytes] = []
    pending_size = 0
    previous: list[BaseException | None] | None = None
    async with anyio.create_task_group() as tg:
        done = anyio.Event()
        done.set()

        async def flush(data: bytes, finished: anyio.Event, box: list[BaseException | None]) -> None:
            try:
                await anyio.to_thread.run_sync(write, data)
            except BaseException as exc:  # handed to the receiving side
                box[0] = exc
            finally:
                finished.set()

        async def wait_previous() -> None:
            await done.wait()
            if previous is not None and previous[0] is not None:
                raise previous[0]

        async for chunk in chunks:
            if not chunk:
                continue
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= batch:
                await wait_previous()
                data = b"".join(pending)
                pending.clear()
                pending_size = 0
                done = anyio.Event()
                previous = [None]
                tg.start_soon(flush, data, done, previous)
        await wait_previous()
        if pending:
            await anyio.to_thread.run_sync(write, b"".join(pending))
