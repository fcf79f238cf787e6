"""Memoizing functions of one string that a client chooses (a header name, a Host, a path).

The cache is bounded in entries *and* in what one entry may hold: a key longer than `max_len`
is computed every time, so a client sending 64 KB names or paths cannot make the cache keep
thousands of them (hundreds of MB). Real names, hosts and paths are short and hit the cache.
"""

from __future__ import annotations

from functools import lru_cache, wraps
from typing import Callable, TypeVar

T = TypeVar("T")


def cache_short(maxsize: int, max_len: int = 256) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    def decorate(compute: Callable[[str], T]) -> Callable[[str], T]:
        cached = lru_cache(maxsize=maxsize)(compute)

        @wraps(compute)
        def call(key: str) -> T:
            return cached(key) if len(key) <= max_len else compute(key)

        return call

    return decorate
