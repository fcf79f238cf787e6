"""The bounded, expiring cache behind every per-token cache."""

from gateway.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_at_their_own_deadline():
    clock = Clock()
    cache: TtlCache[str] = TtlCache(10, clock)
    cache.put("a", "A", 1010)
    cache.put("b", "B", 1020)
    cache.put("gone", "G", 999)  # already expired: not stored
    assert (cache.get("a"), cache.get("b"), cache.get("gone")) == ("A", "B", None)
    clock.now = 1015
    assert (cache.get("a"), cache.get("b")) == (None, "B")
    cache.discard("b")
    assert cache.get("b") is None and len(cache) == 0


def test_bounded_expired_first_then_oldest():
    clock = Clock()
    cache: TtlCache[int] = TtlCache(100, clock)
    for i in range(50):
        cache.put(("old", i), i, 1001)
    for i in range(50):
        cache.put(("live", i), i, 2000)
    clock.now = 1002
    cache.put("new", 1, 2000)
    assert len(cache) == 51 and cache.get(("live", 0)) == 0
    for i in range(100):
        cache.put(("more", i), i, 2000)
    assert len(cache) <= 100 and cache.get(("more", 99)) == 99


def test_a_quiet_cache_drops_expired_entries_within_a_minute():
    """Expired entries must not wait for the cache to fill: a refresh result carries whole tokens."""
    clock = Clock()
    cache: TtlCache[str] = TtlCache(10_000, clock)
    for i in range(500):
        cache.put(i, "token" * 100, 1030)
    clock.now = 1031
    cache.put("recent", "x", 1100)
    assert len(cache) == 501  # the sweep is amortized: not on every put
    clock.now = 1000 + TtlCache.SWEEP_EVERY
    cache.put("next", "y", 1100)
    assert len(cache) == 2 and cache.get("recent") == "x"
