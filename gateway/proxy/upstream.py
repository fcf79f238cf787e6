"""Keep-alive HTTP/1.1 connections to the upstreams, and one exchange at a time on each.

aiohttp's ClientSession does much a proxy never needs on every request (cookie jars, redirects,
auth, tracing, header normalization, auto headers, URL re-encoding): measured, it was a quarter
of the gateway's time per request. Here the request head is written as it is, and the response
is read by aiohttp's own protocol and C parser (`ResponseHandler`, the piece ClientSession
uses underneath), so framing, read timeouts and payload errors behave as before. WebSockets
still go through ClientSession (proxy/websocket.py).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientConnectionError, ServerDisconnectedError
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.client_proto import ResponseHandler  # aiohttp is pinned (constraints.txt): internal, but stable in 3.x
from aiohttp.streams import StreamReader
from multidict import CIMultiDictProxy
from yarl import URL

IDLE_TIMEOUT = 30.0  # seconds an idle connection is kept; shorter than common upstream keep-alive timeouts
MAX_PER_UPSTREAM = 256  # connections in use at once to one upstream; more requests wait for one
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CONTROL = re.compile(r"[\r\n\x00]")  # a header name or value that could split the request head


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    content: StreamReader


class _Origin:
    """Idle connections to one scheme://host:port, newest last."""

    def __init__(self, url: URL) -> None:
        self.host = url.raw_host or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if url.scheme == "https" else None
        self.idle: list[tuple[ResponseHandler, float]] = []
        self.slots = asyncio.Semaphore(MAX_PER_UPSTREAM)

    def take_idle(self, now: float) -> ResponseHandler | None:
        while self.idle and now - self.idle[0][1] >= IDLE_TIMEOUT:  # the oldest first: they expire first
            self.idle.pop(0)[0].close()
        while self.idle:
            protocol, since = self.idle.pop()
            if now - since < IDLE_TIMEOUT and protocol.is_connected() and not protocol.should_close:
                return protocol
            protocol.close()
        return None


class UpstreamPool:
    def __init__(self) -> None:
        self._origins: dict[tuple[str, str, int | None], _Origin] = {}

    def _origin(self, url: URL) -> _Origin:
        key = (url.scheme, url.raw_host or "", url.port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(url)
        return origin

    def exchange(
        self,
        url: URL,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterable[bytes] | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> "Exchange":
        """`async with pool.exchange(...) as answer:` — the connection goes back to the pool when the body was read."""
        chunked = body is not None and not _has_length(headers)
        head = _request_head(method, target, headers, chunked)
        return Exchange(self._origin(url), method, head, body, chunked, connect_timeout, read_timeout)

    def close(self) -> None:
        for origin in self._origins.values():
            for protocol, _ in origin.idle:
                protocol.close()
            origin.idle.clear()


def _has_length(headers: Iterable[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-length" for name, _ in headers)


def _request_head(method: str, target: str, headers: Iterable[tuple[str, str]], chunked: bool) -> bytes:
    fields = [f"{name}: {value}" for name, value in headers]
    if _CONTROL.search("".join(fields)) or _CONTROL.search(target) or " " in target:
        raise ValueError("a header or the target would split the request head")
    if chunked:  # a body of unknown length (the client's was chunked): re-framed hop by hop
        fields.append("Transfer-Encoding: chunked")
    text = "\r\n".join([f"{method} {target} HTTP/1.1", *fields])
    # surrogateescape: header bytes that were not UTF-8 go out exactly as they came in
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


class Exchange:
    def __init__(
        self,
        origin: _Origin,
        method: str,
        head: bytes,
        body: AsyncIterable[bytes] | None,
        chunked: bool,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.origin = origin
        self.method = method
        self.head = head
        self.body = body
        # Decided with the head, never read back from its bytes: the last header may be the client's text.
        self.chunked = chunked
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.protocol: ResponseHandler | None = None
        self.sending: asyncio.Task[None] | None = None
        self.payload: StreamReader | None = None

    async def __aenter__(self) -> Answer:
        if self.origin.slots.locked():  # every connection busy: wait at most connect_timeout (then a 504)
            async with asyncio.timeout(self.connect_timeout):
                await self.origin.slots.acquire()
        else:
            await self.origin.slots.acquire()
        try:
            return await self._send()
        except BaseException:
            self._discard()
            self.origin.slots.release()
            raise

    async def _send(self) -> Answer:
        protocol = self.origin.take_idle(time.monotonic())
        reused = protocol is not None
        while True:
            if protocol is None:
                protocol = await self._connect()
            self.protocol = protocol
            protocol.set_response_params(
                skip_payload=self.method == "HEAD", read_until_eof=True, auto_decompress=False, read_timeout=self.read_timeout,
                max_line_size=8190 * 4, max_field_size=8190 * 4,
            )
            transport = protocol.transport
            assert transport is not None
            transport.write(self.head)
            if self.body is not None:
                self.sending = asyncio.create_task(self._send_body(protocol, self.body))
            protocol.start_timeout()
            try:
                return await self._read_head(protocol)
            except ServerDisconnectedError:
                # A kept-alive connection the upstream had just closed: once more on a new one, when
                # nothing of a body was consumed (it cannot be sent twice).
                if not reused or self.body is not None or self.method not in _IDEMPOTENT:
                    raise
                protocol.close()
                protocol, reused = None, False

    async def _connect(self) -> ResponseHandler:
        loop = asyncio.get_running_loop()
        origin = self.origin
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: ResponseHandler(loop), origin.host, origin.port, ssl=origin.ssl, server_hostname=origin.host if origin.ssl else None
            )
        return protocol

    async def _read_head(self, protocol: ResponseHandler) -> Answer:
        while True:
            try:
                message, payload = await protocol.read()
            except HttpProcessingError as exc:  # not HTTP, or malformed: the upstream's fault, a 502
                raise ClientConnectionError(f"malformed response: {exc.message[:80]!r}") from None
            if not 100 <= message.code <= 199 or message.code == 101:
                break  # 1xx informational answers (103 Early Hints, a stray 100) are not the response
        self.payload = payload
        return Answer(message.code, message.reason, message.headers, payload)

    async def _send_body(self, protocol: ResponseHandler, body: AsyncIterable[bytes]) -> None:
        transport = protocol.transport
        chunked = self.chunked
        try:
            async for chunk in body:
                if transport is None or transport.is_closing():
                    return
                if chunked:
                    if chunk:
                        transport.writelines((f"{len(chunk):x}\r\n".encode(), chunk, b"\r\n"))
                else:
                    transport.write(chunk)
                if protocol.writing_paused:
                    await protocol._drain_helper()
            if chunked and transport is not None and not transport.is_closing():
                transport.write(b"0\r\n\r\n")
        except Exception:
            # The client's body failed (over the limit, the client hung up): the upstream must not take
            # a truncated body for a whole one.
            protocol.abort()

    async def __aexit__(self, *exc: Any) -> None:
        protocol = self.protocol
        try:
            done = (
                exc[0] is None
                and protocol is not None
                and self.payload is not None
                and self.payload.is_eof()
                and (self.sending is None or self.sending.done())
                and not protocol.should_close
            )
            if done:
                assert protocol is not None
                self.origin.idle.append((protocol, time.monotonic()))
                self.protocol = None
            else:
                self._discard()
        finally:
            self.origin.slots.release()

    def _discard(self) -> None:
        if self.sending is not None and not self.sending.done():
            self.sending.cancel()
        if self.protocol is not None:
            self.protocol.close()
            self.protocol = None

