"""Conditional requests and byte ranges of object GET/HEAD (Swift's swob rules)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

from onestack.objectstore import timestamp
from onestack.objectstore.http import Headers, Request, Response, error

MAX_RANGES = 50
MAX_RANGE_OVERLAPS = 2
MAX_NONASCENDING_RANGES = 8

BodyRange = Callable[[int, int], AsyncIterator[bytes]]


def parse_range(value: str | None) -> list[tuple[int | None, int | None]] | None:
    """The byte-range-set, or None when the header is absent or invalid (ignored)."""
    if not value:
        return None
    value = value.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    out: list[tuple[int | None, int | None]] = []
    for spec in value[6:].split(","):
        if "-" not in spec:
            return None
        a, b = spec.split("-", 1)
        try:
            start = int(a) if a else None
            if start is not None and (start < 0 or not a.isdigit()):
                return None
            if b:
                if not b.isdigit():
                    return None
                end: int | None = int(b)
                if start is not None and end is not None and end < start:
                    return None
            else:
                end = None
                if start is None:
                    return None
        except ValueError:
            return None
        out.append((start, end))
    return out


def ranges_for_length(ranges: list[tuple[int | None, int | None]],
                      length: int) -> list[tuple[int, int]]:
    """Half-open ranges to serve; [] means unsatisfiable (416)."""
    out: list[tuple[int, int]] = []
    for begin, end in ranges:
        if begin is None:
            assert end is not None
            if end == 0:
                continue
            out.append((max(length - end, 0), length))
        elif end is None:
            if begin < length:
                out.append((begin, length))
        elif begin < length:
            out.append((begin, min(end + 1, length)))
    if len(out) > MAX_RANGES:
        return []
    overlaps = 0
    for i, (s1, e1) in enumerate(out):
        for s2, e2 in out[i + 1:]:
            if s1 < s2 < e1 or s1 < e2 < e1 or s2 < s1 < e2 or s2 < e1 < e2:
                overlaps += 1
                if overlaps > MAX_RANGE_OVERLAPS:
                    return []
    ascending = all(a <= b for a, b in zip(out, out[1:], strict=False))
    if not ascending and len(out) >= MAX_NONASCENDING_RANGES:
        return []
    return out


def _tags(value: str | None) -> set[str] | None:
    if value is None:
        return None
    tags = set()
    for tag in value.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) > 1 and tag.startswith('"') and tag.endswith('"'):
            tag = tag[1:-1]
        if tag:
            tags.add(tag)
    return tags


def conditional_status(req: Request, etag: str | None, last_modified: float | None,
                       exists: bool = True) -> int | None:
    """304 or 412 when the request's conditions say so, else None."""
    if_none_match = _tags(req.headers.get("if-none-match"))
    if_match = _tags(req.headers.get("if-match"))
    if exists and etag and if_none_match is not None and (
            etag in if_none_match or "*" in if_none_match):
        return 304
    if exists and etag and if_match is not None and etag not in if_match and "*" not in if_match:
        return 412
    if not exists and if_match is not None and "*" in if_match:
        return 412
    if exists and last_modified is not None:
        ims = req.headers.get("if-modified-since")
        if ims:
            since = timestamp.parse_http_date(ims)
            if since is not None and last_modified <= since:
                return 304
        ius = req.headers.get("if-unmodified-since")
        if ius:
            since = timestamp.parse_http_date(ius)
            if since is not None and last_modified > since:
                return 412
    return None


def respond(req: Request, headers: Headers, length: int, etag: str | None,
            body_range: BodyRange, close: Callable[[], None] | None = None,
            conditional_etag: str | None = None) -> Response:
    """The object's 200/206/304/412/416 response, streaming only what is asked."""
    resp = _respond(req, headers, length, etag, body_range, close, conditional_etag)
    if close is not None:
        resp.on_close.append(close)
    return resp


def _respond(req: Request, headers: Headers, length: int, etag: str | None,
             body_range: BodyRange, close: Callable[[], None] | None,
             conditional_etag: str | None) -> Response:
    lm_header = headers.get("last-modified")
    last_modified = timestamp.parse_http_date(lm_header) if lm_header else None
    status = conditional_status(req, conditional_etag or etag, last_modified)
    if status is not None:
        if close:
            close()
        out = headers.copy()
        out["Content-Length"] = "0"
        if status == 412:
            out["Content-Type"] = "text/html; charset=UTF-8"
            out.pop("accept-ranges")
        return Response(status, b"", out)
    headers["Accept-Ranges"] = "bytes"
    ranges = parse_range(req.headers.get("range")) if req.method == "GET" else None
    if ranges is not None and length > 0:
        spans = ranges_for_length(ranges, length)
        if not spans:
            if close:
                close()
            resp = error(416, headers=dict(headers.items()))
            resp.headers["Content-Type"] = headers.get("content-type") or "text/html"
            resp.headers["Content-Range"] = f"bytes */{length}"
            return resp
        if len(spans) == 1:
            start, end = spans[0]
            out = headers.copy()
            out["Content-Range"] = f"bytes {start}-{end - 1}/{length}"
            out["Content-Length"] = str(end - start)
            resp = Response(206, _closing(body_range(start, end), close), out)
            return resp
        boundary = os.urandom(16).hex()
        ctype = headers.get("content-type") or "application/octet-stream"
        pieces = []
        total = 0
        for start, end in spans:
            head = (f"--{boundary}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Range: bytes {start}-{end - 1}/{length}\r\n\r\n").encode()
            pieces.append((head, start, end))
            total += len(head) + (end - start) + 2
        tail = f"--{boundary}--".encode()
        total += len(tail)
        out = headers.copy()
        out["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        out["Content-Length"] = str(total)
        return Response(206, _closing(_multi(pieces, tail, body_range), close), out)
    headers["Content-Length"] = str(length)
    if req.method == "HEAD":
        if close:
            close()
        return Response(200, b"", headers)
    return Response(200, _closing(body_range(0, length), close), headers)


async def _multi(pieces: list[tuple[bytes, int, int]], tail: bytes,
                 body_range: BodyRange) -> AsyncIterator[bytes]:
    for head, start, end in pieces:
        yield head
        async for chunk in body_range(start, end):
            yield chunk
        yield b"\r\n"
    yield tail


async def _closing(body: AsyncIterator[bytes], close: Callable[[], None] | None,
                   ) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        if close:
            close()
