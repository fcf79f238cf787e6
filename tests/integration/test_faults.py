"""Fault tests: upstreams, the provider and Redis failing for real under a running gateway.

Everything runs on 127.0.0.1: the local Cognito is taken off its port and put back (same state),
redis-server is killed, paused and restarted on its port, and only faults a real server cannot be
made to produce on demand (a reset or a lying Content-Length mid-body) come from raw-socket
servers. Each case asserts a concrete status within a time bound, that no error is a 500 page or
shows a traceback, and that the gateway serves normally again afterwards.

Redis restarts are tested both ways: with an append-only file (fsync always) the session outlives
a crash of Redis and the user stays signed in; without persistence a restarted, empty Redis has
legitimately lost it, and the user is sent to sign in (API: 401), never a 500, and signs in again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any, Awaitable, TypeVar

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.fixtures.faulty import FaultStack, RedisProcess, reset, reset_transport
from tests.fixtures.idp import PASSWORD, HostedUIBrowser
from tests.fixtures.servers import gateway_config, start_runner
from tests.fixtures.stack import session_in

T = TypeVar("T")
SESSION_COOKIE = re.compile(r"_gw_session(_[0-9]+)?=")
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
READ_TIMEOUT = 1.0  # the faulty upstream's read_timeout
PROVIDER_TIMEOUT = 1.0  # provider.timeout: the code exchange
REFRESH_TIMEOUT = 0.5  # refresh.timeout
REDIS_SOCKET_TIMEOUT = 2.0  # the gateway's Redis client: socket_timeout and socket_connect_timeout


async def timed(awaitable: Awaitable[T], bound: float) -> tuple[T, float]:
    """(result, seconds taken); fails the test (instead of hanging it) past `bound`."""
    started = time.monotonic()
    result = await asyncio.wait_for(awaitable, bound)
    return result, time.monotonic() - started


async def fetch(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    """(status, body, headers) of one GET that does not follow redirects."""
    async with session.get(url, headers=headers or {}, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers


def assert_clean_error(status: int, body: str, expected: int) -> None:
    assert status == expected, f"expected {expected}, got {status}: {body[:300]}"
    assert "Traceback" not in body and 'File "' not in body, body[:500]


def session_cookies_set(headers: Any) -> list[str]:
    """Set-Cookie lines for the session itself (chunks `_gw_session_N`, or the Redis id), not login state."""
    return [line for line in headers.getall("Set-Cookie", []) if SESSION_COOKIE.match(line)]


# --- upstream faults ----------------------------------------------------------------------


async def faulty_gateway(make_gateway, fault_url: str, demo_upstream: str, **route: Any) -> str:
    """/fault/* goes to the misbehaving server (short timeouts), everything else to the demo app."""
    fault_route = {"path": "/fault", "url": fault_url, "read_timeout": f"{READ_TIMEOUT}s", "connect_timeout": "1s", **route}
    return await make_gateway(gateway_config(demo_upstream, upstreams=[fault_route, {"path": "/", "url": demo_upstream}]))


async def assert_still_serving(http: aiohttp.ClientSession, gateway: str) -> None:
    (status, body, _), _ = await timed(fetch(http, gateway + "/api/whoami", JSON), 5)
    assert status == 200 and json.loads(body)["raw_path"] == "/api/whoami"


async def test_upstream_reset_before_answering_is_502(make_gateway, raw_upstream, demo_upstream, http):
    async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reset(writer)

    gateway = await faulty_gateway(make_gateway, await raw_upstream(resets), demo_upstream)
    for accept in (JSON, HTML):
        (status, body, headers), took = await timed(fetch(http, gateway + "/fault/x", accept), 5)
        assert_clean_error(status, body, 502)
        assert took < 1.5, f"a reset is an immediate answer, took {took:.2f}s"
    assert json.loads((await fetch(http, gateway + "/fault/x", JSON))[1])["error"] == "upstream_unreachable"
    await assert_still_serving(http, gateway)


async def test_upstream_hanging_before_answering_is_504_within_read_timeout(make_gateway, raw_upstream, demo_upstream, http):
    async def hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(60)

    gateway = await faulty_gateway(make_gateway, await raw_upstream(hangs), demo_upstream)
    (status, body, _), took = await timed(fetch(http, gateway + "/fault/x", JSON), READ_TIMEOUT + 4)
    assert_clean_error(status, body, 504)
    assert json.loads(body)["error"] == "upstream_timeout"
    assert READ_TIMEOUT - 0.1 <= took < READ_TIMEOUT + 1.5, f"504 after {took:.2f}s, read_timeout is {READ_TIMEOUT}s"
    await assert_still_serving(http, gateway)


BODY_FAULTS = {
    # Content-Length promises 100000 bytes; 5000 arrive, then a FIN: the classic truncation.
    "length-truncated": (b"Content-Length: 100000\r\n", False, False),
    # Same, but the connection is reset instead of closed.
    "length-reset": (b"Content-Length: 100000\r\n", True, False),
    # Chunked: no terminating 0-chunk, then a FIN. Only the missing terminator tells it apart.
    "chunked-truncated": (b"Transfer-Encoding: chunked\r\n", False, True),
    "chunked-reset": (b"Transfer-Encoding: chunked\r\n", True, True),
}


@pytest.mark.parametrize("fault", list(BODY_FAULTS))
async def test_upstream_failing_mid_body_reaches_the_client_as_an_aborted_response(make_gateway, raw_upstream, demo_upstream, http, fault):
    framing, rst, chunked = BODY_FAULTS[fault]
    part = b"x" * 5000

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + framing + b"\r\n" + body)
        await writer.drain()
        await asyncio.sleep(0.2)  # the head and the first bytes are through the gateway by now
        if rst:
            reset(writer)

    gateway = await faulty_gateway(make_gateway, await raw_upstream(cut), demo_upstream)
    received = bytearray()

    async def download() -> int:
        async with http.get(gateway + "/fault/file") as response:
            async for chunk in response.content.iter_any():
                received.extend(chunk)
            return response.status

    with pytest.raises(aiohttp.ClientPayloadError):
        await timed(download(), 5)
    assert len(received) <= len(part), "no byte the upstream never sent"
    await assert_still_serving(http, gateway)


async def test_upstream_stalling_mid_body_is_cut_within_read_timeout(make_gateway, raw_upstream, demo_upstream, http):
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        await writer.drain()
        await asyncio.sleep(60)

    gateway = await faulty_gateway(make_gateway, await raw_upstream(stalls), demo_upstream)
    started = time.monotonic()

    async def download() -> None:
        async with http.get(gateway + "/fault/file") as response:
            assert response.status == 200  # the head was already sent: only cutting the connection is honest
            await response.read()

    with pytest.raises(aiohttp.ClientPayloadError):
        await timed(download(), READ_TIMEOUT + 4)
    took = time.monotonic() - started
    assert READ_TIMEOUT - 0.1 <= took < READ_TIMEOUT + 1.5, f"cut after {took:.2f}s, read_timeout is {READ_TIMEOUT}s"
    await assert_still_serving(http, gateway)


async def test_websocket_upstream_reset_mid_socket_closes_the_client(make_gateway, demo_upstream, http):
    async def drops(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        await ws.send_str(message.data)
        await asyncio.sleep(0.1)
        reset_transport(request.transport)  # TCP RST, no close frame
        return ws

    app = web.Application()
    app.router.add_get("/fault/ws", drops)
    runner, upstream = await start_runner(app)
    try:
        gateway = await faulty_gateway(make_gateway, upstream, demo_upstream)

        async def conversation() -> tuple[aiohttp.WSMessage, int | None]:
            async with http.ws_connect(gateway + "/fault/ws") as ws:
                await ws.send_str("hello")
                echoed = await ws.receive()
                assert echoed.type is WSMsgType.TEXT and echoed.data == "hello"
                closing = await ws.receive()
                return closing, ws.close_code

        (closing, code), took = await timed(conversation(), 5)
        assert closing.type is WSMsgType.CLOSE, f"a close frame, not a dropped socket: {closing}"
        assert code in (1001, 1011), code
        assert took < 2, f"the client learnt of the reset after {took:.2f}s"
        # The gateway serves the next WebSocket and the next request as if nothing happened.
        async with http.ws_connect(gateway + "/ws/echo") as ws:
            await ws.send_str("again")
            assert (await asyncio.wait_for(ws.receive(), 5)).data == "again"
        await assert_still_serving(http, gateway)
    finally:
        await runner.cleanup()


# --- provider faults during sign-in -------------------------------------------------------


async def set_fault(stack: FaultStack, fault: str) -> None:
    if fault == "down":
        await stack.idp.down()
    elif fault == "slow":
        await stack.idp.admin("POST", "faults", {"mode": "hang", "seconds": 4})
    else:
        await stack.idp.admin("POST", "faults", {"mode": "error", "status": int(fault)})


async def clear_fault(stack: FaultStack, fault: str) -> None:
    if fault == "down":
        await stack.idp.up()
    else:
        await stack.idp.admin("DELETE", "faults")


async def callback_url(browser, stack: FaultStack) -> str:
    """Open a protected page and sign in on the Hosted UI, stopping before the gateway's callback."""
    page = await browser.open(stack.gateway + "/")
    assert page.status == 200 and page.url.startswith(stack.idp.url), page.url
    status, location = await HostedUIBrowser(browser.session).submit(page.form(), username="alice", password=PASSWORD)
    assert status == 302 and location.startswith(stack.gateway + "/oauth2/callback?"), location
    return location


async def sign_in_again(browser, stack: FaultStack) -> None:
    """Open the app and sign in: on the form, or silently when the Hosted UI still knows the user."""
    page = await browser.open(stack.gateway + "/")
    if page.url.startswith(stack.idp.url):
        page = await browser.submit(page, username="alice", password=PASSWORD)
    assert page.status == 200 and page.url == stack.gateway + "/", (page.status, page.url)
    assert "Signed in as <strong>alice</strong>" in page.text


@pytest.mark.parametrize("fault", ["down", "slow", "500", "503"])
async def test_provider_fault_at_the_code_exchange_is_a_clear_502_then_sign_in_works(fault_stack, browser, fault):
    stack = await fault_stack(provider={"timeout": f"{PROVIDER_TIMEOUT}s"})
    callback = await callback_url(browser, stack)
    await set_fault(stack, fault)
    (status, body, headers), took = await timed(fetch(browser.session, callback, HTML), PROVIDER_TIMEOUT + 4)
    assert_clean_error(status, body, 502)
    assert "sign-in service cannot be reached" in body
    assert took < PROVIDER_TIMEOUT + 1, f"answered after {took:.2f}s, provider.timeout is {PROVIDER_TIMEOUT}s"
    if fault == "slow":
        assert took >= PROVIDER_TIMEOUT - 0.1
    assert not session_cookies_set(headers), "no session from a failed sign-in"
    assert not [name for name in browser.cookies() if SESSION_COOKIE.match(name + "=")]
    status, _, headers = await fetch(browser.session, stack.gateway + "/", HTML)
    assert status == 302 and headers["Location"].startswith("/oauth2/start")

    await clear_fault(stack, fault)
    await timed(sign_in_again(browser, stack), 10)
    assert session_in(browser.cookies())["at"], "a session with tokens"


# --- provider faults during refresh -------------------------------------------------------


async def refresh_calls(stack: FaultStack) -> int:
    return (await stack.idp.admin("GET", "stats"))["token_requests"].get("refresh_token", 0)


@pytest.mark.parametrize("store", ["cookie", "redis"])
async def test_a_refreshed_session_refreshes_again_when_its_new_tokens_expire(fault_stack, redis_server, browser, store):
    """The baseline the fault cases rely on: a session survives refresh after refresh.

    A refresh result is reused (60 s) for requests still carrying the *old* tokens; a request that
    carries the result's own tokens, now due again, must get a new refresh, not the same tokens back.
    """
    stack = await fault_stack(
        idp={"token_lifetimes": {"access": 1, "id": 1}},
        refresh={"before_expiry": "0s", "timeout": "2s"},
        session={"store": store, "redis_url": redis_server.url},
    )
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    seen = set()
    for generation in range(3):
        await asyncio.sleep(max(0.0, await access_expiry(browser, stack) - time.time()) + 0.2)
        (status, body, _), _ = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), 5)
        assert status == 200, f"refresh #{generation + 1}: {status} {body[:200]}"
        assert json.loads(body)["identity"]["X-Forwarded-User"] == "alice"
        seen.add(await access_expiry(browser, stack))
    assert len(seen) == 3, "three generations of tokens"
    assert await refresh_calls(stack) == 3


async def access_expiry(browser, stack: FaultStack) -> float:
    """The session's access-token expiry, from /oauth2/userinfo (works for both stores)."""
    status, body, _ = await fetch(browser.session, stack.gateway + "/oauth2/userinfo", JSON)
    assert status == 200, body
    return json.loads(body)["expires_at"]




@pytest.mark.parametrize("store", ["cookie", "redis"])
async def test_max_lifetime_counts_from_sign_in_across_refreshes(fault_stack, redis_server, browser, store):
    """Refreshes keep a session alive only until session.max_lifetime after sign-in, whatever the store."""
    stack = await fault_stack(
        idp={"token_lifetimes": {"access": 1, "id": 1}},
        refresh={"before_expiry": "0s", "timeout": "2s"},
        session={"store": store, "redis_url": redis_server.url, "max_lifetime": "4s"},
    )
    signed_in_at = time.time()
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    for at in (1.2, 2.4):  # each refreshes (tokens live 1 s); the session is at most 3.4 s old
        await asyncio.sleep(max(0.0, signed_in_at + at - time.time()))
        (status, body, _), _ = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), 5)
        assert status == 200, f"at {at}s: {status} {body[:200]}"
    await asyncio.sleep(max(0.0, signed_in_at + 5.2 - time.time()))  # over 4 s since sign-in, whole seconds or not
    (status, body, headers), _ = await timed(fetch(browser.session, stack.gateway + "/", HTML), 5)
    assert_clean_error(status, body, 302)
    assert headers["Location"].startswith("/oauth2/start")


def app_token(body: str) -> dict[str, Any]:
    """The claims of the access token the app received (identity.pass_access_token), either store."""
    token = dict(json.loads(body)["headers"])["X-Forwarded-Access-Token"]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize("fault, store", [("down", "cookie"), ("slow", "cookie"), ("503", "cookie"), ("down", "redis"), ("503", "redis")])
async def test_provider_fault_during_refresh_keeps_the_session_and_it_recovers(fault_stack, redis_server, browser, fault, store):
    # Every request refreshes (tokens live 2 s, refresh 10 s before expiry), so each meets the fault.
    stack = await fault_stack(
        idp={"token_lifetimes": {"access": 2, "id": 2}},
        provider={"timeout": f"{PROVIDER_TIMEOUT}s"},
        refresh={"before_expiry": "10s", "timeout": f"{int(REFRESH_TIMEOUT * 1000)}ms"},
        session={"store": store, "redis_url": redis_server.url},
        identity={"pass_access_token": True},
    )
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    cookies = browser.cookies()
    calls = await refresh_calls(stack)
    await set_fault(stack, fault)
    bound = REFRESH_TIMEOUT + 1

    # Still valid: served with the current tokens, no new cookie, within refresh.timeout.
    (status, body, headers), took = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), bound + 3)
    assert status == 200 and json.loads(body)["identity"]["X-Forwarded-User"] == "alice"
    assert took < bound, f"a failing refresh held the request {took:.2f}s"
    assert not session_cookies_set(headers) and browser.cookies() == cookies
    current = app_token(body)

    # Expired and still no provider: browsers go to sign in, API clients get 401; the cookie is kept.
    await asyncio.sleep(max(0.0, current["exp"] - time.time()) + 0.2)
    (status, body, headers), took = await timed(fetch(browser.session, stack.gateway + "/", HTML), bound + 3)
    assert_clean_error(status, body, 302)
    assert headers["Location"].startswith("/oauth2/start") and took < bound
    assert not session_cookies_set(headers), "a provider outage must not delete the session"
    (status, body, headers), took = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), bound + 3)
    assert_clean_error(status, body, 401)
    assert took < bound and not session_cookies_set(headers)
    assert browser.cookies() == cookies

    # The provider is back: once the back-off (1 s, then 2 s) has passed, the same session refreshes.
    await clear_fault(stack, fault)
    await asyncio.sleep(2.1)
    (status, body, headers), _ = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), 5)
    assert status == 200 and json.loads(body)["identity"]["X-Forwarded-User"] == "alice", (status, body[:200])
    assert session_cookies_set(headers), "the refreshed session is saved on this response"
    refreshed = app_token(body)
    assert refreshed["jti"] != current["jti"] and refreshed["exp"] > time.time()
    assert refreshed["origin_jti"] == current["origin_jti"], "the same sign-in, refreshed, not a new one"
    assert await refresh_calls(stack) > calls
    page = await browser.open(stack.gateway + "/")
    assert page.status == 200 and page.url == stack.gateway + "/", "the session survives"


# --- Redis down mid-run -------------------------------------------------------------------


async def redis_stack(fault_stack, redis_factory, persistent: bool) -> tuple[FaultStack, RedisProcess]:
    server = await redis_factory(persistent=persistent)
    stack = await fault_stack(session={"store": "redis", "redis_url": server.url})
    return stack, server


async def assert_redis_503(browser, stack: FaultStack, bound: float) -> None:
    """Browser page, API call and the gateway's own endpoint, at once: each a 503 within `bound`."""
    asks = (("/", HTML), ("/api/whoami", JSON), ("/oauth2/userinfo", JSON), ("/readyz", JSON))
    answers = await asyncio.gather(*(timed(fetch(browser.session, stack.gateway + path, accept), bound + 5) for path, accept in asks))
    for (path, accept), ((status, body, _), took) in zip(asks, answers):
        assert_clean_error(status, body, 503)
        assert took < bound, f"{path}: 503 after {took:.2f}s, the Redis socket timeout is {REDIS_SOCKET_TIMEOUT}s"
        if path == "/readyz":
            assert "redis" in json.loads(body)["reasons"]
        elif accept is JSON:
            assert json.loads(body)["error"] == "session_store_unavailable"
    (status, _, _), _ = await timed(fetch(browser.session, stack.gateway + "/healthz", JSON), 2)
    assert status == 200, "liveness does not depend on Redis"


async def assert_signed_in(browser, stack: FaultStack, cookie: str) -> None:
    (status, body, headers), _ = await timed(fetch(browser.session, stack.gateway + "/api/whoami", JSON), 5)
    assert status == 200 and json.loads(body)["identity"]["X-Forwarded-User"] == "alice", (status, body[:300])
    assert browser.cookies()["_gw_session"] == cookie, "the same session, not a new one"
    (status, body, _), _ = await timed(fetch(browser.session, stack.gateway + "/readyz", JSON), 5)
    assert status == 200, body


async def test_redis_killed_is_503_and_a_persistent_redis_brings_the_session_back(fault_stack, redis_factory, browser):
    stack, server = await redis_stack(fault_stack, redis_factory, persistent=True)
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    cookie = browser.cookies()["_gw_session"]
    await server.kill()
    await assert_redis_503(browser, stack, bound=1.5)  # refused: no reason to wait for a timeout
    await server.start()
    await assert_signed_in(browser, stack, cookie)


async def test_redis_restarted_empty_sends_users_to_sign_in_again(fault_stack, redis_factory, browser):
    stack, server = await redis_stack(fault_stack, redis_factory, persistent=False)
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    await server.kill()
    await assert_redis_503(browser, stack, bound=1.5)
    await server.start()
    # The session lived only in the Redis that died: it is gone, legitimately. Sign in, never a 500.
    status, body, headers = await fetch(browser.session, stack.gateway + "/", HTML)
    assert_clean_error(status, body, 302)
    assert headers["Location"].startswith("/oauth2/start")
    status, body, _ = await fetch(browser.session, stack.gateway + "/api/whoami", JSON)
    assert_clean_error(status, body, 401)
    await timed(sign_in_again(browser, stack), 10)
    await assert_signed_in(browser, stack, browser.cookies()["_gw_session"])


async def test_redis_hanging_is_503_within_the_socket_timeout_and_recovers(fault_stack, redis_factory, browser):
    stack, server = await redis_stack(fault_stack, redis_factory, persistent=False)
    assert (await browser.sign_in(stack.gateway + "/")).status == 200
    cookie = browser.cookies()["_gw_session"]
    server.pause()
    try:
        await assert_redis_503(browser, stack, bound=REDIS_SOCKET_TIMEOUT + 1)
    finally:
        server.resume()
    await assert_signed_in(browser, stack, cookie)
