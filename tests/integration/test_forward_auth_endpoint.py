"""/oauth2/auth answers as nginx, Caddy and Traefik expect, with the same rules as proxied requests."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.fixtures.stack import cookie_header, session_in

RULES = [{"path": "/public/**", "allow": "anyone"}, {"path": "/admin/**", "groups": ["admins"]}]
NGINX = "X-Original-URI"
CADDY = "X-Forwarded-Uri"
BROWSER = {"Accept": "text/html"}


async def ask(stack, style: str, uri: str, cookies: str = "", **headers: str) -> aiohttp.ClientResponse:
    sent = {style: uri, **headers}
    if cookies:
        sent["Cookie"] = cookies
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.gateway + "/oauth2/auth", headers=sent, allow_redirects=False) as response:
            await response.read()
            return response


@pytest.fixture
async def signed_in(make_stack, browser):
    stack = await make_stack(
        rules=RULES, idp={"token_lifetimes": {"access": 2, "id": 2}}, refresh={"before_expiry": "0s"}, trusted_proxies=["127.0.0.1/32"]
    )
    await browser.sign_in(stack.gateway + "/private", "bob")
    return stack, {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}


async def test_anonymous(signed_in):
    stack, _ = signed_in
    assert (await ask(stack, NGINX, "/private", **BROWSER)).status == 401  # nginx: error_page 401 does the redirect
    caddy = await ask(stack, CADDY, "/private?x=1", **BROWSER)
    assert caddy.status == 302 and caddy.headers["Location"] == stack.gateway + "/oauth2/start?rd=%2Fprivate%3Fx%3D1"  # absolute: Traefik
    assert (await ask(stack, CADDY, "/private", Accept="application/json")).status == 401
    assert (await ask(stack, CADDY, "/private", **BROWSER, **{"X-Forwarded-Method": "POST"})).status == 401
    assert (await ask(stack, NGINX, "/public/x")).status == 202


async def test_signed_in_gets_identity_headers_or_403(signed_in):
    stack, cookies = signed_in
    allowed = await ask(stack, NGINX, "/private", cookie_header(cookies))
    assert allowed.status == 202
    assert allowed.headers["X-Forwarded-User"] == "bob" and allowed.headers["X-Forwarded-Email"] == "bob@example.com"
    assert (await ask(stack, NGINX, "/admin/x", cookie_header(cookies))).status == 403


async def test_ambiguous_paths(signed_in):
    stack, cookies = signed_in
    assert (await ask(stack, NGINX, "/public/../admin", cookie_header(cookies))).status == 403  # nginx maps other codes to 500
    assert (await ask(stack, CADDY, "/public/../admin", cookie_header(cookies))).status == 400


async def test_refreshed_cookies_are_mirrored_for_nginx(signed_in):
    stack, cookies = signed_in
    await asyncio.sleep(max(0.0, session_in(cookies)["exp"] - time.time()) + 0.2)
    answer = await ask(stack, NGINX, "/private", cookie_header(cookies))
    assert answer.status == 202
    set_cookies = answer.headers.getall("Set-Cookie")
    mirrored = [answer.headers[f"X-Auth-Set-Cookie-{i}"] for i in range(len(set_cookies))]
    assert mirrored == set_cookies and any(line.startswith("_gw_session_0=") for line in mirrored)
    assert "X-Auth-Set-Cookie-" + str(len(set_cookies)) not in answer.headers


async def test_only_trusted_proxies_are_answered(make_stack, browser):
    stack = await make_stack(rules=RULES)  # no trusted_proxies
    await browser.sign_in(stack.gateway + "/private")
    cookies = cookie_header({k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")})
    answer = await ask(stack, NGINX, "/private", cookies)
    assert answer.status == 403 and "X-Forwarded-User" not in answer.headers


async def test_a_client_cannot_add_the_other_proxys_header(signed_in):
    stack, cookies = signed_in
    # Behind Traefik the client adds X-Original-URI; behind nginx it adds X-Forwarded-Uri.
    traefik = await ask(stack, CADDY, "/admin/x", cookie_header(cookies), **{"X-Original-URI": "/public/x"})
    nginx = await ask(stack, NGINX, "/admin/x", cookie_header(cookies), **{"X-Forwarded-Uri": "/public/x"})
    method = await ask(stack, NGINX, "/admin/x", cookie_header(cookies), **{"X-Original-Method": "GET", "X-Forwarded-Method": "OPTIONS"})
    assert (traefik.status, nginx.status, method.status) == (403, 403, 403)
    agreeing = await ask(stack, NGINX, "/private", cookie_header(cookies), **{"X-Forwarded-Uri": "/private"})
    assert agreeing.status == 202
