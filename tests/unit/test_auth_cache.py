"""CachingValidator: time-to-live, the token's own expiry, forget, size bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from onestack.common import auth
from onestack.common.auth import AuthContext, CachingValidator
from onestack.common.errors import Unauthorized


class FakeTime:
    """Stands in for the ``time`` module inside ``onestack.common.auth``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(auth, "time", fake)
    return fake


class Inner:
    """A validator that counts its calls; tokens listed in ``revoked`` fail."""

    def __init__(self, lifetime: timedelta | None = timedelta(hours=1)) -> None:
        self.calls: list[str] = []
        self.revoked: set[str] = set()
        self.lifetime = lifetime
        self.expires: dict[str, datetime | None] = {}

    def validate(self, token: str) -> AuthContext:
        self.calls.append(token)
        if token in self.revoked:
            raise Unauthorized("The request you have made requires authentication.")
        expires = self.expires.get(token)
        if expires is None and self.lifetime is not None:
            expires = datetime.now(UTC).replace(tzinfo=None) + self.lifetime
        return AuthContext(token=token, user_id=f"user-{token}", expires_at=expires)


def test_hit_within_ttl(clock: FakeTime) -> None:
    inner = Inner()
    cache = CachingValidator(inner, ttl=5)
    first = cache.validate("t1")
    clock.advance(4.9)
    assert cache.validate("t1") is first
    assert inner.calls == ["t1"]


def test_revalidates_after_ttl(clock: FakeTime) -> None:
    inner = Inner()
    cache = CachingValidator(inner, ttl=5)
    cache.validate("t1")
    clock.advance(5.1)
    cache.validate("t1")
    assert inner.calls == ["t1", "t1"]
    # a token revoked meanwhile is refused once the entry has expired
    inner.revoked.add("t1")
    assert cache.validate("t1").user_id == "user-t1"  # still cached (within ttl)
    clock.advance(5.1)
    with pytest.raises(Unauthorized):
        cache.validate("t1")


def test_entry_never_outlives_the_token(clock: FakeTime) -> None:
    inner = Inner()
    inner.expires["short"] = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    cache = CachingValidator(inner, ttl=60)
    cache.validate("short")
    clock.advance(1)
    cache.validate("short")
    assert inner.calls == ["short"]
    clock.advance(1.5)  # the token has expired although the ttl has not
    cache.validate("short")
    assert inner.calls == ["short", "short"]


@pytest.fixture
def non_utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not hasattr(time, "tzset"):
        pytest.skip("no time.tzset on this platform")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_expiry_bound_holds_in_any_local_time_zone(clock: FakeTime, non_utc_zone: None) -> None:
    """expires_at is naive UTC (as stored); the local zone must not shift it."""
    inner = Inner()
    inner.expires["short"] = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    cache = CachingValidator(inner, ttl=60)
    cache.validate("short")
    clock.advance(2.5)
    cache.validate("short")
    assert inner.calls == ["short", "short"]


def test_expired_token_is_not_cached(clock: FakeTime) -> None:
    inner = Inner()
    inner.expires["old"] = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=10)
    cache = CachingValidator(inner, ttl=60)
    cache.validate("old")
    cache.validate("old")
    assert inner.calls == ["old", "old"]


def test_token_without_expiry_uses_ttl(clock: FakeTime) -> None:
    inner = Inner(lifetime=None)
    cache = CachingValidator(inner, ttl=5)
    cache.validate("t")
    cache.validate("t")
    assert inner.calls == ["t"]


def test_ttl_zero_disables_the_cache(clock: FakeTime) -> None:
    inner = Inner()
    cache = CachingValidator(inner, ttl=0)
    cache.validate("t")
    cache.validate("t")
    assert inner.calls == ["t", "t"]


def test_failures_are_not_cached(clock: FakeTime) -> None:
    inner = Inner()
    inner.revoked.add("bad")
    cache = CachingValidator(inner, ttl=60)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            cache.validate("bad")
    assert inner.calls == ["bad", "bad"]


def test_forget_one_and_all(clock: FakeTime) -> None:
    inner = Inner()
    cache = CachingValidator(inner, ttl=60)
    cache.validate("a")
    cache.validate("b")
    cache.forget("a")
    cache.forget("never-seen")  # no error
    cache.validate("a")
    cache.validate("b")
    assert inner.calls == ["a", "b", "a"]
    cache.forget()
    cache.validate("a")
    cache.validate("b")
    assert inner.calls == ["a", "b", "a", "a", "b"]


def test_size_bound_evicts_least_recently_used(clock: FakeTime) -> None:
    inner = Inner()
    cache = CachingValidator(inner, ttl=60, size=3)
    for token in ("a", "b", "c"):
        cache.validate(token)
    cache.validate("a")  # a is now the most recently used
    cache.validate("d")  # evicts b
    assert len(cache._entries) == 3
    inner.calls.clear()
    for token in ("a", "c", "d"):
        cache.validate(token)
    assert inner.calls == []
    cache.validate("b")
    assert inner.calls == ["b"]
    assert len(cache._entries) == 3


def test_cached_answers_only_fresh_hits() -> None:
    from onestack.common.auth import AuthContext, CachingValidator

    class Inner:
        calls = 0

        def validate(self, token: str) -> AuthContext:
            Inner.calls += 1
            return AuthContext(token=token, user_id="u")

    cache = CachingValidator(Inner(), ttl=60)
    assert cache.cached("t") is None
    cache.validate("t")
    hit = cache.cached("t")
    assert hit is not None and hit.user_id == "u"
    assert Inner.calls == 1
    cache.forget("t")
    assert cache.cached("t") is None
