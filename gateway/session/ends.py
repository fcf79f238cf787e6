"""Ended sessions: which session ids, and which users' sessions, may no longer be used.

Clearing a browser's cookie ends only that copy; a copy taken before (another tab's export, a
stolen cookie, a cookie-store session anywhere) would still open every page until its tokens
expire. So sign-out, refresh failure and revocation record the session's id (or, for a revoked
user, "every session of this user begun before now") here, and every request checks it: two dict
lookups, no I/O. A record is kept until every session it names would have passed max_lifetime.

With Redis configured the records are shared by the fleet (session/shared_ends.py): each instance
holds them all in memory, and learns new ones from Redis pub/sub.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .model import SessionState

log = logging.getLogger("gateway.session")
PRUNE_EVERY = 60.0  # seconds between sweeps of records past their use


@dataclass(frozen=True)
class Ended:
    """One record: a session id (`kind` "s") or a user's sub (`kind` "u"), ended at `at`."""

    kind: str
    name: str
    at: float

    @property
    def member(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, member: str, at: float) -> "Ended | None":
        kind, _, name = member.partition(":")
        return cls(kind, name, at) if kind in ("s", "u") and name else None

    def message(self) -> str:
        """How a record travels between processes (pub/sub, the workers' log): `<time> <member>`."""
        return f"{self.at!r} {self.member}"

    @classmethod
    def from_message(cls, data: bytes | str) -> "Ended | None":
        """A record from `message()`'s form; None for anything else (garbage, NaN, infinities)."""
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        at, _, member = text.strip().partition(" ")
        try:
            when = float(at)
        except ValueError:
            return None
        return cls.parse(member, when) if math.isfinite(when) else None


class Publisher(Protocol):
    """Where records go beyond this process (Redis); None for one process."""

    async def publish(self, record: Ended) -> None: ...


class EndedSessions:
    def __init__(self, max_lifetime: float) -> None:
        self.max_lifetime = max_lifetime
        self.publisher: Publisher | None = None
        self._sessions: dict[str, float] = {}  # sid -> ended at
        self._users: dict[str, float] = {}  # sub -> sessions begun at or before this have ended
        self._watchers: dict[str, set[Callable[[], None]]] = {}  # sid or "u:"+sub -> what to call when it ends
        self._next_prune = time.time() + PRUNE_EVERY

    def __len__(self) -> int:
        return len(self._sessions) + len(self._users)

    def ended(self, state: SessionState) -> bool:
        """Whether this session (any copy of it) has been ended."""
        if not self._sessions and not self._users:
            return False
        if state.sid in self._sessions:
            return True
        user_ended = self._users.get(state.sub)
        return user_ended is not None and state.started_at <= user_ended

    async def end_session(self, state: SessionState, now: float | None = None) -> None:
        await self.end(Ended("s", state.sid, time.time() if now is None else now))

    async def end_user(self, sub: str, now: float | None = None) -> None:
        await self.end(Ended("u", sub, time.time() if now is None else now))

    async def end(self, record: Ended) -> None:
        """Record here at once, then tell the fleet (a publisher failure is logged by the publisher).

        A record already known is not told again: replaying a signed-out cookie at sign-out costs
        nothing beyond this process.
        """
        if self.apply(record) and self.publisher is not None:
            await self.publisher.publish(record)

    def apply(self, record: Ended) -> bool:
        """A record made here or learnt from the fleet; False when it changes nothing."""
        if record.at < time.time() - self.max_lifetime:
            return False  # every session it could name has expired
        table = self._sessions if record.kind == "s" else self._users
        if table.get(record.name, -1.0) >= record.at:
            return False  # already known (our own record coming back from pub/sub, or a reload)
        table[record.name] = record.at
        for notify in list(self._watchers.get(record.name if record.kind == "s" else "u:" + record.name, ())):
            notify()
        self._prune()
        return True

    def watch(self, state: SessionState, notify: Callable[[], None]) -> Callable[[], None]:
        """Call `notify` (once or more) when this session ends; returns the function that stops watching.

        For long-lived connections (WebSockets) that outlive the request which checked the session.
        Watching the user's key calls `notify` for a user revocation after this session began too;
        the watcher checks `ended()` to tell.
        """
        keys = (state.sid, "u:" + state.sub)
        for key in keys:
            self._watchers.setdefault(key, set()).add(notify)

        def stop() -> None:
            for key in keys:
                watchers = self._watchers.get(key)
                if watchers is not None:
                    watchers.discard(notify)
                    if not watchers:
                        del self._watchers[key]

        return stop

    def _prune(self) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        horizon = now - self.max_lifetime
        for table in (self._sessions, self._users):
            for name in [name for name, at in table.items() if at < horizon]:
                del table[name]
