"""The gateway as a real process: streaming in bounded memory, SIGTERM drain, supervised workers, readiness."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fixtures.servers import free_port, gateway_config, start_runner
from tests.fixtures.stack import SESSION_SECRET

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


def slow_upstream(started: asyncio.Event, seconds: float) -> web.Application:
    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(seconds)
        return web.Response(text="finished")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    return app


async def refused(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                await response.read()
        return False
    except aiohttp.ClientConnectionError:
        return True


async def test_sigterm_drains_then_lets_in_flight_requests_finish(gateway_process):
    started = asyncio.Event()
    runner, upstream = await start_runner(slow_upstream(started, 3))
    try:
        gateway = gateway_process(gateway_config(upstream, drain_delay="1s", shutdown_grace="10s"))
        async with aiohttp.ClientSession() as http:
            async with http.get(gateway.url + "/readyz") as response:
                assert response.status == 200
            in_flight = asyncio.create_task(http.get(gateway.url + "/slow"))
            await asyncio.wait_for(started.wait(), 5)
            gateway.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            while True:  # "at once": the signal is handled between two requests
                async with http.get(gateway.url + "/readyz") as response:
                    if response.status == 503:
                        assert await response.json() == {"status": "not ready", "reasons": {"gateway": "draining"}}
                        break
                assert time.monotonic() - signalled < 0.5, "/readyz still 200 after SIGTERM"
                await asyncio.sleep(0.02)
            async with http.get(gateway.url + "/fast") as response:  # served normally meanwhile
                assert response.status == 200 and await response.text() == "fast"
                assert response.headers["Connection"] == "close", "during the drain a response ends its connection"
            while not await refused(gateway.url + "/healthz"):
                assert time.monotonic() - signalled < 5, "the listener never closed"
                await asyncio.sleep(0.05)
            closed_after = time.monotonic() - signalled
            assert 0.9 < closed_after < 2.8, f"the listener closed {closed_after:.2f}s after SIGTERM, drain_delay is 1s"
            assert not in_flight.done(), "the listener closes after the delay, not after the in-flight requests"
            response = await in_flight  # started before the signal, still running when the listener closed
            assert response.status == 200 and await response.text() == "finished"
        assert await asyncio.to_thread(gateway.process.wait, 15) == 0
        assert "draining" in gateway.log()
    finally:
        await runner.cleanup()


async def test_sigint_skips_the_drain_delay(gateway_process, demo_upstream):
    """Ctrl-C at a terminal: nobody polls /readyz there, so no 5 s wait."""
    gateway = gateway_process(gateway_config(demo_upstream, drain_delay="5s"))
    began = time.monotonic()
    gateway.process.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(gateway.process.wait, 15) == 0
    assert time.monotonic() - began < 2.5


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


def process_gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie (reaped here when it came to pytest, a subreaper: tests/conftest.py)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    if state != "Z":
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # its parent's to reap
    return True


async def eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


async def test_a_crashed_worker_is_replaced_and_workers_die_with_their_parent(gateway_process, demo_upstream):
    gateway = gateway_process(gateway_config(demo_upstream), workers=2)
    port = int(gateway.url.rsplit(":", 1)[1])
    await eventually(lambda: len(listening_pids(port)) == 2, 10, "2 workers listening")
    victim = min(listening_pids(port))
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: process_gone(victim), 3, "the killed worker exits")
    async with aiohttp.ClientSession() as http:
        for _ in range(10):  # the other worker answers alone meanwhile
            async with http.get(gateway.url + "/api/whoami", headers={"Connection": "close"}) as response:
                assert response.status == 200
    await eventually(lambda: len(listening_pids(port) - {victim}) == 2, 10, "a new worker in its place")
    assert f"(pid {victim}) exited with -9; restarting" in gateway.log()
    workers = listening_pids(port)

    gateway.process.kill()  # SIGKILL: the parent cannot tell its workers anything
    killed = time.monotonic()
    await eventually(lambda: all(process_gone(pid) for pid in workers), 3, "workers exit with their parent")
    assert time.monotonic() - killed < 3
    assert await refused(gateway.url + "/healthz")


class StubProvider:
    """An OpenID provider reduced to discovery and a JWKS whose keys a test sets."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.port = port
        self.keys: list[dict[str, Any]] = []
        self.jwks_served = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def discovery(request: web.Request) -> web.Response:
            base = self.issuer
            return web.json_response(
                {"issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"}
            )

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_served += 1
            return web.json_response({"keys": self.keys})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        self.runner, _ = await start_runner(app, port=self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def public_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": "k1", "use": "sig", "alg": "RS256"}


def signing_in_config(provider: StubProvider, upstream: str, **session: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{free_port()}"
    return gateway_config(
        upstream,
        listen=url.removeprefix("http://"),
        public_url=url,
        provider={"issuer": provider.issuer, "client_id": "gw"},
        session={"secrets": [SESSION_SECRET], **session},
    )


async def readiness(http: aiohttp.ClientSession, gateway: str) -> tuple[int, dict[str, str]]:
    async with http.get(gateway + "/readyz") as response:
        return response.status, (await response.json()).get("reasons", {})


async def until_readiness(http: aiohttp.ClientSession, gateway: str, expected: tuple[int, dict[str, str]], within: float) -> None:
    deadline = time.monotonic() + within
    while (seen := await readiness(http, gateway)) != expected:
        assert time.monotonic() < deadline, f"/readyz is {seen}, not {expected} within {within}s"
        await asyncio.sleep(0.05)


async def test_not_ready_until_the_provider_jwks_has_keys(make_gateway, demo_upstream, http):
    provider = StubProvider(free_port())  # not listening yet: the provider is down
    gateway = await make_gateway(signing_in_config(provider, demo_upstream))
    try:
        down = {"provider": "not loaded: discovery failed: ClientConnectorError"}
        await until_readiness(http, gateway, (503, down), 3)
        await provider.start()  # up, but its JWKS has no key yet: nothing could be verified
        await until_readiness(http, gateway, (503, {"provider": "not loaded: JWKS has no usable signing key"}), 5)
        provider.keys = [public_jwk()]
        await until_readiness(http, gateway, (200, {}), 8)  # the gateway retries after 1, 2, 5 s
    finally:
        await provider.stop()


async def test_not_ready_while_redis_is_down(make_gateway, demo_upstream, redis_factory, http):
    provider = StubProvider(free_port())
    provider.keys = [public_jwk()]
    await provider.start()
    redis = await redis_factory()
    try:
        gateway = await make_gateway(signing_in_config(provider, demo_upstream, store="redis", redis_url=redis.url))
        await until_readiness(http, gateway, (200, {}), 5)
        await redis.kill()
        began = time.monotonic()
        status, reasons = await readiness(http, gateway)
        assert status == 503 and list(reasons) == ["redis"] and reasons["redis"].startswith("redis unreachable")
        assert len(reasons["redis"]) < 80 and time.monotonic() - began < 1.5
        await redis.start()
        assert await readiness(http, gateway) == (200, {})
    finally:
        await provider.stop()
