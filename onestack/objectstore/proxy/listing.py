"""Listings: query parameters, entries, and the text / JSON / XML bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape, quoteattr

import orjson

from onestack.objectstore import timestamp
from onestack.objectstore.http import Request, fail

FORMATS = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}


@dataclass
class ListingParams:
    limit: int
    marker: str
    end_marker: str
    prefix: str
    delimiter: str
    reverse: bool


def _param(req: Request, name: str) -> str:
    value = req.params.get(name, "")
    try:
        value.encode("utf-8")
    except UnicodeError:
        raise fail(400, f'"{name}" parameter not valid UTF-8') from None
    return value


def listing_params(req: Request, max_limit: int) -> ListingParams:
    limit = max_limit
    given = req.params.get("limit", "")
    if given and given.isdigit():
        limit = int(given)
        if limit > max_limit:
            raise fail(412, f"Maximum limit is {max_limit}")
    delimiter = _param(req, "delimiter")
    if delimiter and (len(delimiter) > 1 or ord(delimiter) > 254):
        raise fail(412, "Bad delimiter")
    prefix = _param(req, "prefix")
    path = req.params.get("path")
    if path is not None:
        prefix = path.rstrip("/") + "/" if path else ""
        delimiter = "/"
    reverse = req.params.get("reverse", "").lower() in ("true", "1", "yes", "on", "t", "y")
    return ListingParams(limit, _param(req, "marker"), _param(req, "end_marker"), prefix,
                         delimiter, reverse)


def content_type_for(req: Request) -> str:
    """text/plain, application/json or application/xml (406 if none is acceptable)."""
    fmt = req.params.get("format")
    if fmt:
        return FORMATS.get(fmt.lower(), "text/plain")
    accept = req.headers.get("accept")
    if not accept:
        return "text/plain"
    best: tuple[float, int, str] | None = None
    offers = ["text/plain", "application/json", "application/xml", "text/xml"]
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        q = 1.0
        for p in parts[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    raise fail(400, "Invalid Accept header") from None
        if q <= 0:
            continue
        for rank, offer in enumerate(offers):
            if media in (offer, "*/*") or (media.endswith("/*") and offer.startswith(media[:-1])):
                key = (-q, rank if media != offer else -1, offer)
                if best is None or key < best:
                    best = key
    if best is None:
        raise fail(406)
    return "application/xml" if best[2] == "text/xml" else best[2]


def object_entries(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(row) == 1:
            out.append({"subdir": row[0]})
            continue
        name, created, size, ctype, etag = row
        entry: dict[str, Any] = {"bytes": size, "hash": etag, "name": name,
                                 "content_type": ctype, "last_modified": timestamp.iso(created)}
        if ";" in ctype:
            base, _, params = ctype.partition(";")
            kept = []
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key == "swift_bytes":
                    entry["bytes"] = int(value)
                elif key in ("slo_etag", "s3_etag"):
                    entry[key] = value
                elif key == "symlink_target":
                    entry["symlink_path"] = unquote(value)
                else:
                    kept.append(param.strip())
            entry["content_type"] = "; ".join([base.strip(), *kept]) if kept else base.strip()
        out.append(entry)
    return out


def container_entries(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(row) == 1:
            out.append({"subdir": row[0]})
            continue
        name, count, size, put_ts = row
        out.append({"name": name, "count": count, "bytes": size,
                    "last_modified": timestamp.iso(put_ts)})
    return out


def render_names(rows: list[tuple[Any, ...]]) -> bytes:
    """A plain-text listing straight from the rows (names and subdirs)."""
    if not rows:
        return b""
    return ("\n".join([r[0] for r in rows]) + "\n").encode()


def render(entries: list[dict[str, Any]], ctype: str, kind: str, name: str) -> bytes:
    if ctype == "application/json":
        return orjson.dumps(entries)
    if ctype == "text/plain":
        if not entries:
            return b""
        return ("\n".join(e.get("name", e.get("subdir", "")) for e in entries) + "\n").encode()
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    if kind == "account":
        lines.append(f"<account name={quoteattr(name)}>")
        for e in entries:
            if "subdir" in e:
                lines.append(f"<subdir name={quoteattr(e['subdir'])} />")
            else:
                lines.append(f"<container><name>{escape(e['name'])}</name>"
                             f"<count>{e['count']}</count><bytes>{e['bytes']}</bytes>"
                             f"<last_modified>{e['last_modified']}</last_modified></container>")
        lines.append("</account>")
        return "\n".join(lines).encode()
    body = [f"<container name={quoteattr(name)}>"]
    for e in entries:
        if "subdir" in e:
            body.append(f"<subdir name={quoteattr(e['subdir'])}>"
                        f"<name>{escape(e['subdir'])}</name></subdir>")
        else:
            body.append(f"<object><name>{escape(e['name'])}</name><hash>{e['hash']}</hash>"
                        f"<bytes>{e['bytes']}</bytes>"
                        f"<content_type>{escape(e['content_type'])}</content_type>"
                        f"<last_modified>{e['last_modified']}</last_modified></object>")
    body.append("</container>")
    return (lines[0] + "\n" + "".join(body)).encode()
