"""The short-lived credential/item caches: expiry follows the app clock, clear() works."""

from __future__ import annotations

from medlabel.web.caches import TtlCache
from tests.conftest import FakeClock


def test_entries_expire_after_their_time_to_live() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    cache.put("a", 1)
    assert cache.get("a") == 1
    clock.advance(seconds=5)
    assert cache.get("a") == 1
    clock.advance(seconds=1)
    assert cache.get("a") is None


def test_clear_and_disabled_cache() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    cache.put("a", 1)
    cache.clear()
    assert cache.get("a") is None
    off: TtlCache[str, int] = TtlCache(0, clock)
    off.put("a", 1)
    assert off.get("a") is None and not off.enabled


def test_the_oldest_entries_are_dropped_beyond_the_bound() -> None:
    cache: TtlCache[int, int] = TtlCache(60, FakeClock(), max_entries=3)
    for n in range(5):
        cache.put(n, n)
    assert [cache.get(n) for n in range(5)] == [None, None, 2, 3, 4]


def test_a_clock_going_backwards_invalidates() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    cache.put("a", 1)
    clock.advance(seconds=-1)
    assert cache.get("a") is None
