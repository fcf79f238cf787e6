"""The sign-in requirement on proxied requests, as aiohttp middleware."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from ..session.model import SignedIn
from .login import current_user, unauthenticated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY = web.RequestKey("identity", SignedIn)
PROXY_ROUTE = "proxy"  # the catch-all route's name: everything that is not the gateway's own endpoint


def require_sign_in(endpoints_prefix: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name != PROXY_ROUTE:
            return await handler(request)
        signed_in = await current_user(request)
        if signed_in is None:
            return unauthenticated(request, endpoints_prefix)
        request[IDENTITY] = signed_in
        return await handler(request)

    return middleware
