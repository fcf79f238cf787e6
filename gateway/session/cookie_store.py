"""Encrypted, chunked cookie sessions.

A Cognito session (id + access + refresh token) is 4-6 KB, over the ~4 KB a browser keeps in
one cookie, so the sealed value is split into `<name>_0`, `<name>_1`, … Each Set-Cookie line
stays under 4,000 bytes with its attributes. Anything that does not open (tampered, truncated,
sealed with a removed key, too old) is simply no session.

A browser sends the same Cookie header request after request: an unchanged header maps straight
to its opened session (`by_header`), so a signed-in request costs a dict lookup.
"""

from __future__ import annotations

from aiohttp import web

from ..ttl_cache import TtlCache
from .crypto import SecretBox
from .model import SessionState
from .sealed import SealedSessions
from .store import SetCookie, prefixed

MAX_SET_COOKIE_BYTES = 4000
_ATTRIBUTE_ALLOWANCE = 160  # "; Path=/; Max-Age=…; expires=…; HttpOnly; SameSite=Lax; Secure"
MAX_CHUNKS = 8  # a bound on what we read back: a client cannot make us join 1,000 cookies
BY_HEADER_ENTRIES = 2_000  # keyed by whole Cookie headers of at most MAX_CACHED_HEADER: ~16 MB at most
MAX_CACHED_HEADER = 8192  # a session (~5 KB) and the app's own cookies; longer headers are opened each time


class CookieSessionStore:
    def __init__(self, box: SecretBox, cookie_name: str, secure: bool, max_lifetime: float) -> None:
        self.cookie_name = prefixed(cookie_name, secure)
        self.sealed = SealedSessions(box, max_lifetime)
        self.secure = secure
        self.max_lifetime = max_lifetime
        self.chunk_size = MAX_SET_COOKIE_BYTES - _ATTRIBUTE_ALLOWANCE - len(self.cookie_name) - 3
        # Only sessions that opened are kept: garbage cookies cannot flush the cache of real ones.
        self.by_header: TtlCache[SessionState] = TtlCache(BY_HEADER_ENTRIES)

    def stale_names(self, request: web.BaseRequest) -> list[str]:
        """Every chunk-like cookie the request carries, gaps or not: all are replaced on save."""
        prefix = self.cookie_name + "_"
        names = [name for name in request.cookies if name.startswith(prefix) and name[len(prefix) :].isdigit()]
        return names[: 2 * MAX_CHUNKS]  # a flood of planted names is not answered with a flood of Set-Cookies

    def duplicated(self, request: web.BaseRequest) -> bool:
        """A chunk name sent twice: a cookie planted for a parent domain or another path beside ours.

        Which one the parser keeps would decide whose session this is, so neither counts.
        """
        prefix = self.cookie_name + "_"
        names = [
            pair.split("=", 1)[0].strip()
            for header in request.headers.getall("Cookie", ())
            for pair in header.split(";")
            if pair.strip().startswith(prefix)
        ]
        return len(names) != len(set(names))

    def chunk_names(self, request: web.BaseRequest) -> list[str]:
        """The chunk cookies this request carries, in order, stopping at the first gap."""
        names = []
        for index in range(MAX_CHUNKS):
            name = f"{self.cookie_name}_{index}"
            if name not in request.cookies:
                break
            names.append(name)
        return names

    async def load(self, request: web.BaseRequest) -> SessionState | None:
        # A browser sends the same Cookie header request after request: parsing its 5 KB costs more than
        # everything else the session does, so an unchanged header maps straight to its session.
        sent = "\n".join(request.headers.getall("Cookie", ()))
        state = self.by_header.get(sent) if sent else None
        if state is None:
            state = self._load_parsed(request)
            if state is not None and len(sent) <= MAX_CACHED_HEADER:
                self.by_header.put(sent, state, state.started_at + self.max_lifetime)
        elif not self.sealed.alive(state):
            return None
        return state

    def _load_parsed(self, request: web.BaseRequest) -> SessionState | None:
        if self.cookie_name + "_0" not in request.cookies or self.duplicated(request):
            return None
        return self.sealed.open("".join(request.cookies[name] for name in self.chunk_names(request)), self.cookie_name)

    async def save(self, request: web.BaseRequest, state: SessionState) -> list[SetCookie]:
        sealed = self.sealed.seal(state, self.cookie_name)
        remaining = max(0, self.sealed.seconds_left(state))
        chunks = [sealed[i : i + self.chunk_size] for i in range(0, len(sealed), self.chunk_size)]
        cookies = [SetCookie(f"{self.cookie_name}_{index}", chunk, remaining, self.secure) for index, chunk in enumerate(chunks)]
        return cookies + self._delete_stale(request, {c.name for c in cookies})

    async def clear(self, request: web.BaseRequest) -> list[SetCookie]:
        return self._delete_stale(request, set())

    def _delete_stale(self, request: web.BaseRequest, written: set[str]) -> list[SetCookie]:
        # Stale chunks of a longer session, planted ones, or all of them on sign-out.
        return [SetCookie(name, None, secure=self.secure) for name in self.stale_names(request) if name not in written]
