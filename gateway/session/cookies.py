"""The one place that writes cookies onto a response, whatever made it.

Handlers and the authenticator queue `SetCookie`s on the request (`queue`); `on_prepare`
adds them as Set-Cookie lines just before the headers go out. That works for streamed proxy
responses too, which aiohttp has already prepared by the time a handler returns.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from multidict import CIMultiDict

from .store import SetCookie

_QUEUED = web.RequestKey("queued_cookies", list)
# Forward-auth answers repeat each Set-Cookie in its own header: nginx's $upstream_http_set_cookie
# holds only the first Set-Cookie line, and a chunked session needs all of them (docs/deployment.md).
MIRRORED_COOKIE_HEADER = "X-Auth-Set-Cookie-{}"
MAX_MIRRORED = 4
MIRROR_COOKIES = web.RequestKey("mirror_cookies", bool)
_SHARED_CACHE_DIRECTIVES = frozenset({"public", "s-maxage", "proxy-revalidate"})


def queue(request: web.BaseRequest, cookies: list[SetCookie]) -> None:
    """Cookies for this request's response; a later cookie of the same name replaces an earlier one."""
    queued: list[SetCookie] | None = request.get(_QUEUED)
    if queued is None:
        request[_QUEUED] = queued = []
    names = {c.name for c in cookies}
    queued[:] = [c for c in queued if c.name not in names] + cookies


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    cookies: list[SetCookie] | None = request.get(_QUEUED)
    if not cookies:
        return
    lines = [cookie.header_value() for cookie in cookies]
    for line in lines:
        response.headers.add(hdrs.SET_COOKIE, line)
    keep_from_shared_caches(response.headers)
    if request.get(MIRROR_COOKIES):
        for index, line in enumerate(lines[:MAX_MIRRORED]):
            response.headers[MIRRORED_COOKIE_HEADER.format(index)] = line


def keep_from_shared_caches(headers: CIMultiDict[str]) -> None:
    """A response carrying a session cookie: `private`, whatever the app said.

    An app's `Cache-Control: public` would let a CDN or corporate proxy store the Set-Cookie with
    the page and hand one user's session to everyone who asks for that URL next.
    """
    directives = [d.strip() for value in headers.getall(hdrs.CACHE_CONTROL, ()) for d in value.split(",") if d.strip()]
    kept = [d for d in directives if d.split("=", 1)[0].strip().lower() not in _SHARED_CACHE_DIRECTIVES]
    if not any(d.lower() in ("private", "no-store") for d in kept):
        kept.insert(0, "private")
    headers[hdrs.CACHE_CONTROL] = ", ".join(kept)
