"""The key endpoints over real HTTP: ALB verification code works by changing one base URL."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiohttp
import jwt
import pytest
from aiohttp import web

from gateway.auth.signing import SIGNER, GatewaySigner, add_key_routes

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
CLAIMS = {"sub": "8a4b6c1e-0000-4000-8000-000000000001", "email": "alice@example.com", "username": "alice"}


@asynccontextmanager
async def _serve(signer: GatewaySigner, **route_options: str) -> AsyncIterator[str]:
    """A tiny app with only the key routes, on an ephemeral 127.0.0.1 port; yields its base URL."""
    app = web.Application()
    app[SIGNER] = signer
    add_key_routes(app, SIGNER, **route_options)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def key_server() -> AsyncIterator[tuple[GatewaySigner, str]]:
    """Signs with the new secret, still publishes the old one's key; yields (signer, base URL)."""
    signer = GatewaySigner.from_secrets(("n" * 40, "o" * 40), None, "eu-west-1")
    async with _serve(signer) as base_url:
        yield signer, base_url


async def _verify_like_an_alb_app(token: str, key_base_url: str) -> dict:
    """The usual ALB recipe (fetch PEM by kid from the regional URL, verify ES256), with our base URL."""
    kid = jwt.get_unverified_header(token)["kid"]
    async with aiohttp.ClientSession() as session, session.get(f"{key_base_url}/{kid}") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        assert response.content_type == "text/plain"
        pem = await response.text()
    return jwt.decode(token, pem, algorithms=["ES256"], issuer=ISSUER)


async def test_alb_data_verifies_with_pem_from_key_endpoint(key_server: tuple[GatewaySigner, str]) -> None:
    signer, base_url = key_server
    expires_at = int(time.time()) + 120
    token = signer.alb_data(CLAIMS, ISSUER, "client-1", expires_at)
    payload = await _verify_like_an_alb_app(token, f"{base_url}/oauth2/keys")
    assert payload == {**CLAIMS, "exp": expires_at, "iss": ISSUER}
    assert jwt.get_unverified_header(token)["signer"] == signer.signer_arn


async def test_old_key_still_served_and_unknown_kid_is_404(key_server: tuple[GatewaySigner, str]) -> None:
    signer, base_url = key_server
    old_kid = signer.jwks()["keys"][1]["kid"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/oauth2/keys/{old_kid}") as response:
            assert response.status == 200
            assert (await response.text()).startswith("-----BEGIN PUBLIC KEY-----\n")
        for unknown in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "..%2f..%2fetc"):
            async with session.get(f"{base_url}/oauth2/keys/{unknown}") as response:
                assert response.status == 404


async def test_jwks_json_verifies_assertions(key_server: tuple[GatewaySigner, str]) -> None:
    signer, base_url = key_server
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/.well-known/jwks.json") as response:
        assert response.status == 200 and response.content_type == "application/json"
        jwks = await response.json()
    assert jwks == signer.jwks() and len(jwks["keys"]) == 2
    assert all(k["kty"] == "EC" and k["crv"] == "P-256" and k["alg"] == "ES256" for k in jwks["keys"])
    token = signer.assertion(CLAIMS, ISSUER, "https://app.example.com")
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    payload = jwt.decode(token, key, algorithms=["ES256"], audience="https://app.example.com", issuer=ISSUER)
    assert payload["sub"] == CLAIMS["sub"]


async def test_prefix_is_configurable() -> None:
    signer = GatewaySigner.from_secrets(("n" * 40,), None, "eu-west-1")
    async with _serve(signer, prefix="/_auth/") as base_url, aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/_auth/keys/{signer.kid}") as response:
            assert response.status == 200
        async with session.get(f"{base_url}/oauth2/keys/{signer.kid}") as response:
            assert response.status == 404
