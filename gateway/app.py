"""create_app(config): wires config -> middleware -> proxy into one aiohttp Application."""

from __future__ import annotations

from typing import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .auth.identity import IdentityHeaders, Principal
from .auth.middleware import PRINCIPAL, PROXY_ROUTE, Handler
from .auth.same_origin import OwnOrigins
from .auth.setup import IDENTITY_HEADERS, OWN_ORIGINS, gateway_cookie_filter, setup_auth
from .config import Config
from .hosts import request_host, valid_host
from .ops.health import add_health_routes
from .proxy.http import HttpProxy
from .proxy.routing import Route, Router
from .proxy.websocket import WebSocketSlots, bridge, close_bridges, is_websocket_upgrade
from .responses import error_response

CONFIG = web.AppKey("config", Config)
PROXY = web.AppKey("proxy", HttpProxy)
WEBSOCKET_SESSION = web.AppKey("websocket_session", aiohttp.ClientSession)
OPEN_WEBSOCKETS = web.AppKey("open_websockets", set)
WEBSOCKET_SLOTS = web.AppKey("websocket_slots", WebSocketSlots)


def parser_limits(config: Config) -> dict[str, int]:
    """Limits for aiohttp's HTTP parser: above ours, so our middleware can answer 431 with a reason.

    A single line far beyond the limit is still refused by the parser itself (400).
    """
    limit = max(config.limits.max_header_size * 2, 8190)
    return {"max_line_size": limit, "max_field_size": limit}


@web.middleware
async def edge_checks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What no request may bring, whatever its path: oversized headers, a malformed Host."""
    limit = request.app[CONFIG].limits.max_header_size
    size = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
    if size > limit:
        return error_response(request, 431, "headers_too_large", f"The request headers are larger than {limit} bytes.")
    if not valid_host(request.headers.get("Host", "")):
        return error_response(request, 400, "bad_host", "The Host header is not a valid host[:port].")
    return await handler(request)


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    proxy = request.app[PROXY]
    route = proxy.router.select(request_host(request), request.path)
    if route is None:
        return error_response(request, 404, "no_upstream", "No application is configured for this path.")
    headers = proxy.upstream_headers(request, route)
    identity = request.app[IDENTITY_HEADERS]
    identity.strip(headers)
    principal = request.get(PRINCIPAL)
    if principal is not None:
        await identity.add(headers, principal)
    if is_websocket_upgrade(request):
        return await _websocket(request, route, headers, principal)
    return await proxy.forward(request, route, headers)


async def _websocket(request: web.Request, route: Route, headers: CIMultiDict[str], principal: Principal | None) -> web.StreamResponse:
    app = request.app
    if not app[OWN_ORIGINS].websocket_allowed(request):
        # Cross-site WebSocket hijacking: SameSite cookies do not stop a sibling subdomain's page.
        return error_response(request, 403, "origin_not_allowed", "WebSockets may only be opened from this site's own pages.")
    key = f"sub:{principal.claims.get('sub')}" if principal is not None else f"addr:{request.remote}"
    slots = app[WEBSOCKET_SLOTS]
    refused = slots.acquire(key)
    if refused == "total":
        return error_response(request, 503, "too_many_websockets", "Too many WebSockets are open on this gateway. Try again later.")
    if refused == "per_key":
        return error_response(request, 429, "too_many_websockets", f"At most {slots.per_key} WebSockets may be open per session.")
    try:
        limit = app[CONFIG].limits.max_websocket_message
        return await bridge(request, route, headers, app[WEBSOCKET_SESSION], app[OPEN_WEBSOCKETS], limit)
    finally:
        slots.release(key)


def _client_session_ctx(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def client_session(app: web.Application) -> AsyncIterator[None]:
        # One pooled session for every upstream: keep-alive connections are reused across requests.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30, enable_cleanup_closed=True)
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bytes pass through as the upstream encoded them
            cookie_jar=aiohttp.DummyCookieJar(),  # never mix one user's upstream cookies into another's
            timeout=aiohttp.ClientTimeout(total=None),
        )
        private_cookie = gateway_cookie_filter(config.session.cookie_name) if config.auth_enabled else None
        app[PROXY] = HttpProxy(Router(config.upstreams), session, config.trusted_proxies, private_cookie)
        # WebSockets hold a connection for their whole life: in the HTTP pool, 256 of them would leave
        # no connection for plain requests. Their own pool, bounded by limits.max_websockets instead.
        app[WEBSOCKET_SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        yield
        await session.close()
        await app[WEBSOCKET_SESSION].close()

    return client_session


async def _close_websockets(app: web.Application) -> None:
    await close_bridges(app[OPEN_WEBSOCKETS])


def create_app(config: Config) -> web.Application:
    """The gateway as an aiohttp Application; everything it holds is reachable from here."""
    app = web.Application(middlewares=[edge_checks], client_max_size=0)
    app[CONFIG] = config
    app[OPEN_WEBSOCKETS] = set()
    app[WEBSOCKET_SLOTS] = WebSocketSlots(config.limits.max_websockets, config.limits.max_websockets_per_session)
    app[OWN_ORIGINS] = OwnOrigins(config.public_url, config.allowed_origins)
    app[IDENTITY_HEADERS] = IdentityHeaders(config)  # strips spoofed headers even with sign-in off
    add_health_routes(app)
    app.cleanup_ctx.append(_client_session_ctx(config))
    app.on_shutdown.append(_close_websockets)
    if config.auth_enabled:
        setup_auth(app, config)
    app.router.add_route("*", "/{tail:.*}", proxy_handler, name=PROXY_ROUTE)
    return app
