"""Times the way Nova writes them."""

from __future__ import annotations

from datetime import datetime


def zulu(dt: datetime | None) -> str | None:
    """``2012-08-20T21:11:09Z`` (a server's ``created`` / ``updated``)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt is not None else None


def micro(dt: datetime | None) -> str | None:
    """``2013-09-23T13:53:12.774549`` (``launched_at``, a key pair's ``created_at``)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") if dt is not None else None
