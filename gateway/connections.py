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

from aiohttp import web
from aiohttp.web_protocol import RequestHandler


class _HeadDeadline(RequestHandler):
    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._close_head_wait_by(self._loop.time() + self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._waiter is not None and not self._waiter.done():  # a request head is (starting to) arrive
            self._close_head_wait_by(self._loop.time() + self._header_timeout)
        super().data_received(data)

    def _close_head_wait_by(self, close_time: float) -> None:
        # aiohttp's own keep-alive timer closes the connection if it is still waiting for a head then.
        if self._keepalive_timeout and close_time >= self._next_keepalive_close_time:
            return
        self._next_keepalive_close_time = close_time
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        self._keepalive_handle = self._loop.call_at(close_time, self._process_keepalive)


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
