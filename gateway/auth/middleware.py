"""The sign-in requirement on proxied requests: load the session, refresh it if due, decide."""

from __future__ import annotations

import time
from typing import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp_session import SESSION_KEY, AbstractStorage, Session, get_session

from ..config import Config
from ..session.model import SignedIn
from .login import unauthenticated
from .refresh import INVALID, REFRESHED, Refresher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
IDENTITY = web.RequestKey("identity", SignedIn)
PROXY_ROUTE = "proxy"  # the catch-all route's name: everything that is not the gateway's own endpoint
SEEN = "seen"  # session key: last activity, for idle_timeout


def require_sign_in(config: Config, refresher: Callable[[], Refresher]) -> Middleware:
    prefix = config.endpoints_prefix
    before_expiry = config.refresh.before_expiry
    idle_timeout = config.session.idle_timeout

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name != PROXY_ROUTE:
            return await handler(request)
        session = await get_session(request)
        signed_in = None if session.empty else SignedIn.from_dict(dict(session))
        if signed_in is None or (idle_timeout and _idle_too_long(session, idle_timeout)):
            if not session.empty:
                session.invalidate()
            return unauthenticated(request, prefix)
        if signed_in.refresh_token and signed_in.expires_within(before_expiry):
            result = await refresher().refresh(signed_in)
            if result.outcome == REFRESHED and result.signed_in is not None:
                signed_in = result.signed_in
                session.update(signed_in.to_dict())  # saved on this response: see save_on_prepare
            elif result.outcome == INVALID:
                session.invalidate()
                return unauthenticated(request, prefix)
        if signed_in.expires_within(0):  # expired and the provider could not refresh it now
            return unauthenticated(request, prefix)
        request[IDENTITY] = signed_in
        return await handler(request)

    return middleware


def _idle_too_long(session: Session, idle_timeout: float) -> bool:
    now = time.time()
    seen = float(session.get(SEEN, session.created))
    if now - seen > idle_timeout:
        return True
    if now - seen > min(60.0, idle_timeout / 10):  # rewrite the cookie now and then, not on every request
        session[SEEN] = int(now)
    return False


def save_on_prepare(storage: AbstractStorage) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """aiohttp-session saves only plain Responses; proxied responses stream, so save as they start."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        session = request.get(SESSION_KEY)
        if session is not None and session._changed and not isinstance(response, web.Response):
            # By now aiohttp has already turned response.cookies into headers, so collect the
            # storage's cookies on a scratch response and add them as Set-Cookie lines ourselves.
            scratch = web.StreamResponse()
            await storage.save_session(request, scratch, session)
            for morsel in scratch.cookies.values():
                response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())
            session._changed = False

    return on_prepare
