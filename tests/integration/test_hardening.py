"""Regression tests for what independent probes got through (issue "Hardening"), one finding each.

Every test here failed before its fix. Findings 1 (missing sub), 3 and 7 (forward-auth
deployments) are covered in test_rp_conformance.py and tests/interop/test_forward_auth.py;
4 and 5 in test_connection_deadlines.py and test_published_secrets.py / test_cli.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.servers import gateway_config, start_runner
from tests.fixtures.stack import cookie_header


@pytest.fixture
async def recorder():
    """An upstream answering every path with what it received; `?cc=` sets its Cache-Control."""

    async def answer(request: web.Request) -> web.Response:
        headers = {"Cache-Control": request.query["cc"]} if "cc" in request.query else None
        body = {"method": request.method, "headers": [[k, v] for k, v in request.headers.items()]}
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner, url = await start_runner(app)
    yield url
    await runner.cleanup()


def received(body: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in body["headers"]}


async def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, headers=headers, allow_redirects=False) as response:
            return response.status, dict(response.headers), await response.text()


# --- 2. identity headers of other systems ----------------------------------------------------

OTHER_SYSTEMS = {
    "X-Auth-Request-User": "mallory",  # oauth2-proxy
    "X_Auth_Request_Email": "mallory@evil.example",
    "Remote-User": "admin",  # Apache / Authelia
    "X-Remote-User": "admin",
    "X-WEBAUTH-USER": "admin",  # Grafana
    "X-Pomerium-Claim-Email": "admin@example.com",  # Pomerium
    "X-Goog-Authenticated-User-Email": "accounts.google.com:admin@example.com",  # IAP
    "Cf-Access-Authenticated-User-Email": "admin@example.com",  # Cloudflare Access
    "X-Corp-Employee": "yes",  # identity.strip_headers: ["X-Corp-*"]
}


async def test_identity_headers_of_other_systems_never_reach_the_app(make_gateway, recorder):
    gateway = await make_gateway(gateway_config(recorder, identity={"strip_headers": ["X-Corp-*"]}))
    status, _, text = await get(gateway + "/anything", {**OTHER_SYSTEMS, "X-Custom": "kept"})
    seen = received(json.loads(text))
    assert status == 200 and seen["x-custom"] == "kept"
    leaked = {name for name in OTHER_SYSTEMS if name.lower() in seen or name.lower().replace("_", "-") in seen}
    assert leaked == set()


# --- 6. login state bound by a __Host- cookie --------------------------------------------------


async def test_login_state_cookie_is_host_prefixed_and_a_tossed_secure_one_is_ignored(make_stack):
    stack = await make_stack(public_url="https://app.example.com")
    status, headers, _ = await get(stack.gateway + "/oauth2/start?rd=/x")
    assert status == 302
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.gateway + "/oauth2/start", allow_redirects=False) as response:
            morsel = next(m for m in response.cookies.values() if "_login_" in m.key)
            state = dict(p.split("=", 1) for p in response.headers["Location"].split("?", 1)[1].split("&"))["state"]
    assert morsel.key.startswith("__Host-_gw_session_login_")
    assert morsel["path"] == "/" and morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"
    # The attacker's own login cookie, planted by a sibling subdomain under the only name it can set.
    tossed = {morsel.key.replace("__Host-", "__Secure-", 1): morsel.value}
    status, _, text = await get(f"{stack.gateway}/oauth2/callback?code=x&state={state}", {"Cookie": cookie_header(tossed)})
    assert status == 400 and "invalid_state" in text or "expired" in text


# --- 8. no session cookie on a response a shared cache may keep --------------------------------


async def test_a_refreshed_cookie_makes_a_public_response_private(make_stack, recorder, browser):
    stack = await make_stack(
        idp={"token_lifetimes": {"access": 60, "id": 60}}, refresh={"before_expiry": "120s"}, upstreams=[{"path": "/", "url": recorder}]
    )
    await browser.sign_in(stack.gateway + "/")
    async with browser.session.get(stack.gateway + "/page?cc=public,%20max-age=600,%20s-maxage=600") as response:
        assert response.status == 200 and response.headers.getall("Set-Cookie")  # refreshed on this response
        assert response.headers["Cache-Control"] == "private, max-age=600"
    async with browser.session.get(stack.gateway + "/page?cc=no-store") as response:
        assert response.headers["Cache-Control"] == "no-store"  # already kept from every cache: untouched


# --- 9. logout CSRF -----------------------------------------------------------------------------


async def signed_in(browser, stack) -> bool:
    async with browser.session.get(stack.gateway + "/oauth2/userinfo") as response:
        return response.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is same-site, not ours
        {"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"},
        {},  # no proof at all (an old browser, or a client stripping headers)
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://evil.example"},
    ],
    ids=["cross-site", "same-site", "cross-site-referer", "no-proof", "foreign-referer", "foreign-origin"],
)
async def test_a_cross_site_sign_out_only_asks(make_stack, browser, headers):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    for method in ("GET", "POST"):
        sent = {**headers, "Sec-Fetch-Site": headers.get("Sec-Fetch-Site", "")} if headers.get("Sec-Fetch-Site") else headers
        async with browser.session.request(method, stack.gateway + "/oauth2/sign_out?rd=/after", headers=sent, allow_redirects=False) as response:
            page = await response.text()
            assert response.status == 200 and '<form method="post"' in page and "Set-Cookie" not in response.headers
            assert response.headers["X-Frame-Options"] == "DENY"
    assert await signed_in(browser, stack)
    confirmation = await browser.open(stack.gateway + "/oauth2/sign_out?rd=/after", from_page="https://evil.example/")
    assert confirmation.status == 200 and await signed_in(browser, stack)
    await browser.submit(confirmation)  # the user presses the button: a same-origin POST
    assert not await signed_in(browser, stack)


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Referer": "GATEWAY/somewhere"}, {"Origin": "https://admin.example.com"}],
    ids=["same-origin-link", "typed-url", "own-referer", "allowed-origin"],
)
async def test_same_origin_sign_out_links_still_work(make_stack, browser, headers):
    stack = await make_stack(allowed_origins=["https://admin.example.com"])
    await browser.sign_in(stack.gateway + "/")
    headers = {k: v.replace("GATEWAY", stack.gateway) for k, v in headers.items()}
    async with browser.session.get(stack.gateway + "/oauth2/sign_out", headers=headers, allow_redirects=False) as response:
        assert response.status == 302
    assert not await signed_in(browser, stack)


# --- 10. method overrides and HEAD --------------------------------------------------------------


async def test_method_override_headers_are_stripped_unless_kept(make_gateway, recorder):
    overrides = {"X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "DELETE", "X_HTTP_Method_Override": "PUT"}
    gateway = await make_gateway(gateway_config(recorder))
    seen = received(json.loads((await get(gateway + "/items/1", overrides))[2]))
    assert not {"x-http-method-override", "x-http-method", "x-method-override", "x_http_method_override"} & set(seen)
    kept = await make_gateway(gateway_config(recorder, identity={"pass_method_override": True}))
    assert received(json.loads((await get(kept + "/items/1", overrides))[2]))["x-http-method-override"] == "DELETE"


async def test_a_get_rule_covers_head(make_stack, recorder, browser):
    rules = [{"path": "/reports/*", "methods": ["GET"], "claims": {"custom:department": ["finance"]}}, {"path": "/**", "allow": "anyone"}]
    stack = await make_stack(rules=rules, upstreams=[{"path": "/", "url": recorder}])
    await browser.sign_in(stack.gateway + "/reports/q1")  # alice is in engineering: signed in, then refused
    for method in ("GET", "HEAD"):
        async with browser.session.request(method, stack.gateway + "/reports/q1") as response:
            assert response.status == 403, method
    async with browser.session.request("POST", stack.gateway + "/reports/q1") as response:
        assert response.status == 200  # the rule names GET only: other methods fall through


# --- 11. host spellings -------------------------------------------------------------------------


async def test_no_host_spelling_skips_a_host_rule(make_stack, recorder):
    rules = [{"path": "/**", "host": "admin.local", "unauthenticated": "deny"}, {"path": "/**", "allow": "anyone"}]
    stack = await make_stack(rules=rules, upstreams=[{"path": "/", "url": recorder}])
    for host in ("admin.local", "ADMIN.local", "admin.local.", "admin.local:8080", "admin.local.:80"):
        assert (await get(stack.gateway + "/x", {"Host": host, "Accept": "application/json"}))[0] == 401, host
    for host in ("admin.local..", ".admin.local", "admin..local", "admin.local...", "admin.local..:80"):
        assert (await get(stack.gateway + "/x", {"Host": host}))[0] == 400, host
    assert (await get(stack.gateway + "/x", {"Host": "public.local"}))[0] == 200


# --- 12. WebSocket Origin -----------------------------------------------------------------------


async def test_websocket_upgrades_from_foreign_origins_are_refused(make_gateway, demo_upstream):
    gateway = await make_gateway(
        gateway_config(demo_upstream, public_url="https://app.example.com", allowed_origins=["https://tools.example.com"])
    )
    host = gateway.removeprefix("http://")
    async with aiohttp.ClientSession() as http:
        for origin in ("https://evil.example", "https://sub.app.example.com", "null", "https://app.example.com.evil.example"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(gateway + "/ws/echo", origin=origin)
            assert refused.value.status == 403, origin
        for origin in ("https://app.example.com", "https://tools.example.com", f"http://{host}", None):
            async with http.ws_connect(gateway + "/ws/echo", origin=origin) as ws:
                await ws.send_str("hi")
                assert (await ws.receive(timeout=5)).data == "hi", origin


# --- 13. framing --------------------------------------------------------------------------------


async def test_gateway_pages_cannot_be_framed(make_stack):
    stack = await make_stack(upstreams=[{"path": "/app", "url": "http://127.0.0.1:9"}], rules=[{"path": "/elsewhere", "allow": "anyone"}])
    html = {"Accept": "text/html"}
    pages = [
        await get(stack.gateway + "/elsewhere", html),  # 404: no upstream
        await get(stack.gateway + "/oauth2/callback?state=nope", html),  # 400: a sign-in that expired
        await get(stack.gateway + "/oauth2/sign_out", {**html, "Sec-Fetch-Site": "cross-site"}),  # the confirmation
        await get(stack.gateway + "/admin;x", html),  # 400: ambiguous path
    ]
    for status, headers, _ in pages:
        assert headers.get("X-Frame-Options") == "DENY", (status, headers)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"


# --- 14. WebSockets never starve HTTP; caps ------------------------------------------------------


async def test_300_open_websockets_leave_http_to_the_same_upstream_working(make_gateway, demo_upstream):
    gateway = await make_gateway(gateway_config(demo_upstream, limits={"max_websockets_per_session": 400}))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = await asyncio.gather(*(http.ws_connect(gateway + "/ws/echo") for _ in range(300)))
        try:
            started = time.monotonic()
            async with http.get(gateway + "/api/echo", timeout=aiohttp.ClientTimeout(total=5)) as response:
                assert response.status == 200
            assert time.monotonic() - started < 2
            await sockets[-1].send_str("still here")
            assert (await sockets[-1].receive(timeout=5)).data == "still here"
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))


async def test_websockets_are_capped_per_session_and_in_total(make_gateway, demo_upstream):
    async with aiohttp.ClientSession() as http:
        per_session = await make_gateway(gateway_config(demo_upstream, limits={"max_websockets_per_session": 3}))
        opened = [await http.ws_connect(per_session + "/ws/echo") for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(per_session + "/ws/echo")
        assert refused.value.status == 429
        await opened.pop().close()
        await asyncio.sleep(0.1)
        opened.append(await http.ws_connect(per_session + "/ws/echo"))  # a closed socket frees its slot

        total = await make_gateway(gateway_config(demo_upstream, limits={"max_websockets": 2}))
        opened += [await http.ws_connect(total + "/ws/echo") for _ in range(2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(total + "/ws/echo")
        assert refused.value.status == 503
        await asyncio.gather(*(ws.close() for ws in opened))
