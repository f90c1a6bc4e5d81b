"""An SLO manifest as a client sends it (``PUT ?multipart-manifest=put``): parsed
and checked with Swift's rules and messages, before any segment is looked at.

Each entry is ``{"path": "/container/object"}`` (optionally ``etag``,
``size_bytes`` and one ``range``) or ``{"data": <base64>}`` (inline bytes). An
entry with a problem gets one line ``Index <i>: <problem>``; all the lines
together are the 400's plain-text body. Then each named segment is checked
against what a HEAD of it (as the caller) says: the problems there are listed
by path (``/container/object, 404 Not Found``), in the format the client
accepts.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any
from urllib.parse import quote

import orjson

from onestack.objectstore import timestamp
from onestack.objectstore.http import REASONS, Response, fail
from onestack.objectstore.proxy import ranges

SLO_ETAG = "x-object-sysmeta-slo-etag"
SLO_SIZE = "x-object-sysmeta-slo-size"
HTML = "text/html; charset=UTF-8"
OPTIONAL = {"path": {"etag", "size_bytes", "range"}, "data": set()}
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def status_line(status: int) -> str:
    return f"{status} {REASONS.get(status, ('Unknown', ''))[0]}"


def iso_date(http_date: str) -> str:
    """A segment's Last-Modified as the manifest keeps it (Swift's strftime format)."""
    when = timestamp.parse_http_date(http_date) if http_date else None
    if when is None:
        when = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + ".000000"


def strict_b64decode(value: Any) -> bytes:
    """Base64 that rejects stray characters and bad padding (ValueError)."""
    if not isinstance(value, str) or not _B64.match(value) or len(value) % 4:
        raise ValueError(value)
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(value) from exc


def parse_manifest(raw: bytes, container: str, obj: str) -> list[dict[str, Any]]:
    """The manifest's entries, normalized (``size_bytes`` an int, ``data``
    re-encoded, ``range`` parsed as ``_range``); a 400 listing the problems."""
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise fail(400, "Manifest must be valid JSON.\n", content_type=HTML) from None
    if not isinstance(items, list):
        raise fail(400, "Manifest must be a list.\n", content_type=HTML)
    errors = []
    for i, item in enumerate(items):
        problem = _check_entry(i, item, i == len(items) - 1, container, obj)
        if problem:
            errors.append(f"Index {i}: {problem}")
    if items and all(isinstance(item, dict) and "data" in item for item in items):
        errors.append("Inline data segments require at least one object-backed segment.")
    if errors:
        raise fail(400, "".join(f"{e}\n" for e in errors))
    return items


def _check_entry(i: int, item: Any, last: bool, container: str, obj: str) -> str | None:
    if not isinstance(item, dict):
        return "not a JSON object"
    kind = next((k for k in ("data", "path") if k in item), None)
    if kind is None:
        return "expected keys to include one of 'data' or 'path'"
    extra = sorted(k for k in item if k != kind and k not in OPTIONAL[kind])
    if extra:
        return "extraneous keys " + ", ".join(orjson.dumps(k).decode() for k in extra)
    if kind == "data":
        try:
            data = strict_b64decode(item["data"])
        except ValueError:
            return "data must be valid base64"
        if not data:
            return "too small; each segment must be at least 1 byte."
        item["data"] = base64.b64encode(data).decode("ascii")
        return None
    path = item["path"]
    if not isinstance(path, str):
        return '"path" must be a string'
    if not (item.get("etag") is None or isinstance(item["etag"], str)):
        return '"etag" must be a string or null (if provided)'
    if "/" not in path.strip("/"):
        return "path does not refer to an object. Path must be of the form /container/object."
    size = item.get("size_bytes")
    if size is not None:
        try:
            size = int(size)
        except (TypeError, ValueError):
            return "invalid size_bytes"
        item["size_bytes"] = size
        if size < 1 and not last:
            return "too small; each segment must be at least 1 byte."
    if "/" + path.lstrip("/") == f"/{container}/{obj}":
        return "manifest must not include itself as a segment"
    if item.get("range"):
        parsed = ranges.parse_range(f"bytes={item['range']}") \
            if isinstance(item["range"], str) else None
        if not parsed:
            return "invalid range"
        if len(parsed) > 1:
            return "multiple ranges (only one allowed)"
        if size is not None and len(ranges.ranges_for_length(parsed, size)) != 1:
            return "unsatisfiable range"
        item["_range"] = parsed
    return None


def check_segment(item: dict[str, Any], head: Response, last: bool, min_size: int,
                  problems: list[list[str]]) -> tuple[int, dict[str, Any]]:
    """(bytes the segment gives, the entry the stored manifest keeps), noting
    problems (``[path, problem]``) against what a HEAD of the segment said."""
    name = quote(item["path"])
    if not head.is_success:
        problems.append([name, status_line(head.status)])
        return 0, {}
    size = int(head.headers.get("content-length", "0"))
    etag = (head.headers.get("etag") or "").strip('"')
    used = size
    seg: dict[str, Any] = {"name": "/" + item["path"].lstrip("/"), "bytes": size, "hash": etag,
                           "content_type": head.headers.get("content-type", ""),
                           "last_modified": iso_date(head.headers.get("last-modified", ""))}
    if item.get("_range"):
        spans = ranges.ranges_for_length(item["_range"], size)
        if not spans:
            problems.append([name, "Unsatisfiable Range"])
        elif spans != [(0, size)]:
            a, b = spans[0]
            seg["range"] = f"{a}-{b - 1}"
            used = b - a
    if used < max(min_size, 1) and not last:
        problems.append([name, "Too small; each segment must be at least 1 byte."])
    if item.get("size_bytes") is not None and item["size_bytes"] != size:
        problems.append([name, "Size Mismatch"])
    if item.get("etag") is not None and item["etag"] != etag:
        problems.append([name, "Etag Mismatch"])
    if head.headers.get("x-static-large-object", "").lower() == "true":
        seg["sub_slo"] = True
        seg["bytes"] = int(head.headers.get(SLO_SIZE, str(size)))
    return used, seg
