"""Forged, replayed and tampered sign-ins: each refused with a 4xx and no session.

Token-level forgeries come from a provider that misbehaves on purpose: a real HTTP server whose
token endpoint returns whatever token the test crafted (the local Cognito cannot be made to sign
bad tokens). Replays and tampering run against the real local Cognito.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Callable

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.idp import PASSWORD
from tests.fixtures.servers import free_port, start_runner
from tests.fixtures.stack import SESSION_SECRET

CLIENT = "forged-client"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class ForgingProvider:
    """Discovery + JWKS like a real OP; the token endpoint answers with `self.tokens(nonce)`."""

    def __init__(self) -> None:
        self.url = ""
        self.tokens: Callable[[str], dict[str, Any]] = lambda nonce: {}
        self.nonce = ""

    @property
    def issuer(self) -> str:
        return self.url + "/pool"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/pool/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/pool/.well-known/jwks.json", self.jwks)
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/oauth2/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": self.url + "/oauth2/authorize",
            "token_endpoint": self.url + "/oauth2/token", "jwks_uri": self.issuer + "/.well-known/jwks.json",
        })  # fmt: skip

    async def jwks(self, request: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
        return web.json_response({"keys": [{**jwk, "kid": "good", "alg": "RS256", "use": "sig"}]})

    async def authorize(self, request: web.Request) -> web.Response:
        self.nonce = request.query["nonce"]
        return web.Response(status=302, headers={"Location": f"{request.query['redirect_uri']}?code=c0de&state={request.query['state']}"})

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response(self.tokens(self.nonce))


def claims(use: str, sent_nonce: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "u1", "iss": "ISSUER", "token_use": use, "iat": now, "exp": now + 600, "cognito:username": "mallory"}
    base.update({"aud": CLIENT, "nonce": sent_nonce} if use == "id" else {"client_id": CLIENT, "scope": "openid"})
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = KEY, kid: str | None = "good", alg: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else {})


def unsigned(payload: dict[str, Any], alg: str = "none", secret: bytes | None = None) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": alg, "kid": "good"}).encode()) + b"." + b64(json.dumps(payload).encode())
    signature = b64(hmac.new(secret, head, hashlib.sha256).digest()) if secret else b""
    return (head + b"." + signature).decode()


PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

# Each case builds (id_token, access_token) from the issuer and the nonce the gateway sent.
CASES: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "valid": lambda iss, n: (sign(claims("id", n, iss=iss)), sign(claims("access", n, iss=iss))),
    "bad-signature": lambda iss, n: (sign(claims("id", n, iss=iss), key=OTHER_KEY), sign(claims("access", n, iss=iss))),
    "unknown-kid": lambda iss, n: (sign(claims("id", n, iss=iss), kid="other"), sign(claims("access", n, iss=iss))),
    "wrong-iss": lambda iss, n: (sign(claims("id", n, iss="https://evil.example/pool")), sign(claims("access", n, iss=iss))),
    "wrong-aud": lambda iss, n: (sign(claims("id", n, iss=iss, aud="someone-else")), sign(claims("access", n, iss=iss))),
    "wrong-client_id": lambda iss, n: (sign(claims("id", n, iss=iss)), sign(claims("access", n, iss=iss, client_id="x"))),
    "id-token_use-access": lambda iss, n: (sign(claims("id", n, iss=iss, token_use="access")), sign(claims("access", n, iss=iss))),
    "access-token_use-id": lambda iss, n: (sign(claims("id", n, iss=iss)), sign(claims("id", n, iss=iss))),
    "wrong-nonce": lambda iss, n: (sign(claims("id", "not-" + n, iss=iss)), sign(claims("access", n, iss=iss))),
    "missing-nonce": lambda iss, n: (sign(claims("id", n, iss=iss, nonce=None)), sign(claims("access", n, iss=iss))),
    "expired": lambda iss, n: (sign(claims("id", n, iss=iss, exp=int(time.time()) - 120)), sign(claims("access", n, iss=iss))),
    "alg-none": lambda iss, n: (unsigned(claims("id", n, iss=iss)), sign(claims("access", n, iss=iss))),
    "hs256-with-public-key": lambda iss, n: (unsigned(claims("id", n, iss=iss), "HS256", PUBLIC_PEM), sign(claims("access", n, iss=iss))),
    "no-id-token": lambda iss, n: ("", sign(claims("access", n, iss=iss))),
}


@pytest.fixture
async def forging_stack(make_gateway, demo_upstream):
    provider = ForgingProvider()
    runner, provider.url = await start_runner(provider.app())
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    await make_gateway({
        "listen": f"127.0.0.1:{port}", "public_url": gateway, "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": {"issuer": provider.issuer, "client_id": CLIENT, "kind": "cognito"}, "session": {"secrets": [SESSION_SECRET]},
    })  # fmt: skip
    yield provider, gateway
    await runner.cleanup()


@pytest.mark.parametrize("case", list(CASES))
async def test_forged_tokens_never_make_a_session(forging_stack, browser, case):
    provider, gateway = forging_stack

    def tokens(nonce: str) -> dict[str, Any]:
        id_token, access_token = CASES[case](provider.issuer, nonce)
        body = {"access_token": access_token, "expires_in": 600, "token_type": "Bearer", "refresh_token": "r"}
        return {**body, "id_token": id_token} if id_token else body

    provider.tokens = tokens
    page = await browser.open(gateway + "/api/whoami")
    session_cookies = [name for name in browser.cookies() if name.startswith("_gw_session_") and "_login_" not in name]
    if case == "valid":  # the control: the same path with good tokens does sign in
        assert page.status == 200 and json.loads(page.text)["raw_path"] == "/api/whoami" and session_cookies
        return
    assert page.status == 400, (case, page.status, page.text[:200])
    assert "failed verification" in page.text or "sign-in" in page.text.lower()
    assert not session_cookies, f"{case}: a session cookie was set"


async def test_state_mismatch_and_missing_state_are_refused(make_stack, browser):
    stack = await make_stack()
    page = await browser.open(stack.gateway + "/")
    for bad in ("?code=x&state=forged", "?code=x", "?state=&code=x"):
        result = await browser.open(stack.gateway + "/oauth2/callback" + bad)
        assert result.status == 400 and "invalid or has expired" in result.text
    assert "password" in page.text


async def test_replayed_callback_is_refused(make_stack, browser):
    stack = await make_stack()
    page = await browser.open(stack.gateway + "/")
    form = page.form()
    async with browser.session.post(form.action, data={**form.fields, "username": "alice", "password": PASSWORD}, allow_redirects=False) as response:
        callback = response.headers["Location"]
    first = await browser.open(callback)
    assert first.status == 200
    browser.session.cookie_jar.clear()
    replay = await browser.open(callback)
    assert replay.status == 400 and not [n for n in browser.cookies() if n.startswith("_gw_session_")]


async def test_replayed_code_with_a_fresh_login_cookie_is_refused_by_the_provider(make_stack, browser):
    """Even with a valid login cookie for the same state, the provider's one-time code stops a replay."""
    stack = await make_stack()
    page = await browser.open(stack.gateway + "/")
    login_cookies = {n: v for n, v in browser.cookies().items() if "_login_" in n}
    form = page.form()
    async with browser.session.post(form.action, data={**form.fields, "username": "alice", "password": PASSWORD}, allow_redirects=False) as response:
        callback = response.headers["Location"]
    assert (await browser.open(callback)).status == 200
    async with aiohttp.ClientSession() as attacker:
        cookie = "; ".join(f"{k}={v}" for k, v in login_cookies.items())
        async with attacker.get(callback, headers={"Cookie": cookie, "Accept": "text/html"}, allow_redirects=False) as response:
            assert response.status == 400
            assert "invalid_grant" in await response.text()
            assert not [c for c in response.headers.getall("Set-Cookie", []) if c.startswith("_gw_session_") and "_login_" not in c and "Max-Age=0" not in c]


async def test_tampered_session_chunk_means_signed_out(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    cookies = {n: v for n, v in browser.cookies().items() if n.startswith("_gw_session_")}
    chunk = cookies["_gw_session_0"]
    cookies["_gw_session_0"] = chunk[:50] + ("A" if chunk[50] != "A" else "B") + chunk[51:]
    async with aiohttp.ClientSession() as http:
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        async with http.get(stack.gateway + "/api/whoami", headers={"Cookie": header, "Accept": "application/json"}) as response:
            assert response.status == 401


@pytest.mark.parametrize("rd", ["//evil.example/x", "/\\evil.example", "https://evil.example", "/%2F%2Fevil.example", "javascript:alert(1)"])
async def test_open_redirects_fall_back_to_root(make_stack, browser, rd):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")  # signed in, so start -> authorize is silent SSO
    async with aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar) as http:
        async with http.get(stack.gateway + "/oauth2/start", params={"rd": rd}, allow_redirects=False) as response:
            authorize = response.headers["Location"]
        async with http.get(authorize, allow_redirects=False) as response:
            callback = response.headers["Location"]
        async with http.get(callback, allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/"
