"""The gate on proxied requests, as aiohttp middleware, and saving refreshed sessions on streamed responses."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp_session import SESSION_KEY, AbstractStorage
from multidict import CIMultiDict

from ..errors import SessionError
from ..hosts import request_host
from ..responses import error_response
from .gate import Decision, Gate, Verdict
from .identity import Principal
from .login import unauthenticated

log = logging.getLogger("gateway.auth")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)
PROXY_ROUTE = "proxy"  # the catch-all route's name: everything that is not the gateway's own endpoint


def require_sign_in(endpoints_prefix: str, gate: Callable[[], Gate]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name != PROXY_ROUTE:
            return await handler(request)
        verdict = await gate().decide(request, request.method, request_host(request), request.raw_path)
        if verdict.decision is not Decision.ALLOW:
            return refusal(request, verdict, endpoints_prefix)
        if verdict.principal is not None:
            request[PRINCIPAL] = verdict.principal
        return await handler(request)

    return middleware


def refusal(request: web.Request, verdict: Verdict, endpoints_prefix: str) -> web.Response:
    """The response for anything but ALLOW, for a request the gateway would proxy."""
    if verdict.decision is Decision.SIGN_IN:
        return unauthenticated(request, endpoints_prefix)
    if verdict.decision is Decision.DENY:
        challenge = 'Bearer realm="gateway"' + (', error="invalid_token"' if verdict.error == "invalid_token" else "")
        return error_response(request, 401, verdict.error, verdict.reason, headers={"WWW-Authenticate": challenge}, json_only=True)
    if verdict.decision is Decision.FORBIDDEN:
        return error_response(request, 403, verdict.error, verdict.reason)
    return error_response(request, 400, verdict.error, f"This path is refused: {verdict.reason}.")


@web.middleware
async def session_store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside aiohttp-session's middleware: a store that cannot be reached is a 503, never a 500."""
    try:
        return await handler(request)
    except SessionError as exc:
        log.error("session store failed: %s", exc)
        return error_response(request, 503, "session_store_unavailable", "Sessions are unavailable right now. Try again in a moment.")


_SHARED_CACHE_DIRECTIVES = frozenset({"public", "s-maxage", "proxy-revalidate"})


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


def save_on_prepare(storage: AbstractStorage) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """aiohttp-session saves only plain Responses; proxied responses stream, so save as they start."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        session = request.get(SESSION_KEY)
        if session is not None and session._changed and not isinstance(response, web.Response):
            # By now aiohttp has already turned response.cookies into headers, so collect the
            # storage's cookies on a scratch response and add them as Set-Cookie lines ourselves.
            scratch = web.StreamResponse()
            try:
                await storage.save_session(request, scratch, session)
            except SessionError as exc:  # the status line is already decided: serve it, keep the old session
                log.error("could not save the refreshed session: %s", exc)
                return
            for morsel in scratch.cookies.values():
                response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())
            if scratch.cookies:
                keep_from_shared_caches(response.headers)
            session._changed = False

    return on_prepare
