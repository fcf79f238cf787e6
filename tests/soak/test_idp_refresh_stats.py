"""`GET /_admin/stats/refresh`: successful refresh grants by user and by client (what the soak counts)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fixtures.idp import CALLBACK, CONFIDENTIAL_SECRET, HostedUIBrowser, RunningIdp, callback_params


async def _tokens(idp: RunningIdp, browser: HostedUIBrowser, username: str, client_id: str, **extra: str) -> dict[str, Any]:
    location = await browser.sign_in(idp.authorize_url(client_id), username)
    data = {"grant_type": "authorization_code", "client_id": client_id, "code": callback_params(location)["code"],
            "redirect_uri": CALLBACK, **extra}  # fmt: skip
    return await _token_call(idp, data, 200)


async def _token_call(idp: RunningIdp, data: dict[str, str], status: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(idp.token_url, data=data) as response:
            assert response.status == status, await response.text()
            return await response.json()


async def test_refresh_grants_are_counted_per_user_and_client(idp: RunningIdp) -> None:
    assert await idp.admin("GET", "stats/refresh") == {"total": 0, "by_user": {}, "by_client": {}}
    jar = lambda: aiohttp.CookieJar(unsafe=True)  # noqa: E731 - cookies on 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar()) as s1, aiohttp.ClientSession(cookie_jar=jar()) as s2:
        alice = await _tokens(idp, HostedUIBrowser(s1), "alice", "test-public")
        bob = await _tokens(idp, HostedUIBrowser(s2), "bob", "test-confidential", client_secret=CONFIDENTIAL_SECRET)
    public = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": alice["refresh_token"]}
    confidential = {"grant_type": "refresh_token", "client_id": "test-confidential",
                    "client_secret": CONFIDENTIAL_SECRET, "refresh_token": bob["refresh_token"]}  # fmt: skip
    await _token_call(idp, public, 200)
    await _token_call(idp, public, 200)
    await _token_call(idp, confidential, 200)
    await _token_call(idp, {**public, "refresh_token": "not-a-token"}, 400)  # refused: not a grant
    assert await idp.admin("GET", "stats/refresh") == {
        "total": 3, "by_user": {"alice": 2, "bob": 1}, "by_client": {"test-public": 2, "test-confidential": 1},
    }  # fmt: skip
    stats = await idp.admin("GET", "stats")  # the existing counters are unchanged: every call, by grant type
    assert stats["token_requests"]["refresh_token"] == 4
    await idp.admin("POST", "stats/reset")
    assert await idp.admin("GET", "stats/refresh") == {"total": 0, "by_user": {}, "by_client": {}}
