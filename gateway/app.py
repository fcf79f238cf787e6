"""create_app(config): builds the object graph from config, then wires it into one aiohttp Application.

A proxied request goes one way: edge checks -> gate (rule, authenticate, decide) -> apply the
verdict's headers -> stream (HTTP or WebSocket). The proxy knows nothing of identity.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from .auth.authenticate import SESSION
from .auth.decide import Decision, Verdict
from .auth.gate import Gate
from .auth.session_watch import SessionWatch
from .auth.same_origin import OwnOrigins
from .auth.setup import add_sign_in, build_gate, gateway_cookie_filter
from .config import Config, LogFormat
from .errors import SessionError
from .hosts import request_host, valid_host
from .ops import metrics, notes, request_id
from .ops.health import READINESS, add_health_routes
from .ops.notes import NOTES, Notes
from .proxy.http import HttpProxy
from .proxy.routing import Route, Router
from .proxy.upstream import UpstreamPool
from .proxy.websocket import Pair, SlotRefused, WebSocketSlots, bridge, close_bridges, is_websocket_upgrade
from .responses import error_response
from .session import cookies

log = logging.getLogger("gateway")


def parser_limits(config: Config) -> dict[str, int]:
    """Limits for aiohttp's HTTP parser: above ours, so our middleware can answer 431 with a reason.

    A single line far beyond the limit is still refused by the parser itself (400).
    """
    limit = max(config.limits.max_header_size * 2, 8190)
    return {"max_line_size": limit, "max_field_size": limit}


class ClientSessions:
    """Connections to the upstreams: opened as requests need them, closed with the app."""

    def __init__(self) -> None:
        self.upstreams = UpstreamPool()
        self.websocket: aiohttp.ClientSession | None = None

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        # WebSockets hold a connection for their whole life, so they are not in the HTTP pool (its
        # per-upstream cap would soon be taken), but in their own, bounded by limits.max_websockets.
        self.websocket = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        yield
        self.upstreams.close()
        await self.websocket.close()

    def get_websocket(self) -> aiohttp.ClientSession:
        assert self.websocket is not None, "used before the app started"
        return self.websocket


class Edge:
    """What no request may bring, whatever its path: oversized headers, a malformed Host. The only middleware."""

    def __init__(self, max_header_size: int, ids_in_events: bool) -> None:
        self.max_header_size = max_header_size
        self.ids_in_events = ids_in_events  # JSON logs: events carry the request id (request_id.current)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id.of(request)
        request[NOTES] = Notes(time.perf_counter(), rid)
        if self.ids_in_events:
            request_id.current.set(rid)
        limit = self.max_header_size
        size = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
        if size > limit:
            return error_response(request, 431, "headers_too_large", f"The request headers are larger than {limit} bytes.")
        if not valid_host(request.headers.get("Host", "")):
            return error_response(request, 400, "bad_host", "The Host header is not a valid host[:port].")
        try:
            return await handler(request)
        except SessionError as exc:  # a store that cannot be reached is a 503, never a 500
            log.error("session store failed: %s", exc)
            metrics.SESSION_STORE_ERRORS.inc()
            return error_response(request, 503, "session_store_unavailable", "Sessions are unavailable right now. Try again in a moment.")


class ProxyPath:
    """Everything that is not the gateway's own endpoint: gate, then proxy what the verdict allows."""

    def __init__(
        self,
        config: Config,
        gate: Gate,
        proxy: HttpProxy,
        sessions: ClientSessions,
        own_origins: OwnOrigins,
        session_watch: SessionWatch | None,
    ) -> None:
        self.gate = gate
        self.session_watch = session_watch  # None with sign-in off
        self.proxy = proxy
        self.sessions = sessions
        self.own_origins = own_origins
        self.max_websocket_message = config.limits.max_websocket_message
        self.slots = WebSocketSlots(config.limits.max_websockets, config.limits.max_websockets_per_session)
        self.open_websockets: set[Pair] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.raw_path.startswith("/"):
            # Absolute form (`GET http://other-vhost/x`): an upstream would take its authority over the Host
            # the gateway sends. Rules refuse it too; this holds with sign-in off.
            return error_response(request, 400, "bad_target", "The request target must be a path.")
        host = request_host(request)
        verdict = await self.gate.verdict(request, request.method, host, request.raw_path)
        if verdict.decision is not Decision.ALLOW:
            return self.gate.refusal(request, verdict)
        route = self.proxy.router.select(host, request.path)
        if route is None:
            return error_response(request, 404, "no_upstream", "No application is configured for this path.")
        noted = request[NOTES]
        noted.upstream = route.upstream.url
        headers = self.proxy.upstream_headers(request, route, verdict.headers_to_remove)
        for name, value in verdict.headers_to_set:
            headers[name] = value
        headers[request_id.HEADER] = noted.request_id
        if is_websocket_upgrade(request):
            return await self._websocket(request, route, headers, verdict)
        return await self.proxy.forward(request, route, headers)

    async def _websocket(self, request: web.Request, route: Route, headers: CIMultiDict[str], verdict: Verdict) -> web.StreamResponse:
        if not self.own_origins.websocket_allowed(request):
            # Cross-site WebSocket hijacking: SameSite cookies do not stop a sibling subdomain's page.
            return error_response(request, 403, "origin_not_allowed", "WebSockets may only be opened from this site's own pages.")
        principal = verdict.principal
        key = f"sub:{principal.claims.get('sub')}" if principal is not None else f"addr:{request.remote}"
        refused = self.slots.acquire(key)
        if refused is SlotRefused.TOTAL:
            return error_response(request, 503, "too_many_websockets", "Too many WebSockets are open on this gateway. Try again later.")
        if refused is SlotRefused.PER_KEY:
            return error_response(request, 429, "too_many_websockets", f"At most {self.slots.per_key} WebSockets may be open per session.")
        # A socket opened with a session lives as long as the session (one opened with a Bearer token is not watched).
        state = request.get(SESSION)
        watch = self.session_watch
        over = functools.partial(watch.over, request, state) if watch is not None and state is not None else None
        metrics.WEBSOCKETS_OPEN.inc()
        try:
            return await bridge(
                request, route, headers, self.sessions.get_websocket(), self.open_websockets, self.max_websocket_message, over
            )
        finally:
            metrics.WEBSOCKETS_OPEN.dec()
            self.slots.release(key)

    async def close_websockets(self, app: web.Application) -> None:
        await close_bridges(self.open_websockets)


def create_app(config: Config, ends_dir: str | None = None) -> web.Application:
    """The gateway as an aiohttp Application; everything it holds is built here, before the first request.

    `ends_dir`: with `--workers N` and no Redis, where the workers share ended sessions.
    """
    own_origins = OwnOrigins(config.public_url, config.allowed_origins)
    gate, sign_in = build_gate(config, own_origins, ends_dir)
    sessions = ClientSessions()
    private_cookie = gateway_cookie_filter(config.session.cookie_name) if sign_in is not None else None
    proxy = HttpProxy(Router(config.upstreams), sessions.upstreams, config.trusted_proxies, private_cookie)
    watch = SessionWatch(sign_in.authenticator, config.session.max_lifetime) if sign_in is not None else None
    proxy_path = ProxyPath(config, gate, proxy, sessions, own_origins, watch)

    app = web.Application(middlewares=[Edge(config.limits.max_header_size, config.logging.format is LogFormat.JSON).middleware], client_max_size=0)
    add_health_routes(app)
    app.cleanup_ctx.append(sessions.lifetime)
    app.on_shutdown.append(proxy_path.close_websockets)
    app.on_response_prepare.append(cookies.on_prepare)
    app.on_response_prepare.append(notes.on_prepare)
    if sign_in is not None:
        add_sign_in(app, sign_in, app[READINESS], config.endpoints_prefix)
    app.router.add_route("*", "/{tail:.*}", proxy_path.handle)
    return app
