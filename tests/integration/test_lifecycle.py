"""The gateway as a real process: streaming in bounded memory, SIGTERM drain, worker processes."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.servers import gateway_config, start_runner

SIZE = 200 * 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
async def test_200mb_download_and_upload_stream_in_bounded_memory(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream))
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        received = 0
        async with http.get(f"{gateway.url}/download?size={SIZE}") as response:
            assert response.status == 200 and response.headers["Content-Length"] == str(SIZE)
            async for chunk in response.content.iter_chunked(1 << 20):
                received += len(chunk)
        assert received == SIZE

        block = bytes(range(256)) * 4096  # 1 MiB
        expected = hashlib.sha256()

        async def body():
            for _ in range(SIZE // len(block)):
                expected.update(block)
                yield block

        async with http.post(f"{gateway.url}/api/echo", data=body()) as response:
            seen = await response.json()
        assert seen["body_bytes"] == SIZE and seen["body_sha256"] == expected.hexdigest()
    peak = peak_rss_mib(gateway.process.pid)
    assert peak < 100, f"gateway peaked at {peak:.0f} MiB RSS while moving 2 x 200 MB"


async def test_sigterm_lets_in_flight_requests_finish(gateway_process):
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(1.5)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner, upstream = await start_runner(app)
    try:
        gateway = gateway_process(gateway_config(upstream, shutdown_grace="10s"))
        async with aiohttp.ClientSession() as http:
            request = asyncio.create_task(http.get(gateway.url + "/slow"))
            await asyncio.wait_for(started.wait(), 5)
            gateway.process.send_signal(signal.SIGTERM)
            response = await request
            assert response.status == 200 and await response.text() == "finished"
            exit_code = await asyncio.to_thread(gateway.process.wait, 15)
            assert exit_code == 0
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(gateway.url + "/healthz")
        assert "draining" in gateway.log()
    finally:
        await runner.cleanup()


def listening_pids(port: int) -> set[int]:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(part.split("=")[1].rstrip(",)")) for part in out.replace(",", " ").split() if part.startswith("pid=")}


async def test_workers_share_one_port_and_stop_together(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream), workers=2)
    port = int(gateway.url.rsplit(":", 1)[1])
    children = set(map(int, subprocess.run(["pgrep", "-P", str(gateway.process.pid)], capture_output=True, text=True).stdout.split()))
    deadline = time.monotonic() + 10
    while len(listening_pids(port)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the second worker may still be starting
    workers = listening_pids(port)
    assert len(workers) == 2 and workers <= children  # children also holds multiprocessing's resource tracker
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.get(gateway.url + "/api/whoami", headers={"Connection": "close"}) as response:
                assert response.status == 200
    gateway.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gateway.process.wait, 20) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the parent"


async def test_sigterm_closes_websockets_with_going_away(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream, shutdown_grace="20s"))
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(gateway.url + "/ws/echo") as ws:
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "ping"
            began = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            message = await ws.receive(timeout=10)
            assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1001
    assert await asyncio.to_thread(gateway.process.wait, 15) == 0
    assert time.monotonic() - began < 5, "an open WebSocket must not hold shutdown for the whole grace period"
