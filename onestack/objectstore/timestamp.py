"""Swift's timestamps: seconds since the epoch, ``%016.05f`` (fixed width, so
they order as strings), and the HTTP dates derived from them."""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

_last = 0.0


def now() -> str:
    """A fresh timestamp, strictly after the previous one this process made."""
    global _last
    t = round(time.time(), 5)
    if t <= _last:
        t = round(_last + 0.00001, 5)
    _last = t
    return normal(t)


def normal(value: float | str) -> str:
    return f"{float(value):016.5f}"


def valid(value: str) -> bool:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return False
    return 0 <= f < 10**10


def http_date(ts: float | str) -> str:
    """``Last-Modified``: the timestamp rounded up to a whole second, as Swift does."""
    t = float(ts)
    whole = int(t)
    if t > whole:
        whole += 1
    return formatdate(whole, usegmt=True)


_ISO_SECONDS: dict[str, str] = {}


def iso(ts: float | str) -> str:
    """Listings' ``last_modified``: ISO 8601 with microseconds, no zone.

    Hot in listings (10,000 rows): the date part is cached per second."""
    text = ts if isinstance(ts, str) else normal(ts)
    whole, _, frac = text.partition(".")
    prefix = _ISO_SECONDS.get(whole)
    if prefix is None:
        if len(_ISO_SECONDS) > 100000:
            _ISO_SECONDS.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(whole)))
        _ISO_SECONDS[whole] = prefix
    return f"{prefix}.{(frac + '000000')[:6]}"


def parse_http_date(value: str) -> float | None:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
