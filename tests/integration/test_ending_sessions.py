"""Sessions end everywhere: a copied cookie after sign-out, WebSockets bound to their session, and a
fleet sharing its ended sessions through a real Redis. Local Cognito, demo app, gateways, Redis."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.fixtures.servers import free_port
from tests.integration.test_fleet import gateway_config as fleet_config
from tests.fixtures.stack import SESSION_SECRET, cookie_header, gateway_clients, session_in

JSON = {"Accept": "application/json"}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
SHORT = {"token_lifetimes": {"access": 2, "id": 2}}
REFRESH_AT_EXPIRY = {"before_expiry": "0s", "timeout": "2s"}


def gateway_cookies(cookies: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in cookies.items() if name.startswith("_gw_session")}


async def status_with(url: str, cookies: dict[str, str]) -> int:
    """What a second browser holding a copy of these cookies gets."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/whoami", headers={**JSON, "Cookie": cookie_header(cookies)}, allow_redirects=False) as response:
            await response.read()
            return response.status


async def sign_out(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url + "/oauth2/sign_out", headers=SAME_ORIGIN, allow_redirects=False) as response:
        assert response.status == 302


async def open_socket(http: aiohttp.ClientSession, url: str, cookies: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
    headers = {"Cookie": cookie_header(cookies), "Origin": url}
    ws = await http.ws_connect(url.replace("http", "ws", 1) + "/ws/echo", headers=headers)
    await ws.send_str("ping")
    assert (await ws.receive(timeout=5)).data == "ping"
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse, within: float) -> tuple[int | None, str | None]:
    message = await ws.receive(timeout=within)
    assert message.type is WSMsgType.CLOSE, message
    return message.data, message.extra


async def test_a_cookie_copied_before_sign_out_is_refused_after_it(make_stack, browser):
    stack = await make_stack(trusted_proxies=["127.0.0.1/32"])  # forward-auth asks come from a trusted proxy
    await browser.sign_in(stack.gateway + "/")
    copy = gateway_cookies(browser.cookies())
    assert await status_with(stack.gateway, copy) == 200
    await sign_out(browser.session, stack.gateway)
    assert await status_with(stack.gateway, copy) == 401
    async with aiohttp.ClientSession() as http:  # nor through forward-auth, nor userinfo
        headers = {"Cookie": cookie_header(copy), "X-Forwarded-Uri": "/api/x", "X-Forwarded-Method": "GET", **JSON}
        async with http.get(stack.gateway + "/oauth2/auth", headers=headers, allow_redirects=False) as response:
            assert response.status == 401
        async with http.get(stack.gateway + "/oauth2/userinfo", headers={"Cookie": cookie_header(copy)}) as response:
            assert response.status == 401
    page = await browser.open(stack.gateway + "/")  # signed in again (the Hosted UI remembers alice): a new session
    assert page.status == 200 and "Legacy app" in page.text
    assert await status_with(stack.gateway, gateway_cookies(browser.cookies())) == 200


async def test_another_sessions_sign_out_ends_only_its_own(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    first = gateway_cookies(browser.cookies())
    browser.session.cookie_jar.clear()
    await browser.sign_in(stack.gateway + "/")  # alice again, in another browser: another session
    await sign_out(browser.session, stack.gateway)
    assert await status_with(stack.gateway, first) == 200


async def test_a_websocket_is_closed_with_1008_when_its_session_signs_out(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, stack.gateway, gateway_cookies(browser.cookies()))
        started = time.monotonic()
        await sign_out(browser.session, stack.gateway)
        assert await closed_with(ws, within=3) == (1008, "session ended")
        assert time.monotonic() - started < 1
        await ws.close()


async def test_a_websocket_is_closed_at_the_sessions_max_lifetime(make_stack, browser):
    stack = await make_stack(session={"max_lifetime": "4s"})
    await browser.sign_in(stack.gateway + "/")
    started = session_in(browser.cookies())["iat"]
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, stack.gateway, gateway_cookies(browser.cookies()))
        assert await closed_with(ws, within=8) == (1008, "session expired")
        assert time.time() - started >= 3.5  # not before its time (iat is whole seconds)
        await ws.close()


async def test_a_websocket_outlives_its_access_token_by_refreshing_it_then_closes_when_refresh_is_refused(make_stack, browser):
    stack = await make_stack(idp=SHORT, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    cookies = gateway_cookies(browser.cookies())
    session = session_in(cookies)
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, stack.gateway, cookies)
        await asyncio.sleep(max(0.0, session["exp"] - time.time()) + 2.5)  # past expiry, and past the next one
        await ws.send_str("still here")
        assert (await ws.receive(timeout=5)).data == "still here"
        stats = await stack.idp.admin("GET", "stats")
        assert stats["token_requests"].get("refresh_token", 0) >= 1, "the socket's session was refreshed"
        # The browser's next request, with the cookie it had, is served the socket's refreshed tokens.
        assert await status_with(stack.gateway, cookies) == 200
        # The provider revokes the refresh token: at the next due refresh the socket is closed.
        form = {"token": session["rt"], "client_id": stack.client_id}
        async with http.post(stack.idp.url + "/oauth2/revoke", data=form) as response:
            assert response.status == 200
        assert await closed_with(ws, within=6) == (1008, "session ended")
        await ws.close()
    assert await status_with(stack.gateway, cookies) == 401


async def test_a_socket_opened_without_a_session_is_not_watched(make_stack):
    stack = await make_stack(rules=[{"path": "/ws/**", "allow": "anyone"}], session={"max_lifetime": "2s"})
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(stack.gateway.replace("http", "ws", 1) + "/ws/echo", headers={"Origin": stack.gateway})
        await asyncio.sleep(2.5)
        await ws.send_str("anonymous")
        assert (await ws.receive(timeout=5)).data == "anonymous"
        await ws.close()


# --- a fleet sharing Redis ---------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["redis", "cookie"])
async def test_sign_out_on_one_instance_ends_the_session_on_the_other_within_a_second(
    store, idp_factory, make_gateway, demo_upstream, redis_server, browser
):
    # Both instances answer for one public origin (as behind a load balancer); the test talks to each directly.
    ports = [free_port(), free_port()]
    public = f"http://127.0.0.1:{ports[0]}"
    idp = await idp_factory(clients=gateway_clients(public))
    session = {"store": store, "redis_url": redis_server.url}
    first, second = [await make_gateway(fleet_config(public, port, idp, demo_upstream, session)) for port in ports]
    await asyncio.sleep(0.3)  # both subscribed
    await browser.sign_in(first + "/")
    cookies = gateway_cookies(browser.cookies())
    copy = dict(cookies)
    assert await status_with(second, copy) == 200
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, second, cookies)
        started = time.monotonic()
        await sign_out(browser.session, first)
        assert await closed_with(ws, within=3) == (1008, "session ended")
        assert time.monotonic() - started < 1
        await ws.close()
    assert await status_with(second, copy) == 401
    assert await redis_server.client.zcard("gw:ended") == 1


async def test_with_workers_and_no_redis_sign_out_reaches_every_worker(idp_factory, gateway_process, demo_upstream, browser):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(url))
    config = {
        "public_url": url,
        "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-public"},
        "session": {"secrets": [SESSION_SECRET]},
    }
    await asyncio.to_thread(gateway_process, config, 3, port)
    await browser.sign_in(url + "/")
    copy = gateway_cookies(browser.cookies())
    headers = {**JSON, "Cookie": cookie_header(copy)}
    # New connections each time: the kernel spreads them over the three workers (SO_REUSEPORT).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def statuses() -> set[int]:
            found = set()
            for _ in range(30):
                async with http.get(url + "/api/whoami", headers=headers) as response:
                    found.add(response.status)
            return found

        assert await statuses() == {200}
        await sign_out(browser.session, url)
        assert await statuses() == {401}, "no worker accepts the copy after sign-out"


async def test_with_rotating_refresh_tokens_a_long_socket_leaves_the_browsers_cookie_usable(make_stack, browser):
    """The socket refreshes where no cookie can be set; the browser's old cookie is handed its result."""
    stack = await make_stack(idp={**SHORT, "refresh_token_rotation": True}, refresh=REFRESH_AT_EXPIRY)
    await browser.sign_in(stack.gateway + "/")
    cookies = gateway_cookies(browser.cookies())
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, stack.gateway, cookies)
        deadline = time.monotonic() + 15
        while (await stack.idp.admin("GET", "stats"))["token_requests"].get("refresh_token", 0) < 2:  # two rotations
            assert time.monotonic() < deadline, "the socket did not refresh twice"
            await asyncio.sleep(0.2)
        await ws.send_str("alive")
        assert (await ws.receive(timeout=5)).data == "alive"
        assert await status_with(stack.gateway, cookies) == 200, "the cookie from before both rotations still works"
        await ws.close()
