"""Idle and trickling connections cannot hold the gateway's file descriptors (Slowloris).

Against a real `python -m gateway run` process whose descriptor limit is lowered to 200: 300
connections that never finish their request head are closed after `limits.header_timeout`, so
the gateway keeps answering; idle keep-alive connections end after `limits.keepalive_timeout`;
a slow request *body* is not a slow head and is not cut.
"""

from __future__ import annotations

import asyncio
import resource
import time

import aiohttp

from tests.fixtures.servers import gateway_config

LIMITS = {"header_timeout": "1s", "keepalive_timeout": "2s"}


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except ConnectionError:
        return True
    except asyncio.TimeoutError:
        return False


async def test_trickling_heads_are_cut_and_the_gateway_keeps_answering(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream, limits=LIMITS))
    resource.prlimit(gateway.process.pid, resource.RLIMIT_NOFILE, (200, 200))
    port = int(gateway.url.rsplit(":", 1)[1])
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(300)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(20):  # one header byte every 0.2 s: the head would take 4 s
            await asyncio.sleep(0.2)
            if writer.is_closing():
                return
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                return

    started = time.monotonic()
    trickling = [asyncio.create_task(trickle(w)) for _, w in streams]
    try:
        closed = await asyncio.gather(*(_closed_by_server(r, 3.5) for r, _ in streams))
        elapsed = time.monotonic() - started
        # Past the descriptor limit the kernel queues connections the gateway cannot accept; those
        # are served once the cut ones free their descriptors, so count the ones that were cut.
        assert sum(closed) >= 280, f"only {sum(closed)} of 300 trickling connections were closed"
        assert elapsed < 4
        async with aiohttp.ClientSession() as http:
            async with http.get(gateway.url + "/healthz", timeout=aiohttp.ClientTimeout(total=3)) as response:
                assert response.status == 200
    finally:
        for task in trickling:
            task.cancel()
        for _, writer in streams:
            writer.close()


async def test_idle_keepalive_connections_end_after_keepalive_timeout(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream, limits=LIMITS))
    port = int(gateway.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        idle = time.monotonic() - started
        assert 1.5 < idle < 3.5, f"closed after {idle:.1f}s of idleness, expected ~2s"
    finally:
        writer.close()


async def test_a_slow_body_is_not_a_slow_head(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream, limits=LIMITS))

    async def body():
        for _ in range(5):  # 2.5 s: longer than header_timeout, well within the upstream's read timeout
            await asyncio.sleep(0.5)
            yield b"x" * 100

    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/api/echo", data=body()) as response:
            assert response.status == 200
            assert (await response.json())["body_bytes"] == 500
