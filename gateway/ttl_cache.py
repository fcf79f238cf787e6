"""A bounded map whose entries expire: the shape of every per-token cache on the request path."""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Entries live until their own deadline; when full, expired entries go first, then the oldest tenth.

    Bounded so that a flood of distinct tokens costs memory we chose, not memory they choose. Expired
    entries are also swept on a put once a minute: a quiet cache would otherwise hold every dead
    entry (a refresh result carries whole tokens) until it filled up.
    """

    SWEEP_EVERY = 60.0  # seconds

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, tuple[V, float]] = {}
        self._next_sweep = clock() + self.SWEEP_EVERY

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: Hashable, value: V, until: float) -> None:
        now = self.clock()
        if until <= now:
            return
        if now >= self._next_sweep:
            self._sweep(now)
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[key] = (value, until)

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, until) in self._entries.items() if until <= now]:
            del self._entries[key]
        self._next_sweep = now + self.SWEEP_EVERY

    def _evict(self) -> None:
        self._sweep(self.clock())
        # Still full of live entries: drop the oldest tenth at once, so the scan above stays rare.
        overflow = len(self._entries) - self.max_entries * 9 // 10
        for key in list(self._entries)[: max(overflow, 0)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
