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


def test_expired_refresh_records_are_swept_now_and_then(monkeypatch: Any) -> None:
    """Not on every add (that made each refresh O(all tokens)), but within REFRESH_SWEEP_INTERVAL."""
    from gateway.idp import store as store_module
    from gateway.idp.config import parse_idp_config

    now = [1_000_000.0]
    monkeypatch.setattr(store_module.time, "time", lambda: now[0])
    store = store_module.Store(parse_idp_config({"user_pool_id": "us-east-1_Sweep"}))

    def record(expires_at: float) -> store_module.RefreshRecord:
        return store_module.RefreshRecord("c", "alice", ("openid",), 0, "origin", expires_at)

    store.add_refresh("old", record(now[0] + 10))  # the first add sweeps (nothing yet) and schedules the next
    now[0] += 20  # "old" has expired
    store.add_refresh("new", record(now[0] + 1000))
    assert store.refresh_record("old") is not None  # still held until the next sweep (refused anyway: expired)
    now[0] += store_module.REFRESH_SWEEP_INTERVAL
    store.add_refresh("newer", record(now[0] + 1000))
    assert store.refresh_record("old") is None
    assert store.refresh_record("new") is not None and store.refresh_record("newer") is not None
