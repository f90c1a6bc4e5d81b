"""Listings: query parameters, entries, and the text / JSON / XML bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape, quoteattr

import orjson

from onestack.objectstore import timestamp
from onestack.objectstore.http import Request, fail

FORMATS = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}
POLICY = "Policy-0"  # the one storage policy


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
    if "\ufffd" in value:  # (decoding replaced something: were the bytes UTF-8?)
        for key, raw in parse_qsl(req.query_string, keep_blank_values=True,
                                  encoding="latin-1"):
            if key != name:
                continue
            try:
                raw.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                raise fail(400, f'"{name}" parameter not valid UTF-8') from None
    return value


def listing_params(req: Request, max_limit: int) -> ListingParams:
    limit = max_limit
    given = req.params.get("limit", "")
    if given and given.isdigit():
        limit = int(given)
        if limit > max_limit:
            raise fail(412, f"Maximum limit is {max_limit}",
                       content_type="text/html; charset=UTF-8")
    delimiter = _param(req, "delimiter")  # one character or more (Swift 2.38)
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
                    raise fail(400, "Invalid Accept header",
                               content_type="text/html; charset=UTF-8") from None
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


def _params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """``base; k=v; k=v`` as (base, [(k, v), ...])."""
    base, _, rest = value.partition(";")
    out = []
    for param in rest.split(";"):
        key, sep, val = param.strip().partition("=")
        if key:
            out.append((key, val if sep else ""))
    return base.strip(), out


def object_entries(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Listing entries as Swift shows them: the data's parameters (kept with the
    etag, or by older rows with the content type) become ``bytes`` (an SLO's
    ``swift_bytes``), ``slo_etag``, ``symlink_path``, ``symlink_etag`` and
    ``symlink_bytes``."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(row) == 1:
            out.append({"subdir": row[0]})
            continue
        name, created, size, ctype, etag = row
        entry: dict[str, Any] = {"bytes": size, "hash": etag, "name": name,
                                 "content_type": ctype, "last_modified": timestamp.iso(created)}
        if ";" in ctype or ";" in etag:
            _entry_params(entry, ctype, etag)
        out.append(entry)
    return out


def _entry_params(entry: dict[str, Any], ctype: str, etag: str) -> None:
    kept_ctype: list[str] = []
    kept_etag: list[str] = []
    base_ctype, ctype_params = _params(ctype)
    base_etag, etag_params = _params(etag)
    for kept, params in ((kept_ctype, ctype_params), (kept_etag, etag_params)):
        for key, value in params:
            if key == "swift_bytes":
                entry["bytes"] = int(value)
            elif key == "slo_etag":
                entry["slo_etag"] = f'"{value}"'
            elif key == "s3_etag":  # s3api's multipart etag (X-Object-Sysmeta-Container-
                entry["s3_etag"] = value  # Update-Override-Etag on the manifest)
            elif key == "symlink_target":
                entry["symlink_path"] = value if kept is kept_etag else quote(unquote(value))
            elif key == "symlink_target_etag":
                entry["symlink_etag"] = value
            elif key == "symlink_target_bytes":
                entry["symlink_bytes"] = int(value)
            else:
                kept.append(f"{key}={value}")
    entry["content_type"] = ";".join([base_ctype, *kept_ctype]) if kept_ctype else base_ctype
    entry["hash"] = "".join([base_etag, *(f"; {p}" for p in kept_etag)])


def container_entries(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if len(row) == 1:
            out.append({"subdir": row[0]})
            continue
        name, count, size, put_ts = row
        out.append({"name": name, "count": count, "bytes": size,
                    "last_modified": timestamp.iso(put_ts), "storage_policy": POLICY})
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
                policy = (f"<storage_policy>{escape(e['storage_policy'])}</storage_policy>"
                          if "storage_policy" in e else "")
                lines.append(f"<container><name>{escape(e['name'])}</name>"
                             f"<count>{e['count']}</count><bytes>{e['bytes']}</bytes>"
                             f"<last_modified>{e['last_modified']}</last_modified>{policy}"
                             f"</container>")
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
