"""cache_short: memoized for short keys, computed every time for long ones (never kept)."""

from __future__ import annotations

from gateway.short_cache import cache_short


def test_short_keys_are_cached_and_long_ones_are_not() -> None:
    calls: list[str] = []

    @cache_short(maxsize=8, max_len=4)
    def upper(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert upper("ab") == upper("ab") == "AB"
    assert calls == ["ab"]
    long = "x" * 5
    assert upper(long) == upper(long) == "XXXXX"
    assert calls == ["ab", long, long]  # computed each time, so nothing of it is kept

