"""Storing an object's replicas: whole for small bodies, streamed for large ones.

A small body (known length up to ``SMALL``) is read, hashed and written to
each primary in one call per replica, concurrently. A large or chunked body
streams: it is cut into ``CHUNK`` pieces; while the next piece arrives from
the client, the current one is hashed (MD5, in a thread) and written to every
replica (another thread) - memory holds at most two pieces, whatever the size.
Each replica is committed (fsync, rename) at the end; the write succeeds when
a quorum of replicas did. A primary that is down is replaced by a handoff.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from onestack.objectstore.http import Request, fail
from onestack.objectstore.proxy.base import Proxy, quorum_size
from onestack.objectstore.ring import Device
from onestack.objectstore.storage.client import NodeDown, Writer
from onestack.objectstore.storage.diskfile import Conflict, DiskError
from onestack.objectstore.storage.server import ContainerUpdate, Target

SMALL = 1 << 20
CHUNK = 1 << 20
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@dataclass
class PutResult:
    status: int
    etag: str = ""


def _result(statuses: list[int], replicas: int, etag: str) -> PutResult:
    quorum = quorum_size(replicas)
    if statuses.count(201) >= quorum:
        return PutResult(201, etag)
    if 409 in statuses and statuses.count(201) + statuses.count(409) >= quorum:
        return PutResult(202, etag)  # a newer write already won (Swift answers 202)
    return PutResult(503, etag)


async def store(proxy: Proxy, req: Request, part: int, name_hash: str, ts: str,
                meta: dict[str, Any], length: int | None, expected: str | None,
                make_update: Callable[[int, str], ContainerUpdate],
                targets: list[Target]) -> PutResult:
    if length is not None and length <= SMALL:
        return await _store_small(proxy, req, part, name_hash, ts, meta, length, expected,
                                  make_update, targets)
    return await _store_streamed(proxy, req, part, name_hash, ts, meta, expected, make_update,
                                 targets)


def _finish_meta(meta: dict[str, Any], size: int, etag: str) -> dict[str, Any]:
    out = dict(meta)
    out["Content-Length"] = str(size)
    out["ETag"] = etag
    return out


async def _store_small(proxy: Proxy, req: Request, part: int, name_hash: str, ts: str,
                       meta: dict[str, Any], length: int, expected: str | None,
                       make_update: Callable[[int, str], ContainerUpdate],
                       targets: list[Target]) -> PutResult:
    body = await req.read_body(limit=length)
    if len(body) != length:
        raise fail(499)
    if len(body) > 65536:
        etag = await anyio.to_thread.run_sync(_md5, body)
    else:
        etag = _md5(body)
    if expected is not None and expected != etag:
        raise fail(422)
    full = _finish_meta(meta, len(body), etag)
    update = make_update(len(body), etag)
    ring = proxy.cluster.object_ring
    client = proxy.client
    statuses = await proxy.write_all(
        ring, part,
        lambda node, i: client.object_put(node, part, name_hash, ts, body, full, update,
                                          targets[i]))
    return _result(statuses, ring.replicas, etag)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def _open_writers(proxy: Proxy, part: int, name_hash: str, ts: str,
                        targets: list[Target]) -> tuple[list[Writer], list[int]]:
    """A writer per primary (a handoff for a primary that is down)."""
    ring = proxy.cluster.object_ring
    handoffs = ring.get_more_nodes(part)
    client = proxy.client

    async def one(i: int, node: Device) -> Writer | int:
        while True:
            try:
                return await client.object_writer(node, part, name_hash, ts, targets[i])
            except Conflict:
                return 409
            except (NodeDown, DiskError):
                nxt = next(handoffs, None)
                if nxt is None:
                    return 503
                node = nxt

    opened = await asyncio.gather(*(one(i, n) for i, n in enumerate(ring.get_part_nodes(part))))
    writers = [w for w in opened if not isinstance(w, int)]
    failures = [w for w in opened if isinstance(w, int)]
    return writers, failures


async def _store_streamed(proxy: Proxy, req: Request, part: int, name_hash: str, ts: str,
                          meta: dict[str, Any], expected: str | None,
                          make_update: Callable[[int, str], ContainerUpdate],
                          targets: list[Target]) -> PutResult:
    ring = proxy.cluster.object_ring
    quorum = quorum_size(ring.replicas)
    writers, failures = await _open_writers(proxy, part, name_hash, ts, targets)
    if len(writers) < quorum:
        await _abort(writers)
        if 409 in failures:
            return PutResult(202)
        return PutResult(503)
    md5 = hashlib.md5(usedforsecurity=False)
    max_size = proxy.settings.max_file_size
    size = 0
    live = list(writers)
    pending: asyncio.Future[None] | None = None
    buf = bytearray()

    async def flush(data: bytes) -> None:
        nonlocal live
        results = await asyncio.gather(
            anyio.to_thread.run_sync(md5.update, data),
            *(w.write(data) for w in live), return_exceptions=True)
        if isinstance(results[0], BaseException):
            raise results[0]
        keep = [w for w, r in zip(live, results[1:], strict=True) if r is None]
        for w, r in zip(live, results[1:], strict=True):
            if r is not None:
                await w.abort()
        live = keep
        if len(live) < quorum:
            raise fail(503)

    try:
        async for chunk in req.body:
            size += len(chunk)
            if size > max_size:  # a chunked body: Swift's plain 413 page, not the
                raise fail(413)   # "Your request is too large." of a Content-Length
            buf += chunk
            if len(buf) >= CHUNK:
                data = bytes(buf)
                buf.clear()
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(flush(data))
        if pending is not None:
            await pending
            pending = None
        if buf:
            await flush(bytes(buf))
        etag = md5.hexdigest()
        if expected is not None and expected != etag:
            raise fail(422)
        full = _finish_meta(meta, size, etag)
        update = make_update(size, etag)
        statuses = list(await asyncio.gather(*(w.commit(full, update) for w in live)))
        statuses += [503] * (ring.replicas - len(statuses))
        return _result(statuses, ring.replicas, etag)
    except BaseException:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await _abort(live)
        raise


async def _abort(writers: list[Writer]) -> None:
    await asyncio.gather(*(w.abort() for w in writers), return_exceptions=True)
