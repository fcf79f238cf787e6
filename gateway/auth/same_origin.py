"""Whether a request comes from a page of the gateway's own origin (or an allowed one).

Cookies do not answer it: SameSite=Lax cookies ride on top-level navigations from any site, and
a sibling subdomain is "same-site" anyway. Browsers say where a request comes from in
Sec-Fetch-Site, Origin and Referer; a request that proves nothing is treated as cross-site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web


def origin_of(url: str) -> str | None:
    """`https://app.example.com:8443/x?y` -> `https://app.example.com:8443` (lower case)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class OwnOrigins:
    """The gateway's public origin plus `allowed_origins`."""

    def __init__(self, public_url: str | None, allowed: tuple[str, ...]) -> None:
        own = origin_of(public_url) if public_url else None
        self.origins = frozenset({*allowed, *([own] if own else [])})

    def allows(self, request: web.BaseRequest, origin: str) -> bool:
        """`origin` is ours, allowed, or names the very host the request was sent to."""
        origin = origin.lower()
        if origin in self.origins:
            return True
        netloc = urlsplit(origin).netloc
        return bool(netloc) and netloc == request.headers.get("Host", "").lower()

    def request_is_ours(self, request: web.BaseRequest) -> bool:
        """A navigation or form post that a page of ours (or the user, typing a URL) started."""
        if request.headers.get("Sec-Fetch-Site") in ("same-origin", "none"):
            return True
        origin = request.headers.get("Origin")
        if origin and origin != "null":
            return self.allows(request, origin)
        referer = origin_of(request.headers.get("Referer", ""))
        return referer is not None and self.allows(request, referer)

    def websocket_allowed(self, request: web.BaseRequest) -> bool:
        """Browsers always send Origin on a WebSocket handshake; other clients need no check."""
        origin = request.headers.get("Origin")
        return origin is None or (origin != "null" and self.allows(request, origin))
