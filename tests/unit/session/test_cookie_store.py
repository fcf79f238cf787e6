"""The encrypted, chunked cookie store through a real aiohttp app and raw Set-Cookie lines.

The session's id token stands in for a blob of any size.
"""

from __future__ import annotations

import secrets
import time
from http.cookies import SimpleCookie

import aiohttp
import pytest
from aiohttp import web
from gateway.session import cookies as session_cookies
from gateway.session.cookie_store import CookieSessionStore
from gateway.session.crypto import SecretBox
from gateway.session.model import SessionState, SignedIn
from tests.fixtures.servers import start_runner

OLD, NEW = "o" * 40, "n" * 40


def storage(secret_list=(NEW,), secure=False, max_lifetime=3600.0) -> CookieSessionStore:
    return CookieSessionStore(SecretBox(tuple(secret_list), "session"), "_gw_session", secure, max_lifetime)


def blob_session(blob: str) -> SessionState:
    now = time.time()
    return SessionState.new(SignedIn(id_token=blob, access_token="a", refresh_token=None, access_expires_at=now + 3600, created_at=now))


async def serve(store: CookieSessionStore) -> tuple[web.AppRunner, str]:
    async def put(request: web.Request) -> web.Response:
        blob = request.query["blob"] if "blob" in request.query else secrets.token_urlsafe(int(request.query["size"]))[: int(request.query["size"])]
        session_cookies.queue(request, await store.save(request, blob_session(blob)))
        return web.Response(text=blob)

    async def read(request: web.Request) -> web.Response:
        state = await store.load(request)
        return web.json_response({"blob": state.signed_in.id_token if state else None, "new": state is None})

    async def clear(request: web.Request) -> web.Response:
        session_cookies.queue(request, await store.clear(request))
        return web.Response(text="cleared")

    app = web.Application()
    app.on_response_prepare.append(session_cookies.on_prepare)
    app.router.add_get("/put", put)
    app.router.add_get("/get", read)
    app.router.add_get("/clear", clear)
    return await start_runner(app, max_field_size=32768, max_line_size=32768)


def set_cookie_lines(response: aiohttp.ClientResponse) -> list[str]:
    return response.headers.getall("Set-Cookie", [])


def parse(lines: list[str]) -> dict[str, dict]:
    out = {}
    for line in lines:
        cookie = SimpleCookie()
        cookie.load(line)
        for name, morsel in cookie.items():
            out[name] = {"value": morsel.value, **{k: v for k, v in morsel.items() if v}}
    return out


async def get(url: str, cookies: dict[str, str]) -> tuple[aiohttp.ClientResponse, str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        async with http.get(url, headers={"Cookie": header} if header else {}) as response:
            return response, await response.text()


async def test_cognito_sized_session_fits_two_chunks_each_under_4000_bytes():
    runner, url = await serve(storage())
    try:
        # id ~1.3 KB + access ~1.2 KB + refresh ~1.8 KB of incompressible token text
        response, blob = await get(url + "/put?size=4400", {})
        lines = set_cookie_lines(response)
        assert len(lines) == 2, lines
        assert all(len(line) <= 4000 for line in lines)
        cookies = parse(lines)
        assert set(cookies) == {"_gw_session_0", "_gw_session_1"}
        for attributes in cookies.values():
            assert attributes["httponly"] and attributes["samesite"] == "Lax" and attributes["path"] == "/"
            assert not attributes.get("secure")
        response, text = await get(url + "/get", {k: v["value"] for k, v in cookies.items()})
        assert response.status == 200 and (await_json(text))["blob"] == blob
    finally:
        await runner.cleanup()


def await_json(text: str) -> dict:
    import json

    return json.loads(text)


async def test_https_uses_secure_host_prefixed_cookies():
    runner, url = await serve(storage(secure=True))
    try:
        response, _ = await get(url + "/put?size=100", {})
        cookies = parse(set_cookie_lines(response))
        assert list(cookies) == ["__Host-_gw_session_0"]
        assert cookies["__Host-_gw_session_0"]["secure"]
    finally:
        await runner.cleanup()


async def test_shrinking_session_deletes_stale_chunks_and_sign_out_deletes_all():
    runner, url = await serve(storage())
    try:
        response, _ = await get(url + "/put?size=9000", {})
        big = {k: v["value"] for k, v in parse(set_cookie_lines(response)).items()}
        assert len(big) == 3
        response, _ = await get(url + "/put?size=50", big)
        cookies = parse(set_cookie_lines(response))
        assert cookies["_gw_session_0"]["value"] and cookies["_gw_session_1"]["value"] == "" and cookies["_gw_session_2"]["value"] == ""
        assert cookies["_gw_session_1"]["max-age"] == "0"
        response, _ = await get(url + "/clear", big)
        cookies = parse(set_cookie_lines(response))
        assert set(cookies) == set(big) and all(c["value"] == "" for c in cookies.values())
    finally:
        await runner.cleanup()


async def _signed_cookies(url: str, size: int = 5000) -> dict[str, str]:
    response, _ = await get(url + f"/put?size={size}", {})
    return {k: v["value"] for k, v in parse(set_cookie_lines(response)).items()}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: {**c, "_gw_session_0": c["_gw_session_0"][:-1] + ("A" if c["_gw_session_0"][-1] != "A" else "B")},
        lambda c: {"_gw_session_0": c["_gw_session_0"]},  # a chunk missing
        lambda c: {**c, "_gw_session_0": c["_gw_session_0"][:100]},  # truncated
        lambda c: {"_gw_session_0": c["_gw_session_1"], "_gw_session_1": c["_gw_session_0"]},  # swapped
        lambda c: {"_gw_session_1": c["_gw_session_1"]},  # no first chunk
        lambda c: {"_gw_session_0": "!!!not base64!!!"},
        lambda c: {"_gw_session_0": ""},
    ],
    ids=["tampered", "missing-chunk", "truncated", "swapped", "no-first", "garbage", "empty"],
)
async def test_spoiled_cookies_mean_no_session_never_an_error(spoil):
    runner, url = await serve(storage())
    try:
        cookies = await _signed_cookies(url)
        assert len(cookies) == 2
        response, text = await get(url + "/get", spoil(cookies))
        assert response.status == 200 and await_json(text) == {"blob": None, "new": True}
    finally:
        await runner.cleanup()


async def test_secret_rotation():
    first, url_first = await serve(storage((OLD,)))
    rotated, url_rotated = await serve(storage((NEW, OLD)))
    removed, url_removed = await serve(storage((NEW,)))
    try:
        cookies = await _signed_cookies(url_first, 200)
        response, text = await get(url_rotated + "/get", cookies)
        assert await_json(text)["blob"] is not None, "old secret must still open sessions after rotation"
        response, text = await get(url_removed + "/get", cookies)
        assert await_json(text)["blob"] is None, "a removed secret must no longer open sessions"
    finally:
        for runner in (first, rotated, removed):
            await runner.cleanup()


async def test_sessions_older_than_max_lifetime_are_refused(monkeypatch):
    store = storage(max_lifetime=60)
    runner, url = await serve(store)
    try:
        cookies = await _signed_cookies(url, 100)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 61)
        response, text = await get(url + "/get", cookies)
        assert await_json(text)["blob"] is None
    finally:
        await runner.cleanup()


def test_secret_boxes_for_different_purposes_do_not_open_each_other():
    session_box, login_box = SecretBox((NEW,), "session"), SecretBox((NEW,), "login")
    sealed = session_box.seal(b"data", b"ctx")
    assert session_box.open(sealed, b"ctx") == b"data"
    assert login_box.open(sealed, b"ctx") is None
    assert session_box.open(sealed, b"other-cookie") is None
