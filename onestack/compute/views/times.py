"""Times the way Nova writes them.

Both take a ``datetime`` or the text SQLite keeps
(``2026-12-05 07:12:29.123456``), which a long list reads without parsing it
into a ``datetime`` first."""

from __future__ import annotations

from datetime import datetime


def zulu(dt: datetime | str | None) -> str | None:
    """``2012-08-20T21:11:09Z`` (a server's ``created`` / ``updated``)."""
    if dt is None:
        return None
    if isinstance(dt, str):
        return f"{dt[:10]}T{dt[11:19]}Z"
    return dt.replace(microsecond=0).isoformat() + "Z"


def micro(dt: datetime | str | None) -> str | None:
    """``2013-09-23T13:53:12.774549`` (``launched_at``, a key pair's ``created_at``)."""
    if dt is None:
        return None
    if isinstance(dt, str):
        return f"{dt[:10]}T{dt[11:19]}.{(dt[20:26] if len(dt) > 19 else '').ljust(6, '0')}"
    return dt.isoformat(timespec="microseconds")
