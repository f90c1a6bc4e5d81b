"""Streaming a large object made of segments (shared by SLO and DLO)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

import orjson

from onestack.objectstore.http import Headers, Request, fail
from onestack.objectstore.proxy import ranges


@dataclass
class Segment:
    path: str  # /container/object (in the manifest's account)
    start: int  # first byte of the segment object used
    length: int  # bytes used from it


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
            out.append(Segment(seg.path, seg.start + a, b - a))
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


def respond(req: Request, app: object, account: str, headers: Headers, segments: list[Segment],
            etag: str, source: str) -> object:
    total = sum(s.length for s in segments)

    def body_range(start: int, end: int) -> AsyncIterator[bytes]:
        return stream(req, app, account, plan(segments, start, end), source)

    return ranges.respond(req, headers, total, etag, body_range)


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
