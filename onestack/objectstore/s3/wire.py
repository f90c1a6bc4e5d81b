"""How Swift's answers look to S3 clients: headers, ETags, times, owners."""

from __future__ import annotations

import calendar
import time
from email.utils import formatdate

from onestack.objectstore.http import Headers
from onestack.objectstore.s3.xml import Element

S3_ETAG = "x-object-sysmeta-s3api-etag"
UPLOAD_ID = "x-object-sysmeta-s3api-upload-id"
KEPT = frozenset({"accept-ranges", "content-length", "content-type", "content-range",
                  "content-encoding", "content-disposition", "content-language", "etag",
                  "last-modified", "x-robots-tag", "cache-control", "expires"})


def s3_time(iso: str) -> str:
    """A listing's ``last_modified`` (ISO, microseconds) as S3 shows it: rounded up
    to the second, as ``Last-Modified`` is."""
    whole, _, frac = iso.partition(".")
    ts = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    if frac.strip("0"):
        ts += 1
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def http_to_s3_time(value: str) -> str:
    from email.utils import parsedate_to_datetime

    try:
        ts = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        ts = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def quoted(etag: str) -> str:
    etag = etag.strip()
    return etag if len(etag) >= 2 and etag[0] == etag[-1] == '"' else f'"{etag}"'


def object_headers(swift: Headers) -> Headers:
    """Swift's object headers as S3's (user metadata as ``x-amz-meta-*``; the
    multipart upload's ETag where there is one)."""
    out = Headers()
    for key, value in swift.items():
        if key.startswith("x-object-meta-"):
            out["x-amz-meta-" + key[len("x-object-meta-"):]] = value
        elif key in KEPT:
            out[key] = value
        elif key == "x-delete-at":
            try:
                at = formatdate(int(value), usegmt=True)
            except ValueError:
                continue
            out["x-amz-expiration"] = f'expiry-date="{at}", rule-id="swift-object-expiration"'
    override = swift.get(S3_ETAG)
    if override:
        out["etag"] = quoted(override)
    elif swift.get("x-static-large-object", "").lower() == "true" and "etag" in out:
        out["etag"] = quoted(out["etag"].strip('"') + "-N")
    elif "etag" in out:
        out["etag"] = quoted(out["etag"])
    return out


def owner(parent: Element, tag: str, user_id: str) -> None:
    elem = parent.add(tag)
    elem.add("ID", user_id)
    elem.add("DisplayName", user_id)


def listing_etag(entry: dict[str, object]) -> str:
    if entry.get("s3_etag"):
        return quoted(str(entry["s3_etag"]))
    if entry.get("slo_etag"):
        return quoted(str(entry["slo_etag"]).strip('"') + "-N")
    return quoted(str(entry.get("hash", "")))
