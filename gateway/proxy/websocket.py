"""WebSocket bridging: frames, pings and close codes relayed both ways, with back-pressure."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Awaitable, Callable

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from ..responses import error_response
from .routing import Route

log = logging.getLogger("gateway.proxy")

# The client library writes its own handshake; copies of the browser's would conflict.
_HANDSHAKE = ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol")
# Codes that may appear in a received close frame's status but must never be sent (RFC 6455 §7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1005, 1006, 1015})


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


Pair = tuple[web.WebSocketResponse, aiohttp.ClientWebSocketResponse]


class SlotRefused(Enum):
    TOTAL = "total"  # this process holds limits.max_websockets already
    PER_KEY = "per_key"  # this user (or address) holds limits.max_websockets_per_session


class WebSocketSlots:
    """How many WebSockets may be open: in total, and per key (a signed-in user, or a client address).

    A WebSocket holds its connections for its whole life; without a cap one browser tab could
    open sockets until the process runs out of file descriptors.
    """

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self.open_by_key: dict[str, int] = {}
        self.open = 0

    def acquire(self, key: str) -> SlotRefused | None:
        """None when a slot was taken (release it later), else which cap refused."""
        if self.open >= self.total:
            return SlotRefused.TOTAL
        if self.open_by_key.get(key, 0) >= self.per_key:
            return SlotRefused.PER_KEY
        self.open += 1
        self.open_by_key[key] = self.open_by_key.get(key, 0) + 1
        return None

    def release(self, key: str) -> None:
        self.open -= 1
        left = self.open_by_key[key] - 1
        if left:
            self.open_by_key[key] = left
        else:
            del self.open_by_key[key]


async def close_bridges(open_pairs: set[Pair]) -> None:
    """On shutdown: tell both ends we are going away; each relay then ends by itself."""
    for client, upstream in list(open_pairs):
        await asyncio.gather(
            client.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"gateway shutting down"),
            upstream.close(code=aiohttp.WSCloseCode.GOING_AWAY),
            return_exceptions=True,
        )


async def bridge(
    request: web.Request,
    route: Route,
    headers: CIMultiDict[str],
    session: aiohttp.ClientSession,
    open_pairs: set[Pair],
    max_message: int,
    session_over: Callable[[], Awaitable[str]] | None = None,
) -> web.StreamResponse:
    """Open the upstream WebSocket first, so its refusal can be reported as an HTTP error.

    `session_over()` returns (a reason) once the session the socket was opened with is over: both
    sides are then closed with 1008, as a socket may not outlive the sign-in that opened it.
    """
    for name in _HANDSHAKE:
        headers.popall(name, None)
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    upstream_cfg = route.upstream
    try:
        async with asyncio.timeout(upstream_cfg.connect_timeout + upstream_cfg.read_timeout):
            upstream = await session.ws_connect(
                route.target(request.raw_path),
                headers=headers,
                protocols=protocols,
                autoclose=False,
                autoping=False,
                max_msg_size=max_message,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
            )
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status if 400 <= exc.status < 500 else 502
        return error_response(request, status, "upstream_refused_websocket", "The application refused the WebSocket.")
    except asyncio.TimeoutError:
        return error_response(request, 504, "upstream_timeout", "The application did not answer in time.")
    except (aiohttp.ClientError, OSError):
        return error_response(request, 502, "upstream_unreachable", "The application could not be reached.")

    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoclose=False,
        autoping=False,
        max_msg_size=max_message,  # a whole message is held in memory: bound it
    )
    pair = (client, upstream)
    open_pairs.add(pair)
    watch = asyncio.ensure_future(session_over()) if session_over is not None else None
    try:
        await client.prepare(request)
        # Each relay ends by itself once either side closes (see _relay), so plain gather is enough.
        relays = asyncio.gather(_relay(client, upstream), _relay(upstream, client))
        if watch is not None:
            await asyncio.wait((relays, watch), return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and not relays.done():
                code, reason = _over(watch)
                await asyncio.gather(
                    client.close(code=code, message=reason), upstream.close(code=code, message=reason), return_exceptions=True
                )
        await relays
    finally:
        if watch is not None:
            watch.cancel()
        open_pairs.discard(pair)
        await upstream.close()
    return client


def _over(watch: asyncio.Future[str]) -> tuple[int, bytes]:
    """The close code and reason for a socket whose session watch ended."""
    error = watch.exception()
    if error is not None:  # a bug must not leave a socket open unchecked: closed, and said in the log
        log.error("WebSocket session check failed", exc_info=error)
        return aiohttp.WSCloseCode.INTERNAL_ERROR, b"session check failed"
    return aiohttp.WSCloseCode.POLICY_VIOLATION, watch.result().encode()[:123]  # a close reason: at most 123 bytes


async def _relay(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy frames from source to sink until one side closes.

    `send_*` waits for the sink's transport to drain, so a slow reader slows the writer
    instead of filling the gateway's memory.
    """
    while True:
        message = await source.receive()
        kind = message.type
        if kind is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind is WSMsgType.PING:
            await sink.ping(message.data)
        elif kind is WSMsgType.PONG:
            await sink.pong(message.data)
        elif kind is WSMsgType.CLOSE:
            code = message.data if message.data and message.data not in _RESERVED_CLOSE_CODES else 1000
            reason = (message.extra or "").encode()
            await sink.close(code=code, message=reason)  # waits for the far side's reply
            await source.close(code=code, message=reason)  # then answers the side that began
            return
        elif kind is WSMsgType.CLOSING:
            return  # the other relay is closing this socket
        else:  # ERROR (e.g. a message over the limit) or CLOSED: no close handshake from the source
            code = 1009 if isinstance(message.data, aiohttp.WebSocketError) and message.data.code == 1009 else 1011
            await sink.close(code=code if kind is WSMsgType.ERROR else 1001)
            return
