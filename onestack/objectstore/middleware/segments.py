"""Streaming a large object made of segments (shared by SLO and DLO)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

import orjson

from onestack.objectstore.http import Headers, HTTPError, Request, Response, error, fail
from onestack.objectstore.proxy import ranges


@dataclass
class Segment:
    path: str  # /container/object (in the manifest's account)
    start: int  # first byte of the segment object used
    length: int  # bytes used from it
    data: bytes | None = None  # an SLO's inline bytes (no object)


CONDITIONAL = ("range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def without_conditions(req: Request) -> Request:
    """The same request without Range/If-* (they apply to the whole large object)."""
    headers = req.headers.copy()
    for key in CONDITIONAL:
        del headers[key]
    return Request(req.method, req.path, query_string=req.query_string, headers=headers,
                   body=req.body, environ=req.environ, script_name=req.script_name,
                   remote_addr=req.remote_addr, host=req.host)


def plan(segments: list[Segment], start: int, end: int) -> list[Segment]:
    """The segment slices that make bytes ``[start, end)`` of the whole."""
    out: list[Segment] = []
    pos = 0
    for seg in segments:
        seg_end = pos + seg.length
        if seg_end > start and pos < end:
            a = max(start, pos) - pos
            b = min(end, seg_end) - pos
            out.append(Segment(seg.path, seg.start + a, b - a, seg.data))
        pos = seg_end
        if pos >= end:
            break
    return out


async def stream(req: Request, app: object, account: str, segments: list[Segment],
                 source: str) -> AsyncIterator[bytes]:
    """GET each slice down the pipeline and yield its bytes."""
    for seg in segments:
        if seg.length <= 0:
            continue
        if seg.data is not None:
            yield seg.data[seg.start:seg.start + seg.length]
            continue
        headers = Headers({"Range": f"bytes={seg.start}-{seg.start + seg.length - 1}"})
        sub = req.sub("GET", f"/v1/{account}{seg.path}", headers=headers, source=source)
        resp = await app(sub)  # type: ignore[operator]
        if resp.status not in (200, 206):
            resp.close()
            raise fail(409, f"Segment {seg.path} is gone ({resp.status})")
        got = 0
        try:
            if isinstance(resp.body, bytes):
                data = resp.body
                if resp.status == 200:
                    data = data[seg.start:seg.start + seg.length]
                got += len(data)
                yield data
            else:
                skip = seg.start if resp.status == 200 else 0
                async for chunk in resp.body:
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk = chunk[skip:]
                        skip = 0
                    if got + len(chunk) > seg.length:
                        chunk = chunk[:seg.length - got]
                    got += len(chunk)
                    if chunk:
                        yield chunk
                    if got >= seg.length:
                        break
        finally:
            resp.close()
        if got != seg.length:
            raise fail(409, f"Segment {seg.path} changed size")


async def respond(req: Request, app: object, account: str, headers: Headers,
                  segments: list[Segment], etag: str, source: str) -> Response:
    """The large object's response. Its first segment is fetched before the
    status goes out (Swift's validate_first_segment): if that one is gone the
    answer is a 409; a later segment that is gone cuts the body short."""
    total = sum(s.length for s in segments)

    def body_range(start: int, end: int) -> AsyncIterator[bytes]:
        return stream(req, app, account, plan(segments, start, end), source)

    resp = ranges.respond(req, headers, total, etag, body_range)
    if req.method != "GET" or isinstance(resp.body, bytes):
        return resp
    chunks = resp.body.__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except HTTPError:
        resp.close()
        return error(409)
    resp.body = _then(first, chunks)
    return resp


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


def result_body(ctype: str, data: dict[str, object], errors: list[list[str]], root: str) -> bytes:
    """Swift's bulk/SLO result document (text, JSON or XML)."""
    if ctype == "application/json":
        return orjson.dumps({**data, "Errors": errors})
    if ctype.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(data):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(data[key]))}</{tag}>\n")
        out.append("<errors>\n")
        for name, status in errors:
            out.append(f"<object><name>{escape(name)}</name><status>{escape(status)}"
                       "</status></object>\n")
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode()
    lines = [f"{key}: {data[key]}\n" for key in sorted(data)]
    lines.append("Errors:\n")
    lines.extend(f"{name}, {status}\n" for name, status in errors)
    return "".join(lines).encode()


def accept_format(req: Request) -> str:
    accept = (req.headers.get("accept") or "").lower()
    for ctype in ("application/json", "application/xml", "text/xml"):
        if ctype in accept:
            return ctype
    return "text/plain"


__all__ = ["Segment", "accept_format", "plan", "quote", "respond", "result_body", "stream"]
