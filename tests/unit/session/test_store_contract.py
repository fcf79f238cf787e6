"""One contract, every session store (oauth2-proxy's RunSessionStoreTests): cookie and Redis.

Each case drives a store the way the gateway does: `save` / `load` / `clear` on requests that
carry the cookies the previous step set. Redis is a real redis-server on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import time
from typing import AsyncIterator

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import make_mocked_request

from gateway.session.cookie_store import CookieSessionStore
from gateway.session.crypto import SecretBox
from gateway.session.model import SessionState, SignedIn
from gateway.session.redis_store import RedisSessionStore
from gateway.session.store import SessionStore, SetCookie
from tests.fixtures.redis import RedisServer

SECRET = secrets.token_urlsafe(32)  # a literal would have to be listed in gateway/published_secrets.py
NAME = "_gw_session"


def state(id_token: str = "i" * 1500, access_token: str = "a" * 1200, refresh_token: str | None = "r" * 1800, lifetime_left: float = 3600) -> SessionState:
    now = time.time()
    return SessionState.new(SignedIn(id_token, access_token, refresh_token, now + lifetime_left, now))


class Browser:
    """Holds what the store's Set-Cookies say, and sends it back as a Cookie header."""

    def __init__(self) -> None:
        self.jar: dict[str, str] = {}

    def request(self):  # type: ignore[no-untyped-def]
        header = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        return make_mocked_request("GET", "/", headers={"Cookie": header} if header else {})

    def receive(self, cookies: list[SetCookie]) -> None:
        for cookie in cookies:
            assert cookie.header_value()  # every cookie a store asks for can be written
            if cookie.value is None:
                self.jar.pop(cookie.name, None)
            else:
                self.jar[cookie.name] = cookie.value


@pytest.fixture(params=["cookie", "redis"])
async def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[SessionStore]:
    box = SecretBox((SECRET,), "session")
    if request.param == "cookie":
        yield CookieSessionStore(box, NAME, secure=False, max_lifetime=3600)
        return
    client = redis.from_url(redis_server.url)
    yield RedisSessionStore(client, box, NAME, secure=False, max_lifetime=3600)
    await client.aclose()


async def test_a_saved_session_loads_as_saved(store: SessionStore) -> None:
    browser, saved = Browser(), state()
    browser.receive(await store.save(browser.request(), saved))
    loaded = await store.load(browser.request())
    assert loaded is not None
    assert loaded.signed_in.to_dict() == saved.signed_in.to_dict()  # times are stored to the second
    assert int(loaded.started_at) == int(saved.started_at) and loaded.seen_at is not None


async def test_no_cookie_is_no_session(store: SessionStore) -> None:
    assert await store.load(Browser().request()) is None


async def test_clear_ends_the_session_and_deletes_its_cookies(store: SessionStore) -> None:
    browser = Browser()
    browser.receive(await store.save(browser.request(), state()))
    copied = dict(browser.jar)
    browser.receive(await store.clear(browser.request()))
    assert browser.jar == {}
    assert await store.load(browser.request()) is None
    if isinstance(store, RedisSessionStore):  # server-side: a copy of the cookie is dead too
        stale = Browser()
        stale.jar = copied
        assert await store.load(stale.request()) is None


async def test_a_resave_replaces_the_session(store: SessionStore) -> None:
    browser = Browser()
    browser.receive(await store.save(browser.request(), state(access_token="first")))
    loaded = await store.load(browser.request())
    assert loaded is not None
    browser.receive(await store.save(browser.request(), loaded.with_tokens(state(access_token="second").signed_in)))
    again = await store.load(browser.request())
    assert again is not None and again.signed_in.access_token == "second"


async def test_a_smaller_session_leaves_no_stale_cookie(store: SessionStore) -> None:
    browser = Browser()
    browser.receive(await store.save(browser.request(), state(id_token="x" * 9000)))
    big = set(browser.jar)
    browser.receive(await store.save(browser.request(), state(id_token="x", refresh_token=None)))
    assert set(browser.jar) <= big and len(browser.jar) == 1
    loaded = await store.load(browser.request())
    assert loaded is not None and loaded.signed_in.id_token == "x"


async def test_tampered_cookies_are_no_session(store: SessionStore) -> None:
    browser = Browser()
    browser.receive(await store.save(browser.request(), state()))
    name = sorted(browser.jar)[0]
    value = browser.jar[name]
    browser.jar[name] = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert await store.load(browser.request()) is None


async def test_past_max_lifetime_is_no_session(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = Browser()
    browser.receive(await store.save(browser.request(), state()))
    assert await store.load(browser.request()) is not None  # now also in the store's opened cache
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3601)
    assert await store.load(browser.request()) is None


async def test_a_new_sign_in_never_keeps_a_planted_id(store: SessionStore) -> None:
    """Fixation: the id a browser brings before signing in is never the id of its new session."""
    attacker = Browser()
    attacker.receive(await store.save(attacker.request(), state(access_token="attacker")))
    victim = Browser()
    victim.jar = dict(attacker.jar)  # planted
    victim.receive(await store.save(make_mocked_request("GET", "/", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in victim.jar.items())}), state(access_token="victim")))
    mine = await store.load(attacker.request())
    assert mine is None or mine.signed_in.access_token == "attacker"  # the attacker's cookie never opens the victim's session


async def test_a_refresh_never_brings_back_a_session_ended_meanwhile(redis_server: RedisServer) -> None:
    """Redis: a request that loaded the session and saves it after a sign-out (elsewhere) ended it leaves it ended."""
    client = redis.from_url(redis_server.url)
    store = RedisSessionStore(client, SecretBox((SECRET,), "session"), NAME, secure=False, max_lifetime=3600)
    browser = Browser()
    browser.receive(await store.save(browser.request(), state()))
    refreshing = browser.request()
    loaded = await store.load(refreshing)
    assert loaded is not None
    await store.clear(browser.request())  # signed out by another request meanwhile
    cookies = await store.save(refreshing, loaded.with_tokens(state(access_token="refreshed").signed_in))
    assert [c.value for c in cookies] == [None]  # the browser's cookie is deleted, not renewed
    assert await store.load(browser.request()) is None and await redis_server.keys("gw:session:*") == []
    await client.aclose()
