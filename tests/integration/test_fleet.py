"""Fleets: several gateway instances on one Redis, behind a real nginx round-robin; Redis Sentinel
(a real failover) and Redis Cluster (three real masters).

What a fleet shares is all in Redis (sessions, the refresh lock, published refresh results) plus
the same session secrets in every instance's config; so any instance serves any request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures.browser import Browser
from tests.fixtures.proxies import NGINX_FLEET_SITE
from tests.fixtures.redis import ClusterSet, SentinelSet
from tests.fixtures.servers import free_port
from tests.fixtures.stack import SESSION_SECRET, gateway_clients

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
REFRESH_AT_EXPIRY = {"before_expiry": "0s", "timeout": "2s"}
JSON = {"Accept": "application/json"}
NAVIGATE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # as the browser fixture


def gateway_config(url: str, port: int, idp: Any, upstream: str, session: dict[str, Any]) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "public_url": url,
        "upstreams": [{"path": "/", "url": upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-public"},
        "session": {"secrets": [SESSION_SECRET], **session},
        "refresh": REFRESH_AT_EXPIRY,
        "identity": {"pass_access_token": True},  # the app sees which access token a request carried
    }


async def whoami(http: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    """Status and the access token the app received (None when not passed)."""
    async with http.get(url + "/api/whoami", headers=JSON, allow_redirects=False) as response:
        body = await response.read()
        if response.status != 200:
            return response.status, None
        headers = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        return 200, headers.get("x-forwarded-access-token")


async def refresh_calls(idp: Any) -> int:
    return (await idp.admin("GET", "stats"))["token_requests"].get("refresh_token", 0)


async def ready(url: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/readyz") as response:
            return response.status


async def until_ready(url: str) -> None:
    """A new instance is ready once its provider's keys are loaded: a moment after it starts."""
    deadline = time.monotonic() + 5
    while await ready(url) != 200:
        assert time.monotonic() < deadline, "not ready within 5 s"
        await asyncio.sleep(0.05)


def test_the_documented_fleet_site_is_the_one_tested():
    assert NGINX_FLEET_SITE in DOCS.read_text(), "docs/deployment.md section 3 shows NGINX_FLEET_SITE byte for byte"


async def test_two_gateways_behind_nginx_round_robin_share_sign_in_refresh_and_sign_out(
    idp_factory, make_gateway, demo_upstream, redis_server, nginx_fleet, browser
):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(public), token_lifetimes={"access": 3, "id": 3})
    gateways = [
        await make_gateway(gateway_config(public, free_port(), idp, demo_upstream, {"store": "redis", "redis_url": redis_server.url}))
        for _ in range(2)
    ]
    proxy = await nginx_fleet(gateways=gateways, port=port)

    def served_by(method: str, path_prefix: str) -> list[str]:
        """The gateway (host:port) that served each matching request, from nginx's access log."""
        lines = [line.split() for line in proxy.access_log()]
        return [fields[3] for fields in lines if fields[0] == method and fields[1].startswith(path_prefix)]

    addresses = {gateway.removeprefix("http://") for gateway in gateways}
    await browser.sign_in(public + "/")
    # The login started on one instance and its callback was taken by the other: the login-state
    # cookie, sealed with the shared secrets, is read by either.
    (started,), (called_back,) = served_by("GET", "/oauth2/start"), served_by("GET", "/oauth2/callback")
    assert {started, called_back} == addresses, proxy.access_log()

    async with aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar) as http:
        first = [await whoami(http, public) for _ in range(4)]
        assert {status for status, _ in first} == {200} and len({token for _, token in first}) == 1
        assert set(served_by("GET", "/api/whoami")) == addresses, "round-robin: both instances served the session"

        # Refresh through the instance that did not take the callback: nginx alternates, so steer
        # the next request by sending one more to the other.
        if served_by("GET", "/")[-1] != called_back:
            async with http.get(public + "/healthz") as response:
                assert response.status == 200
        assert served_by("GET", "/")[-1] == called_back
        await asyncio.sleep(3.3)  # the access token expires
        status, refreshed = await whoami(http, public)
        assert status == 200 and refreshed != first[0][1]
        assert served_by("GET", "/api/whoami")[-1] != called_back, "refreshed on the other instance"
        # Every instance now serves the new tokens, with no second call (the session in Redis was
        # rewritten; concurrent requests share the lock and the published result).
        after = await asyncio.gather(*(whoami(http, public) for _ in range(20)))
        assert after == [(200, refreshed)] * 20
        assert await refresh_calls(idp) == 1

        # Sign out through one instance: the session is gone on both.
        async with http.get(public + "/oauth2/sign_out", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False) as response:
            assert response.status == 302
        assert await redis_server.keys("gw:session:*") == []
        for url in (public, public, *gateways):
            assert (await whoami(http, url))[0] == 401


async def test_sentinel_failover_keeps_sessions_and_readiness_follows(
    idp_factory, make_gateway, demo_upstream, redis_sentinel: SentinelSet, browser
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(url), token_lifetimes={"access": 4, "id": 4})
    await make_gateway(gateway_config(url, port, idp, demo_upstream, redis_sentinel.session_config()))
    await until_ready(url)
    await browser.sign_in(url + "/")
    signed_in_at = time.monotonic()
    async with aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar) as http:
        status, token = await whoami(http, url)
        assert status == 200
        await redis_sentinel.replicate_now()
        old_master = await redis_sentinel.kill_master()
        seen: list[tuple[int, int]] = []  # (readyz, whoami) until the session answers again
        deadline = time.monotonic() + 10
        while not seen or seen[-1] != (200, 200):
            assert time.monotonic() < deadline, f"not served again within 10 s of the failover: {seen}"
            seen.append((await ready(url), (await whoami(http, url))[0]))
            await asyncio.sleep(0.05)
        assert await redis_sentinel.promoted(old_master, within=1) != old_master
        assert (503, 503) in seen, "with the master gone and none promoted yet: not ready, and requests 503"
        assert {pair for pair in seen} <= {(503, 503), (200, 200)}, seen
        assert (await whoami(http, url)) == (200, token), "the same session, from the promoted replica"

        # The refresh lock and its published result live on the new master too.
        await asyncio.sleep(max(0.0, signed_in_at + 4.3 - time.monotonic()))
        status, refreshed = await whoami(http, url)
        assert status == 200 and refreshed != token
        assert await refresh_calls(idp) == 1


async def test_cluster_sessions_across_slots_refresh_sign_out_and_readiness(
    idp_factory, make_gateway, demo_upstream, redis_cluster: ClusterSet
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(url), token_lifetimes={"access": 3, "id": 3})
    await make_gateway(
        gateway_config(url, port, idp, demo_upstream, {"store": "redis", "redis_cluster": True, "redis_url": redis_cluster.url})
    )
    await until_ready(url)
    async with AsyncExitStack() as closing:
        browsers = [Browser(await closing.enter_async_context(new_browser_session())) for _ in range(4)]
        await cluster_scenario(url, idp, redis_cluster, browsers)


def new_browser_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=NAVIGATE)


async def cluster_scenario(url: str, idp: Any, redis_cluster: ClusterSet, browsers: list[Browser]) -> None:
    for browser in browsers:
        await browser.sign_in(url + "/")
    signed_in_at = time.monotonic()
    # Their session keys hash to different slots (on different nodes): one batched read must not be one MGET.
    slots = {redis_cluster.slot_of_session(browser.cookies()["_gw_session"]) for browser in browsers}
    assert len(slots) > 1

    async def all_at_once() -> list[tuple[int, str | None]]:
        sessions = [aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar) for browser in browsers]
        try:
            return await asyncio.gather(*(whoami(sessions[i % 4], url) for i in range(40)))
        finally:
            for session in sessions:
                await session.close()

    before = await all_at_once()
    assert {status for status, _ in before} == {200}
    await asyncio.sleep(max(0.0, signed_in_at + 3.3 - time.monotonic()))
    after = await all_at_once()
    assert {status for status, _ in after} == {200} and not {token for _, token in after} & {token for _, token in before}
    assert await refresh_calls(idp) == 4, "one refresh per session: the lock and results work on a cluster"

    signed_out = browsers[0]
    async with signed_out.session.get(
        url + "/oauth2/sign_out", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False
    ) as response:
        assert response.status == 302
    async with aiohttp.ClientSession(cookie_jar=signed_out.session.cookie_jar) as http:
        assert (await whoami(http, url))[0] == 401

    # A master that does not answer: /readyz says so (within Redis's 2 s timeout), and recovers.
    paused = redis_cluster.processes[redis_cluster.ports[1]]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        assert await ready(url) == 503
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert await ready(url) == 200
