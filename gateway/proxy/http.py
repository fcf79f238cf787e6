"""Streaming HTTP proxy: bodies flow through in both directions, never buffered whole."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from ..hosts import split_host
from ..ops.notes import NOTES
from ..responses import error_response
from .headers import ClientView, Network, end_to_end, is_trusted, upstream_request_headers, without_cookies
from .routing import Route, Router
from .upstream import Answer, UpstreamPool

log = logging.getLogger("gateway.proxy")

CHUNK = 64 * 1024
MAX_CACHED_COOKIE_HEADER = 8192  # a session (~5 KB) and the app's own cookies; longer headers are not cached


class BodyLimit:
    """Counts a streamed request body. The body is sent by its own task, which aborts the upstream
    connection when this raises; the request then fails as a client error, so the verdict is a flag."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exceeded = False

    async def stream(self, source: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in source.iter_chunked(CHUNK):
            sent += len(chunk)
            if sent > self.limit:
                self.exceeded = True
                raise ValueError("request body over the limit")
            yield chunk


def client_view(request: web.BaseRequest) -> ClientView:
    host_header = request.headers.get("Host", "")
    port = split_host(host_header)[1] or ("443" if request.secure else "80")
    return ClientView(peer=request.remote or "", proto=request.scheme, host=host_header, port=port)


class HttpProxy:
    """Forwards a request to the upstream its route names and streams the answer back."""

    def __init__(
        self,
        router: Router,
        pool: UpstreamPool,
        trusted_proxies: tuple[Network, ...],
        private_cookie: Callable[[str], bool] | None = None,
    ) -> None:
        self.router = router
        self.pool = pool
        self.trusted_proxies = trusted_proxies
        self.private_cookie = private_cookie  # the gateway's own cookies: never sent upstream
        self._app_cookies_seen: dict[tuple[str, ...], str] = {}

    def upstream_headers(self, request: web.BaseRequest, route: Route, refused: Callable[[str], bool]) -> CIMultiDict[str]:
        """What the upstream gets of the client's headers; `refused` names those a client may never send."""
        trusted = is_trusted(request.remote, self.trusted_proxies)
        headers = upstream_request_headers(
            request.headers, client_view(request), trusted, route.upstream.host_header, route.upstream_host, refused
        )
        if self.private_cookie is not None and "Cookie" in headers:
            without_ours = self._app_cookies(tuple(headers.getall("Cookie")))
            headers.popall("Cookie")
            if without_ours:
                headers["Cookie"] = without_ours
        return headers

    def _app_cookies(self, sent: tuple[str, ...]) -> str:
        """The Cookie header without the gateway's cookies; a browser sends the same header request after request."""
        kept = self._app_cookies_seen.get(sent)
        if kept is None:
            assert self.private_cookie is not None
            kept = without_cookies(list(sent), self.private_cookie)
            if sum(map(len, sent)) <= MAX_CACHED_COOKIE_HEADER:  # bounded in entries and in size (~16 MB)
                if len(self._app_cookies_seen) >= 1024:
                    self._app_cookies_seen.clear()
                self._app_cookies_seen[sent] = kept
        return kept

    async def forward(self, request: web.Request, route: Route, headers: CIMultiDict[str]) -> web.StreamResponse:
        upstream = route.upstream
        limit = upstream.max_body_size
        if limit is not None and request.content_length is not None and request.content_length > limit:
            return _too_large(request, limit)
        body_limit = BodyLimit(limit) if limit is not None else None
        body = None
        if request.body_exists:
            body = request.content.iter_chunked(CHUNK) if body_limit is None else body_limit.stream(request.content)
        try:
            started = time.monotonic()
            exchange = self.pool.exchange(
                route.base, request.method, route.target_path(request.raw_path), headers.items(), body,
                upstream.connect_timeout, upstream.read_timeout,
            )
            async with exchange as answer:
                request[NOTES].upstream_seconds = time.monotonic() - started
                return await self._stream_back(request, answer)
        except asyncio.TimeoutError:
            log.warning("upstream timeout: %s %s", request.method, upstream.url)
            return error_response(request, 504, "upstream_timeout", "The application did not answer in time.")
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a header that would split the head
            if body_limit is not None and body_limit.exceeded:
                return _too_large(request, body_limit.limit)
            if _client_gone(request):  # e.g. it hung up mid-upload: not the application's fault
                log.debug("client went away: %s %s", request.method, upstream.url)
                return web.Response(status=499)  # nobody reads it; nginx's code for this, in case a log does
            log.warning("upstream error: %s %s: %s", request.method, upstream.url, exc.__class__.__name__)
            return error_response(request, 502, "upstream_unreachable", "The application could not be reached.")

    async def _stream_back(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        # Body bytes that came with the upstream's headers go out with ours in one write (one syscall,
        # one packet). Nothing is waited for: a response whose body is slow still gets its headers at once.
        arrived = answer.content.read_nowait(CHUNK)
        kind = _HeadersWithBody if arrived else web.StreamResponse
        response = kind(status=answer.status, reason=answer.reason, headers=end_to_end(answer.headers))
        if "Content-Length" not in answer.headers and (answer.status in (204, 304) or request.method == "HEAD"):
            response.headers.popall("Transfer-Encoding", None)
        await response.prepare(request)
        try:
            if arrived:
                await response.write(arrived)
            async for chunk in answer.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionResetError) as exc:
            if _client_gone(request):
                # The client hung up (aiohttp's ClientConnectionResetError from write() is a ClientError
                # too); leaving the context closes the upstream connection.
                return response
            # Headers are already sent: the only honest signal left is to cut the connection,
            # so the client sees a truncated response instead of a complete-looking one.
            log.warning("upstream failed mid-response: %s", exc.__class__.__name__)
            if request.transport is not None:
                request.transport.abort()
        return response


class _HeadersWithBody(web.StreamResponse):
    """Headers held back until the first body write, then sent with it (aiohttp's web.Response does the same)."""

    _send_headers_immediately = False


def _client_gone(request: web.BaseRequest) -> bool:
    return request.transport is None or request.transport.is_closing()


def _too_large(request: web.BaseRequest, limit: int) -> web.Response:
    return error_response(request, 413, "body_too_large", f"The request body is larger than {limit} bytes.")
