"""Times the way Nova writes them."""

from __future__ import annotations

from datetime import datetime


def zulu(dt: datetime | None) -> str | None:
    """``2012-08-20T21:11:09Z`` (a server's ``created`` / ``updated``)."""
    if dt is None:
        return None
    return dt.replace(microsecond=0).isoformat() + "Z"


def micro(dt: datetime | None) -> str | None:
    """``2013-09-23T13:53:12.774549`` (``launched_at``, a key pair's ``created_at``)."""
    if dt is None:
        return None
    return dt.isoformat(timespec="microseconds")
