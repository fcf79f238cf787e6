"""The upstream connection pool against raw servers on 127.0.0.1 that answer exactly as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from yarl import URL

from gateway.proxy.upstream import UpstreamPool

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """Reads one request head (and a body of Content-Length or chunked) per answer; records what came."""

    def __init__(self, answer: Callable[[int], bytes | None], close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after  # close silently after each answer, as an upstream's idle timeout would
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b""
                lower = head.lower()
                if b"content-length:" in lower:
                    length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                elif b"transfer-encoding: chunked" in lower:
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        size = int(line.strip(), 16)
                        body += line + await reader.readexactly(size + 2)
                        if size == 0:
                            break
                self.requests.append(head + body)
                answer = self.answer(len(self.requests))
                if answer is None:  # never a word
                    await asyncio.sleep(1)
                if not answer:  # hang up without a word, as an upstream closing an idle connection just then
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[RawServer], asyncio.Future[URL]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(raw: RawServer) -> URL:
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        return URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


async def fetch(pool: UpstreamPool, url: URL, method: str = "GET", headers=(), body=None) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    async with pool.exchange(url, method, "/x", [("Host", "app"), *headers], body, 2.0, 2.0) as answer:
        return answer.status, await answer.content.read()


async def test_a_connection_is_kept_alive_and_reused(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: OK)
    url, pool = await serve(raw), UpstreamPool()
    assert await fetch(pool, url) == (200, b"ok")
    assert await fetch(pool, url) == (200, b"ok")
    assert raw.connections == 1 and len(raw.requests) == 2
    assert raw.requests[0] == b"GET /x HTTP/1.1\r\nHost: app\r\n\r\n"  # exactly what was given: no invented headers
    pool.close()


async def test_connection_close_is_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    url, pool = await serve(raw), UpstreamPool()
    await fetch(pool, url)
    await fetch(pool, url)
    assert raw.connections == 2
    pool.close()


async def test_an_idle_connection_the_upstream_closed_is_not_used(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: OK, close_after=True)
    url, pool = await serve(raw), UpstreamPool()
    await fetch(pool, url)
    await asyncio.sleep(0.05)  # the upstream has closed the idle connection
    assert await fetch(pool, url) == (200, b"ok")
    assert raw.connections == 2
    pool.close()


async def test_an_idempotent_request_the_upstream_hung_up_on_is_sent_again(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: b"" if n == 2 else OK)  # the 2nd request, on the kept-alive connection, is dropped
    url, pool = await serve(raw), UpstreamPool()
    await fetch(pool, url)
    assert await fetch(pool, url) == (200, b"ok")
    assert raw.connections == 2 and len(raw.requests) == 3
    pool.close()


async def test_a_request_with_a_body_is_never_sent_twice(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: b"" if n == 2 else OK)
    url, pool = await serve(raw), UpstreamPool()
    await fetch(pool, url)

    async def body() -> AsyncIterator[bytes]:
        yield b"data"

    with pytest.raises(aiohttp.ClientError):
        await fetch(pool, url, "POST", [("Content-Length", "4")], body())
    assert len(raw.requests) == 2
    pool.close()


async def test_a_body_of_unknown_length_goes_chunked(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: OK)
    url, pool = await serve(raw), UpstreamPool()

    async def body() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b""
        yield b"world"

    assert await fetch(pool, url, "POST", (), body()) == (200, b"ok")
    assert b"Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n" in raw.requests[0]
    pool.close()


async def test_informational_answers_are_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK)
    url, pool = await serve(raw), UpstreamPool()
    assert await fetch(pool, url) == (200, b"ok")
    pool.close()


async def test_a_response_not_read_to_its_end_closes_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    raw = RawServer(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234" if n == 1 else OK)  # the rest never comes
    url, pool = await serve(raw), UpstreamPool()
    async with pool.exchange(url, "GET", "/x", [("Host", "app")], None, 2.0, 2.0) as answer:
        await answer.content.readexactly(3)
    await fetch(pool, url)
    assert raw.connections == 2
    pool.close()


@pytest.mark.parametrize("header", [("X-Evil", "a\r\nInjected: 1"), ("X-Evil\r\nInjected", "1"), ("X-Nul", "a\x00b")])
async def test_a_header_that_would_split_the_head_is_refused(serve, header) -> None:  # type: ignore[no-untyped-def]
    url = await serve(RawServer(lambda n: OK))
    with pytest.raises(ValueError):
        await fetch(UpstreamPool(), url, headers=[header])


async def test_malformed_answers_are_client_errors(serve) -> None:  # type: ignore[no-untyped-def]
    url, pool = await serve(RawServer(lambda n: b"NOT HTTP\r\n\r\n")), UpstreamPool()
    with pytest.raises(aiohttp.ClientError):
        await fetch(pool, url)
    pool.close()


async def test_a_silent_upstream_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    url, pool = await serve(RawServer(lambda n: None)), UpstreamPool()
    with pytest.raises(asyncio.TimeoutError):
        async with pool.exchange(url, "GET", "/x", [("Host", "app")], None, 2.0, 0.2):
            pass
    pool.close()


async def test_a_header_value_cannot_make_a_sized_body_go_chunked(serve) -> None:  # type: ignore[no-untyped-def]
    """Request smuggling (found in review): the body's framing was read back from the head's last bytes,
    and the last header can be the client's Cookie. A Content-Length body must go out as it is."""
    raw = RawServer(lambda n: OK)
    url, pool = await serve(raw), UpstreamPool()

    async def body() -> AsyncIterator[bytes]:
        yield b"da"
        yield b"ta"

    headers = [("Content-Length", "4"), ("Cookie", "theme=dark Transfer-Encoding: chunked")]
    assert await fetch(pool, url, "POST", headers, body()) == (200, b"ok")
    assert raw.requests[0].endswith(b"Transfer-Encoding: chunked\r\n\r\ndata")  # the value as sent, the body unframed
    assert await fetch(pool, url) == (200, b"ok")  # the connection carries exactly the requests that were sent
    assert len(raw.requests) == 2
    pool.close()
