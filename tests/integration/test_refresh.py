"""Transparent refresh against the local Cognito with access tokens that live a few seconds."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.fixtures.servers import free_port
from tests.fixtures.stack import SESSION_SECRET, cookie_header, gateway_clients, session_in

SHORT = {"token_lifetimes": {"access": 2, "id": 2}}
REFRESH_AT_EXPIRY = {"before_expiry": "0s", "timeout": "2s"}


async def wait_until_expired(session: dict) -> None:
    await asyncio.sleep(max(0.0, session["exp"] - time.time()) + 0.2)


async def refresh_calls(stack) -> int:
    return (await stack.idp.admin("GET", "stats"))["token_requests"].get("refresh_token", 0)


async def test_request_after_expiry_is_served_with_new_tokens(make_stack, browser):
    stack = await make_stack(idp=SHORT, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    before = session_in(browser.cookies())
    await wait_until_expired(before)
    async with browser.session.get(stack.gateway + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200, "no sign-in page while the refresh token is good"
        assert any(line.startswith("_gw_session_0=") for line in response.headers.getall("Set-Cookie"))
        assert json.loads(await response.text())["raw_path"] == "/api/whoami"
    after = session_in(browser.cookies())
    assert after["at"] != before["at"] and after["id"] != before["id"] and after["exp"] > time.time()
    assert after["rt"] == before["rt"], "without rotation the refresh token stays"
    assert after["iat"] == before["iat"], "max_lifetime still counts from sign-in"
    assert await refresh_calls(stack) == 1


async def test_200_concurrent_requests_on_an_expired_session_make_one_call(make_stack, browser):
    stack = await make_stack(idp=SHORT, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    cookies = {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}
    await wait_until_expired(session_in(cookies))
    headers = {"Cookie": cookie_header(cookies), "Accept": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one() -> int:
            async with http.get(stack.gateway + "/api/whoami", headers=headers) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(200)))
    assert statuses == [200] * 200
    assert await refresh_calls(stack) == 1


async def test_rotation_stores_the_new_refresh_token_and_old_cookies_stay_harmless(make_stack, browser):
    stack = await make_stack(idp={**SHORT, "refresh_token_rotation": True}, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    old_cookies = {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}
    old = session_in(old_cookies)
    await wait_until_expired(old)
    page = await browser.open(stack.gateway + "/api/whoami")
    assert page.status == 200
    new = session_in(browser.cookies())
    assert new["rt"] != old["rt"], "the rotated refresh token is stored"
    # A tab still sending the old cookie a moment later: served from the shared result, no new call.
    async with aiohttp.ClientSession() as http:
        headers = {"Cookie": cookie_header(old_cookies), "Accept": "application/json"}
        async with http.get(stack.gateway + "/api/whoami", headers=headers) as response:
            assert response.status == 200
        # The provider really did rotate: the old refresh token is dead there.
        form = {"grant_type": "refresh_token", "refresh_token": old["rt"], "client_id": stack.client_id}
        async with http.post(stack.idp.token_url, data=form) as response:
            assert response.status == 400 and (await response.json())["error"] == "invalid_grant"
    assert await refresh_calls(stack) == 2  # ours, plus the direct proof above


async def test_provider_down_keeps_serving_until_expiry_then_sign_in(make_stack, browser):
    stack = await make_stack(idp={"token_lifetimes": {"access": 3, "id": 3}}, refresh={"before_expiry": "10s", "timeout": "1s"})
    await browser.sign_in(stack.gateway + "/")
    session = session_in(browser.cookies())
    await stack.idp.admin("POST", "faults", {"mode": "error", "status": 503})
    page = await browser.open(stack.gateway + "/api/whoami")
    assert page.status == 200, "the access token is still valid: keep serving"
    await stack.idp.admin("POST", "faults", {"mode": "hang", "seconds": 5})
    started = time.monotonic()
    async with browser.session.get(stack.gateway + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200
    assert time.monotonic() - started < 2.5, "a hanging provider must not hold requests past refresh.timeout"
    await wait_until_expired(session)
    async with browser.session.get(stack.gateway + "/app", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/oauth2/start")
    async with browser.session.get(stack.gateway + "/api/whoami", headers={"Accept": "application/json"}) as response:
        assert response.status == 401
    await stack.idp.admin("DELETE", "faults")
    await asyncio.sleep(2.1)  # past the back-off
    page = await browser.open(stack.gateway + "/api/whoami")
    assert page.status == 200 and session_in(browser.cookies())["at"] != session["at"], "recovered by refresh"


async def test_revoked_refresh_token_means_sign_in_again(make_stack, browser):
    stack = await make_stack(idp=SHORT, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    session = session_in(browser.cookies())
    async with aiohttp.ClientSession() as http:
        async with http.post(stack.idp.url + "/oauth2/revoke", data={"token": session["rt"], "client_id": stack.client_id}) as response:
            assert response.status == 200
    await wait_until_expired(session)
    for _ in range(3):
        async with browser.session.get(stack.gateway + "/app", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"].startswith("/oauth2/start")
            # The cookie is left alone (a parallel worker may be setting a fresh one) and simply replaced at sign-in.
            assert not [line for line in response.headers.getall("Set-Cookie", []) if line.startswith("_gw_session_")]
    assert await refresh_calls(stack) == 1, "a refused refresh token is not retried on every request"


async def test_max_lifetime_ends_a_session_whatever_the_refreshes(make_stack, browser):
    stack = await make_stack(idp=SHORT, refresh=REFRESH_AT_EXPIRY, session={"max_lifetime": "5s"})
    await browser.sign_in(stack.gateway + "/")
    signed_in_by = time.time()  # the session was created before this
    await wait_until_expired(session_in(browser.cookies()))
    async with browser.session.get(stack.gateway + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200  # refreshed, not redirected
    cookies = {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}
    await asyncio.sleep(max(0.0, signed_in_by + 5.3 - time.time()))
    # Even a client that ignores Max-Age and replays the cookies is refused: the age is inside the seal.
    async with aiohttp.ClientSession() as http:
        headers = {"Cookie": cookie_header(cookies), "Accept": "text/html"}
        async with http.get(stack.gateway + "/app", headers=headers, allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"].startswith("/oauth2/start")


async def test_idle_timeout(make_stack, browser):
    stack = await make_stack(session={"idle_timeout": "2s"})
    await browser.sign_in(stack.gateway + "/")
    for _ in range(3):  # activity keeps it alive past the idle timeout
        await asyncio.sleep(0.9)
        async with browser.session.get(stack.gateway + "/api/whoami", allow_redirects=False) as response:
            assert response.status == 200
    await asyncio.sleep(2.3)
    async with browser.session.get(stack.gateway + "/oauth2/userinfo") as response:
        assert response.status == 401, "the gateway's own endpoints apply the idle timeout too"
    async with browser.session.get(stack.gateway + "/app", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/oauth2/start")


@pytest.mark.slow
async def test_two_gateway_processes_sharing_redis_make_one_call(idp_factory, gateway_process, demo_upstream, redis_server, browser):
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    config = {"clients": gateway_clients(urls[0]), "token_lifetimes": {"access": 3, "id": 3}}
    idp = await idp_factory(**config)

    def gateway_config(url: str) -> dict:
        return {
            "public_url": url,
            "upstreams": [{"path": "/", "url": demo_upstream}],
            "provider": {"issuer": idp.issuer, "client_id": "gw-public"},
            "session": {"secrets": [SESSION_SECRET], "store": "redis", "redis_url": redis_server.url},
            "refresh": REFRESH_AT_EXPIRY,
        }

    first = await asyncio.to_thread(gateway_process, gateway_config(urls[0]), 1, ports[0])
    second = await asyncio.to_thread(gateway_process, gateway_config(urls[1]), 1, ports[1])
    await browser.sign_in(first.url + "/")
    cookie = browser.cookies()["_gw_session"]
    await asyncio.sleep(3.3)
    headers = {"Cookie": f"_gw_session={cookie}", "Accept": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(url: str) -> int:
            async with http.get(url + "/api/whoami", headers=headers) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one(urls[i % 2]) for i in range(200)))
    assert statuses == [200] * 200
    stats = await idp.admin("GET", "stats")
    assert stats["token_requests"]["refresh_token"] == 1, stats
    assert second.process.poll() is None


@pytest.mark.slow
async def test_workers_racing_on_a_rotated_token_never_delete_the_session(idp_factory, gateway_process, demo_upstream, browser):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(url), refresh_token_rotation=True, token_lifetimes={"access": 2, "id": 2})
    config = {
        "public_url": url,
        "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-public"},
        "session": {"secrets": [SESSION_SECRET]},
        "refresh": REFRESH_AT_EXPIRY,
    }
    await asyncio.to_thread(gateway_process, config, 4, port)
    await browser.sign_in(url + "/")
    cookies = {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}
    await wait_until_expired(session_in(cookies))
    headers = {"Cookie": cookie_header(cookies), "Accept": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as http:

        async def one() -> tuple[int, list[str]]:
            async with http.get(url + "/api/whoami", headers=headers) as response:
                await response.read()
                return response.status, response.headers.getall("Set-Cookie", [])

        answers = await asyncio.gather(*(one() for _ in range(100)))
    assert {status for status, _ in answers} <= {200, 401}
    deletions = [line for _, lines in answers for line in lines if "max-age=0" in line.lower()]
    assert not deletions, "a worker that lost the race must not delete the winner's fresh cookies"
    fresh = {line.split(";")[0].split("=", 1)[0]: line.split(";")[0].split("=", 1)[1] for _, lines in answers for line in lines}
    assert fresh, "the worker that won the race set new cookies"
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/whoami", headers={"Cookie": cookie_header(fresh), "Accept": "application/json"}) as response:
            assert response.status == 200
