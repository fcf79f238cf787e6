"""Full sign-in through the local Cognito's Hosted UI forms, with a scripted browser."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.fixtures.idp import PASSWORD
from tests.fixtures.stack import session_in


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("client", ["public", "confidential"])
async def test_sign_in_reaches_the_app_and_returns_to_the_original_path(make_stack, browser, client):
    stack = await make_stack(client=client)
    page = await browser.open(stack.gateway + "/api/whoami?x=1")
    assert page.status == 200 and "password" in page.text
    start, authorize = page.history[1], page.history[2]
    assert urlsplit(start).path == "/oauth2/start" and query(start)["rd"] == "/api/whoami?x=1"
    params = query(authorize)
    assert params["client_id"] == stack.client_id and params["code_challenge_method"] == "S256"
    assert params["redirect_uri"] == stack.gateway + "/oauth2/callback"
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32 and len(params["code_challenge"]) == 43

    landed = await browser.submit(page, username="alice", password=PASSWORD)
    assert landed.status == 200 and landed.url == stack.gateway + "/api/whoami?x=1"
    seen = json.loads(landed.text)
    assert seen["raw_path"] == "/api/whoami?x=1"
    sent_cookie = dict(seen["headers"]).get("Cookie", "")
    assert "_gw_session" not in sent_cookie, "the gateway's own cookies must never reach the app"
    stats = await stack.idp.admin("GET", "stats")
    assert stats["token_requests"]["authorization_code"] == 1


async def test_session_cookies_are_chunked_httponly_lax(make_stack, browser):
    stack = await make_stack()
    page = await browser.open(stack.gateway + "/")
    form = page.form()
    async with browser.session.post(form.action, data={**form.fields, "username": "alice", "password": PASSWORD}, allow_redirects=False) as response:
        callback = response.headers["Location"]
    async with browser.session.get(callback, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/"
        lines = response.headers.getall("Set-Cookie")
    session_lines = [line for line in lines if line.startswith("_gw_session_") and "_login_" not in line]
    assert 1 <= len(session_lines) <= 2, session_lines
    for line in session_lines:
        assert len(line) <= 4000
        lowered = line.lower()
        assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered and "secure" not in lowered
    login_cleared = [line for line in lines if "_gw_session_login_" in line]
    assert login_cleared and all("max-age=0" in line.lower() for line in login_cleared)


async def test_signed_in_requests_do_not_call_the_provider(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    before = await stack.idp.admin("GET", "stats")
    for _ in range(5):
        page = await browser.open(stack.gateway + "/api/whoami")
        assert page.status == 200
    assert await stack.idp.admin("GET", "stats") == before


async def test_unauthenticated_api_clients_get_401_json(make_stack):
    stack = await make_stack()
    async with aiohttp.ClientSession() as http:
        for method, headers in [
            ("GET", {"Accept": "application/json"}),
            ("GET", {"X-Requested-With": "XMLHttpRequest"}),
            ("POST", {}),
            ("DELETE", {"Accept": "text/html"}),
        ]:
            async with http.request(method, stack.gateway + "/api/whoami", headers=headers, allow_redirects=False) as response:
                assert response.status == 401, (method, headers)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await response.json())["error"] == "unauthenticated"
        async with http.get(stack.gateway + "/page?a=1", headers={"Accept": "text/html"}, allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/oauth2/start?rd=%2Fpage%3Fa%3D1"


async def test_userinfo_and_sign_out(make_stack, browser):
    stack = await make_stack()
    async with browser.session.get(stack.gateway + "/oauth2/userinfo") as response:
        assert response.status == 401 and (await response.json())["error"] == "unauthenticated"
    await browser.sign_in(stack.gateway + "/")
    async with browser.session.get(stack.gateway + "/oauth2/userinfo") as response:
        info = await response.json()
    assert info["username"] == "alice" and info["email"] == "alice@example.com" and info["groups"] == ["admins"]

    same_origin_link = {"Sec-Fetch-Site": "same-origin"}
    async with browser.session.get(stack.gateway + "/oauth2/sign_out", headers=same_origin_link, allow_redirects=False) as response:
        assert response.status == 302
        logout = response.headers["Location"]
        cleared = [line for line in response.headers.getall("Set-Cookie") if line.startswith("_gw_session_")]
    assert cleared and all("max-age=0" in line.lower() for line in cleared)
    assert logout.startswith(stack.idp.url + "/logout?")
    assert query(logout) == {"client_id": stack.client_id, "logout_uri": stack.gateway + "/"}
    page = await browser.open(logout)  # Cognito clears its own session and sends us back to the app
    assert page.status == 200 and "password" in page.text, "signed out everywhere: the sign-in form again"


async def test_sign_out_revokes_the_refresh_token(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    refresh_token = session_in(browser.cookies())["rt"]
    async with browser.session.get(stack.gateway + "/oauth2/sign_out", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False):
        pass
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": stack.client_id}
    async with aiohttp.ClientSession() as http:
        async with http.post(stack.idp.token_url, data=form) as response:
            assert response.status == 400 and (await response.json())["error"] == "invalid_grant"


async def test_signup_and_identity_provider_and_lang_pass_through(make_stack):
    stack = await make_stack()
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.gateway + "/oauth2/start?signup=1&idp=COGNITO&lang=fr", allow_redirects=False) as response:
            location = response.headers["Location"]
    assert urlsplit(location).path == "/signup"
    params = query(location)
    assert params["identity_provider"] == "COGNITO" and params["lang"] == "fr" and params["code_challenge_method"] == "S256"


async def test_several_tabs_can_sign_in_at_once(make_stack, browser):
    stack = await make_stack()
    first = await browser.open(stack.gateway + "/api/whoami?tab=1")
    second = await browser.open(stack.gateway + "/api/whoami?tab=2")
    landed_second = await browser.submit(second, username="alice", password=PASSWORD)
    assert landed_second.url.endswith("/api/whoami?tab=2")
    # The first tab's form is still good: its own login cookie is kept by state.
    landed_first = await browser.submit(first, username="alice", password=PASSWORD)
    assert landed_first.status == 200 and landed_first.url.endswith("/api/whoami?tab=1")


async def test_provider_error_on_callback_is_a_friendly_page(make_stack, browser):
    stack = await make_stack()
    page = await browser.open(stack.gateway + "/")
    state = query(page.history[2])["state"]
    error = await browser.open(f"{stack.gateway}/oauth2/callback?error=access_denied&error_description=User+said+no&state={state}")
    assert error.status == 403 and "User said no" in error.text and "Sign in again" in error.text
    assert not any(name.startswith("_gw_session_") and "_login_" not in name for name in browser.cookies())


@pytest.mark.parametrize("store", ["cookie", "redis"])
async def test_sign_in_with_each_session_store(make_stack, browser, redis_server, store):
    stack = await make_stack(store=store, session={"redis_url": redis_server.url})
    landed = await browser.sign_in(stack.gateway + "/")
    assert landed.status == 200 and "Legacy app" in landed.text
    names = [name for name in browser.cookies() if name.startswith("_gw_session")]
    if store == "redis":
        assert names == ["_gw_session"] and len(browser.cookies()["_gw_session"]) < 64
        assert await redis_server.keys("gw:session:*")
    again = await browser.open(stack.gateway + "/oauth2/sign_out")  # via Cognito's /logout and back
    assert "password" in again.text
    if store == "redis":
        assert await redis_server.keys("gw:session:*") == []


async def test_redis_down_is_503_never_500(make_stack, browser, redis_server):
    stack = await make_stack(store="redis", session={"redis_url": redis_server.url})
    await browser.sign_in(stack.gateway + "/")
    cookie = browser.cookies()["_gw_session"]
    dead = await make_stack(store="redis", session={"redis_url": "redis://127.0.0.1:1/0"})
    async with aiohttp.ClientSession() as http:
        for url, headers in [(dead.gateway + "/x", {"Cookie": f"_gw_session={cookie}"}), (dead.gateway + "/oauth2/userinfo", {"Cookie": f"_gw_session={cookie}"})]:
            async with http.get(url, headers={**headers, "Accept": "application/json"}, allow_redirects=False) as response:
                assert response.status == 503, url
                assert (await response.json())["error"] == "session_store_unavailable"
        async with http.get(dead.gateway + "/readyz") as response:
            assert response.status == 503 and "redis" in (await response.json())["reasons"]
