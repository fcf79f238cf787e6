"""Encrypted, chunked cookie sessions: an aiohttp-session storage.

A Cognito session (id + access + refresh token) is 4-6 KB, over the ~4 KB a browser keeps in
one cookie, so the sealed value is split into `<name>_0`, `<name>_1`, … Each Set-Cookie line
stays under 4,000 bytes with its attributes. Anything that does not open (tampered, truncated,
sealed with a removed key, too old) is simply no session.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage, Session

from .crypto import SecretBox
from .model import envelope, signed_in_at

MAX_SET_COOKIE_BYTES = 4000
_ATTRIBUTE_ALLOWANCE = 160  # "; Path=/; Max-Age=…; expires=…; HttpOnly; SameSite=Lax; Secure"
MAX_CHUNKS = 8  # a bound on what we read back: a client cannot make us join 1,000 cookies


def cookie_attributes(secure: bool) -> dict[str, Any]:
    return {"path": "/", "httponly": True, "samesite": "Lax", "secure": secure}


def prefixed(name: str, secure: bool) -> str:
    # __Host- makes the browser refuse the cookie unless Secure, Path=/ and host-only: no subdomain can set it.
    return f"__Host-{name}" if secure else name


class ChunkedCookieStorage(AbstractStorage):
    def __init__(self, box: SecretBox, cookie_name: str, secure: bool, max_lifetime: float) -> None:
        name = prefixed(cookie_name, secure)
        super().__init__(cookie_name=name, max_age=int(max_lifetime), **cookie_attributes(secure))
        self.box = box
        self.secure = secure
        self.max_lifetime = max_lifetime
        self.chunk_size = MAX_SET_COOKIE_BYTES - _ATTRIBUTE_ALLOWANCE - len(name) - 3

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

    async def load_session(self, request: web.Request) -> Session:
        names = [] if self.duplicated(request) else self.chunk_names(request)
        sealed = "".join(request.cookies[name] for name in names)
        data = self._open(sealed) if sealed else None
        if data is None:
            return Session(None, data=None, new=True, max_age=self.max_age)
        return Session(None, data=data, new=False, max_age=self.max_age)

    def _open(self, sealed: str) -> dict[str, Any] | None:
        plaintext = self.box.open(sealed, self.cookie_name.encode())
        if plaintext is None:
            return None
        data = envelope(plaintext)
        if data is None:
            return None
        if time.time() - signed_in_at(data) > self.max_lifetime:
            return None
        return data

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        old = self.stale_names(request)
        data = self._get_session_data(session)
        chunks: list[str] = []
        if data:
            sealed = self.box.seal(json.dumps(data, separators=(",", ":")).encode(), self.cookie_name.encode())
            chunks = [sealed[i : i + self.chunk_size] for i in range(0, len(sealed), self.chunk_size)]
            remaining = max(0, int(signed_in_at(data) + self.max_lifetime - time.time()))
            for index, chunk in enumerate(chunks):
                response.set_cookie(f"{self.cookie_name}_{index}", chunk, max_age=remaining, **cookie_attributes(self.secure))
        written = {f"{self.cookie_name}_{index}" for index in range(len(chunks))}
        for name in old:  # stale chunks of a longer session, planted ones, or all of them on sign-out
            if name not in written:
                response.del_cookie(name, **cookie_attributes(self.secure))
