"""A session sealed for storage, and opened again: what both stores do with a SessionState.

The cookie store seals for its cookie name, the Redis store for the Redis key (the AEAD's
associated data), so a sealed value opens only where it was written. Opening is AES-GCM, JSON
and two JWT payloads: an unchanged sealed value is opened once, then found by its digest.
"""

from __future__ import annotations

import hashlib
import json
import time

from ..ttl_cache import TtlCache
from .crypto import SecretBox
from .model import SessionState, envelope

OPENED_CACHE_ENTRIES = 10_000  # only values that opened: garbage cannot flush real sessions out


class SealedSessions:
    def __init__(self, box: SecretBox, max_lifetime: float) -> None:
        self.box = box
        self.max_lifetime = max_lifetime
        self._opened: TtlCache[SessionState] = TtlCache(OPENED_CACHE_ENTRIES)

    def seal(self, state: SessionState, context: str) -> str:
        return self.box.seal(json.dumps(state.to_envelope(time.time()), separators=(",", ":")).encode(), context.encode())

    def open(self, sealed: str, context: str) -> SessionState | None:
        """The state `sealed` holds, or None: not ours, not of our shape, or past max_lifetime."""
        key = hashlib.blake2b(f"{context}\0{sealed}".encode(), digest_size=16).digest()  # 16 bytes, not 5 KB
        state = self._opened.get(key)
        if state is None:
            plaintext = self.box.open(sealed, context.encode())
            data = envelope(plaintext) if plaintext is not None else None
            state = SessionState.from_envelope(data) if data is not None else None
            if state is None:
                return None
            self._opened.put(key, state, state.started_at + self.max_lifetime)
        return state if self.alive(state) else None

    def alive(self, state: SessionState) -> bool:
        """Within max_lifetime of its sign-in (checked on every use: caches may hold it a little longer)."""
        return time.time() - state.started_at <= self.max_lifetime

    def seconds_left(self, state: SessionState) -> int:
        return int(state.started_at + self.max_lifetime - time.time())
