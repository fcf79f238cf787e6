"""What a session store is (cookie or Redis), and the cookies it asks to be set.

Stores do their I/O when a session changes (`save`, `clear`) and hand back the cookies the
browser must receive; `cookies.SessionCookies` is the one place that writes them onto a response.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import Morsel
from typing import Literal, Protocol, TypedDict

from aiohttp import web

from .model import SessionState


class CookieAttributes(TypedDict):
    path: str
    httponly: bool
    samesite: Literal["Lax", "Strict", "None"]
    secure: bool


def cookie_attributes(secure: bool) -> CookieAttributes:
    return {"path": "/", "httponly": True, "samesite": "Lax", "secure": secure}


def prefixed(name: str, secure: bool) -> str:
    # __Host- makes the browser refuse the cookie unless Secure, Path=/ and host-only: no subdomain can set it.
    return f"__Host-{name}" if secure else name


@dataclass(frozen=True)
class SetCookie:
    """One Set-Cookie line to send; `value=None` deletes the cookie."""

    name: str
    value: str | None
    max_age: int = 0
    secure: bool = False

    def header_value(self) -> str:
        morsel: Morsel[str] = Morsel()
        morsel.set(self.name, self.value or "", self.value or "")
        attributes = cookie_attributes(self.secure)
        morsel["path"] = attributes["path"]
        morsel["httponly"] = attributes["httponly"]
        morsel["samesite"] = attributes["samesite"]
        if attributes["secure"]:
            morsel["secure"] = True
        if self.value is None:
            morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        morsel["max-age"] = str(self.max_age if self.value is not None else 0)
        return morsel.OutputString()


class SessionStore(Protocol):
    """Cookie and Redis stores alike (oauth2-proxy's SessionStore{Save, Load, Clear})."""

    cookie_name: str

    async def load(self, request: web.BaseRequest) -> SessionState | None:
        """The request's session; None when it has none that opens. SessionError when the store is down."""

    async def save(self, request: web.BaseRequest, state: SessionState) -> list[SetCookie]:
        """Store `state` as this request's session; the cookies that carry it."""

    async def clear(self, request: web.BaseRequest) -> list[SetCookie]:
        """End this request's session; the cookies that delete it."""
