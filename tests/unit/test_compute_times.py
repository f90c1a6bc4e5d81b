"""Nova's time formats from a datetime and from SQLite's stored text alike
(the server list reads the text and does not parse it)."""

from __future__ import annotations

from datetime import datetime

import pytest

from onestack.compute.views.times import micro, zulu

WHEN = datetime(2026, 12, 5, 7, 12, 29, 123456)


@pytest.mark.parametrize("value", [WHEN, "2026-12-05 07:12:29.123456"])
def test_same_text_from_a_datetime_and_from_sqlite(value: datetime | str) -> None:
    assert zulu(value) == "2026-12-05T07:12:29Z"
    assert micro(value) == "2026-12-05T07:12:29.123456"


def test_text_without_microseconds_and_none() -> None:
    assert micro("2026-12-05 07:12:29") == micro(WHEN.replace(microsecond=0)) == \
        "2026-12-05T07:12:29.000000"
    assert zulu("2026-12-05 07:12:29") == "2026-12-05T07:12:29Z"
    assert zulu(None) is None and micro(None) is None
