"""Request bodies as S3 checks them while they stream into the store.

* ``aws_chunked``: the ``aws-chunked`` content encoding (``<hex size>[;chunk-
  signature=<sig>]\\r\\n<data>\\r\\n`` ... a zero-size chunk, then trailers),
  each chunk's signature checked against the previous one's
  (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``), every chunk but the last at least
  8 KiB, the decoded length exactly ``x-amz-decoded-content-length``.
* ``verified``: the payload's SHA-256 (``x-amz-content-sha256``) and its
  ``x-amz-checksum-*`` (from a header, or a trailer) checked at the end.

A failed check raises an ``S3Error`` from inside the body: the store's writer
aborts, and nothing of the object is kept. Hashing of large pieces runs in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread

from onestack.objectstore.s3 import sigv4
from onestack.objectstore.s3.errors import S3Error

MIN_CHUNK = 8192
BLOCK = 1 << 20
THREAD_MIN = 256 * 1024


class Crc32:
    name = "crc32"
    digest_size = 4

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def checksum_hasher(header: str) -> Any:
    """A hasher for ``x-amz-checksum-<algorithm>``; NotImplemented for algorithms
    this store cannot compute."""
    algorithm = header[len("x-amz-checksum-"):]
    if algorithm == "crc32":
        return Crc32()
    if algorithm == "sha1":
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm in ("crc32c", "crc64nvme"):
        raise S3Error("NotImplemented", f"The {header} algorithm is not supported.")
    raise S3Error("InvalidRequest", "The algorithm type you specified in x-amz-checksum- "
                                    "header is invalid.")


def decode_checksum(hasher: Any, value: str | None) -> bytes | None:
    try:
        raw = base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == hasher.digest_size else None


async def _update(hashers: list[Any], data: bytes) -> None:
    if len(data) >= THREAD_MIN:
        def run() -> None:
            for h in hashers:
                h.update(data)

        await anyio.to_thread.run_sync(run)
    else:
        for h in hashers:
            h.update(data)


async def verified(source: AsyncIterator[bytes], length: int | None, sha256: str | None,
                   checksum: tuple[str, Any] | None,
                   expected_checksum: Callable[[], str | None]) -> AsyncIterator[bytes]:
    """``source`` passed through in blocks, its SHA-256 and checksum checked at the end
    (and its length, when known, before anything more than it is taken)."""
    hashers: list[Any] = []
    digest = hashlib.sha256() if sha256 is not None else None
    if digest is not None:
        hashers.append(digest)
    if checksum is not None:
        hashers.append(checksum[1])
    size = 0
    buf = bytearray()
    async for piece in source:
        size += len(piece)
        if length is not None and size > length:
            raise S3Error("IncompleteBody")
        buf += piece
        if len(buf) >= BLOCK:
            block = bytes(buf)
            buf.clear()
            await _update(hashers, block)
            yield block
    block = bytes(buf)
    if length is not None and size != length:
        raise S3Error("IncompleteBody", NumberBytesExpected=length, NumberBytesProvided=size)
    await _update(hashers, block)
    if digest is not None and sha256 is not None and digest.hexdigest() != sha256.lower():
        raise S3Error("XAmzContentSHA256Mismatch", ClientComputedContentSHA256=sha256,
                      S3ComputedContentSHA256=digest.hexdigest())
    if checksum is not None:
        header, hasher = checksum
        want = decode_checksum(hasher, expected_checksum())
        if want is None:
            raise S3Error("InvalidRequest", f"Value for {header} trailing header is invalid.")
        if hasher.digest() != want:
            raise S3Error("BadDigest", f"The {header[len('x-amz-checksum-'):].upper()} you "
                                       "specified did not match the calculated checksum.")
    if block:
        yield block


class ChunkSigner:
    """Checks the signature of each chunk of a signed ``aws-chunked`` body."""

    def __init__(self, key: bytes, request_time: str, scope: str, seed: str) -> None:
        self.key = key
        self.request_time = request_time
        self.scope = scope
        self.previous = seed

    def check(self, chunk_sha256: str, signature: str) -> bool:
        text = sigv4.chunk_string_to_sign(self.request_time, self.scope, self.previous,
                                          chunk_sha256)
        ok = sigv4.equal(sigv4.sign(self.key, text), signature)
        self.previous = signature
        return ok

    def check_trailer(self, trailers: dict[str, str], signature: str) -> bool:
        text = sigv4.trailer_string_to_sign(self.request_time, self.scope, self.previous,
                                            trailers)
        return sigv4.equal(sigv4.sign(self.key, text), signature)


class _Reader:
    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.buf = bytearray()
        self.done = False

    async def _more(self) -> bool:
        if self.done:
            return False
        try:
            self.buf += await self.source.__anext__()
        except StopAsyncIteration:
            self.done = True
            return False
        return True

    async def line(self, limit: int = 4096) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                out = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return out
            if len(self.buf) > limit or not await self._more():
                raise S3Error("IncompleteBody", "The request body terminated unexpectedly")

    async def take(self, most: int) -> bytes:
        if not self.buf and not await self._more():
            raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
        out = bytes(self.buf[:most])
        del self.buf[:most]
        return out


async def aws_chunked(source: AsyncIterator[bytes], decoded_length: int,
                      signer: ChunkSigner | None, trailer_names: set[str],
                      trailers: dict[str, str]) -> AsyncIterator[bytes]:
    """The payload of an ``aws-chunked`` body; ``trailers`` is filled at its end."""
    reader = _Reader(source)
    left = decoded_length
    previous_size: int | None = None
    number = 0
    while True:
        number += 1
        header = (await reader.line()).decode("latin-1")
        size_text, _, params = header.partition(";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise S3Error("IncompleteBody", "The request body terminated unexpectedly") from None
        if size < 0:
            raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
        if previous_size is not None and previous_size < MIN_CHUNK and size:
            raise S3Error("InvalidChunkSizeError", Chunk=number - 1, BadChunkSize=previous_size)
        previous_size = size
        if size > left:
            raise S3Error("IncompleteBody", NumberBytesExpected=decoded_length,
                          NumberBytesProvided=decoded_length - left + size)
        signature = ""
        if signer is not None:
            name, _, signature = params.partition("=")
            if name.strip() != "chunk-signature" or not signature.strip():
                raise S3Error("SignatureDoesNotMatch")
            signature = signature.strip()
        digest = hashlib.sha256() if signer is not None else None
        remaining = size
        while remaining:
            piece = await reader.take(remaining)
            remaining -= len(piece)
            left -= len(piece)
            if digest is not None:
                await _update([digest], piece)
            if piece:
                yield piece
        if signer is not None and digest is not None and not signer.check(
                digest.hexdigest(), signature):
            raise S3Error("SignatureDoesNotMatch")
        if size == 0:
            break
        if await reader.line(0) != b"":
            raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
    if trailer_names:
        while True:
            line = (await reader.line()).decode("latin-1")
            if not line:
                break
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key not in trailer_names:
                raise S3Error("MalformedTrailerError")
            trailers[key] = value.strip()
        if set(trailers) != trailer_names:
            raise S3Error("MalformedTrailerError")
        sig = trailers.get("x-amz-trailer-signature")
        if signer is not None and sig is not None and not signer.check_trailer(trailers, sig):
            raise S3Error("SignatureDoesNotMatch")
    else:
        if reader.buf or await reader._more():
            if bytes(reader.buf[:2]) != b"\r\n":
                raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
    if left:
        raise S3Error("IncompleteBody", NumberBytesExpected=decoded_length,
                      NumberBytesProvided=decoded_length - left)
