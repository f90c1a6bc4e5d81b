"""AWS Signature Version 4, as S3 checks it: pure functions, no I/O.

The canonical request is the method, the URI-encoded path (S3 encodes it
once, ``/`` kept), the sorted URI-encoded query (without the signature),
the signed headers (lower-case names, values trimmed with inner runs of
spaces made one, repeated headers joined by ``,``), their names, and the
payload hash (``x-amz-content-sha256``, or ``UNSIGNED-PAYLOAD``). The string
to sign is ``AWS4-HMAC-SHA256``, the request time, the scope
``date/region/s3/aws4_request`` and the canonical request's SHA-256; the key
is an HMAC chain from ``"AWS4" + secret`` over the scope. A streamed
(``aws-chunked``) body signs each chunk with the previous signature.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINAL = "aws4_request"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_VALUES = (STREAMING, STREAMING_TRAILER, STREAMING_UNSIGNED_TRAILER,
                    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
                    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")
_UNRESERVED = "-_.~"


@dataclass(frozen=True)
class Credential:
    """``<access>/<date>/<region>/<service>/aws4_request``."""

    access: str
    date: str
    region: str
    service: str
    terminal: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminal}"


def parse_credential(value: str) -> Credential | None:
    parts = value.split("/")
    if len(parts) != 5 or not parts[0]:
        return None
    return Credential(*parts)


def parse_amz_date(value: str) -> float | None:
    """Seconds since the epoch of ``20130524T000000Z``, or None."""
    try:
        return float(calendar.timegm(time.strptime(value, AMZ_DATE)))
    except (ValueError, OverflowError):
        return None


def amz_date(ts: float) -> str:
    return time.strftime(AMZ_DATE, time.gmtime(ts))


def uri_encode(value: str, safe: str = "") -> str:
    return quote(value, safe=_UNRESERVED + safe)


def canonical_uri(path: str) -> str:
    """The decoded path, URI-encoded once (S3 does not encode twice)."""
    return uri_encode(path or "/", "/")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params
                   if k != "X-Amz-Signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def header_value(value: str) -> str:
    return " ".join(value.strip().split())


def canonical_headers(headers: Iterable[tuple[str, str]],
                      signed: list[str]) -> str | None:
    """The canonical header block for the signed names; None if one is missing."""
    wanted = set(signed)
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.strip().lower()
        if key in wanted:
            values.setdefault(key, []).append(header_value(value))
    if len(values) != len(wanted):
        return None
    return "".join(f"{name}:{','.join(values[name])}\n" for name in signed)


def canonical_request(method: str, path: str, params: Iterable[tuple[str, str]],
                      header_block: str, signed: list[str], payload_hash: str) -> str:
    return "\n".join([method, canonical_uri(path), canonical_query(params), header_block,
                      ";".join(signed), payload_hash])


def string_to_sign(request_time: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{request_time}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for piece in (date, region, service, TERMINAL):
        key = hmac.new(key, piece.encode("utf-8"), hashlib.sha256).digest()
    return key


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def chunk_string_to_sign(request_time: str, scope: str, previous: str,
                         chunk_sha256: str) -> str:
    return "\n".join([f"{ALGORITHM}-PAYLOAD", request_time, scope, previous, EMPTY_SHA256,
                      chunk_sha256])


def trailer_string_to_sign(request_time: str, scope: str, previous: str,
                           trailers: dict[str, str]) -> str:
    block = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items())
                    if k != "x-amz-trailer-signature") or "\n"
    digest = hashlib.sha256(block.encode("utf-8")).hexdigest()
    return "\n".join([f"{ALGORITHM}-TRAILER", request_time, scope, previous, digest])


def equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def looks_like_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
