"""Token verification with aws-jwt-verify's rules, against keys served by a real JWKS endpoint."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import TokenError
from gateway.oidc.jwks import JwksCache
from gateway.oidc.verify import TokenVerifier, VerifyPolicy
from tests.fixtures.servers import start_runner

ISSUER = "http://127.0.0.1:9/us-east-1_TestPool"
CLIENT = "client-1"


class Keys:
    def __init__(self) -> None:
        self.private = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.served: list[str] = ["k1"]
        self.fetches = 0
        self.fail = False

    def add(self, kid: str) -> None:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.served:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private[kid].public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def sign(self, claims: dict[str, Any], kid: str | None = "k1", alg: str = "RS256", key: Any = None, headers: dict | None = None) -> str:
        hdrs = dict(headers or {})
        if kid is not None:
            hdrs["kid"] = kid
        signer = key if key is not None else self.private.get(kid or "k1", self.private["k1"])
        return jwt.encode(claims, signer, algorithm=alg, headers=hdrs)


def id_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "u1", "iss": ISSUER, "aud": CLIENT, "token_use": "id", "iat": now, "exp": now + 300, "nonce": "n1", "cognito:username": "alice"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def access_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "u1", "iss": ISSUER, "client_id": CLIENT, "token_use": "access", "iat": now, "exp": now + 300, "scope": "openid"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
async def keys_and_verifier():
    keys = Keys()

    async def jwks(request: web.Request) -> web.Response:
        keys.fetches += 1
        if keys.fail:
            return web.Response(status=503)
        return web.json_response(keys.jwks())

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner, url = await start_runner(app)
    async with aiohttp.ClientSession() as http:
        cache = JwksCache(lambda: http, url + "/jwks.json", refetch_interval=60)
        verifier = TokenVerifier(cache, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,)))
        yield keys, verifier
    await runner.cleanup()


async def test_valid_id_and_access_tokens(keys_and_verifier):
    keys, verifier = keys_and_verifier
    claims = await verifier.verify(keys.sign(id_claims()), "id", nonce="n1")
    assert claims["cognito:username"] == "alice"
    assert (await verifier.verify(keys.sign(access_claims()), "access"))["scope"] == "openid"


def _hs256_with_public_key(keys: Keys) -> str:
    pem = keys.private["k1"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(id_claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    return (header + b"." + body + b"." + signature).decode()


def _alg_none() -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(id_claims()).encode()).rstrip(b"=").decode()
    return f"{header}.{body}."


@pytest.mark.parametrize(
    "make, use, reason",
    [
        (lambda k: k.sign(id_claims(), key=rsa.generate_private_key(public_exponent=65537, key_size=2048)), "id", "bad signature"),
        (lambda k: k.sign(id_claims(), kid="nope"), "id", "unknown signing key (kid)"),
        (lambda k: k.sign(id_claims(), kid=None), "id", "token has no kid"),
        (lambda k: k.sign(id_claims(iss="https://evil.example/pool")), "id", "wrong issuer"),
        (lambda k: k.sign(id_claims(aud="other-client")), "id", "token is for another client (aud)"),
        (lambda k: k.sign(id_claims(nonce="other")), "id", "nonce mismatch"),
        (lambda k: k.sign(id_claims(token_use="access")), "id", "not an id token"),
        (lambda k: k.sign(id_claims(token_use=None)), "id", "not an id token"),
        (lambda k: k.sign(access_claims()), "id", "not an id token"),
        (lambda k: k.sign(access_claims(client_id="other")), "access", "token is for another client (client_id)"),
        (lambda k: k.sign(id_claims()), "access", "not an access token"),
        (lambda k: k.sign(id_claims(exp=int(time.time()) - 60)), "id", "token expired"),
        (lambda k: k.sign(id_claims(iat=int(time.time()) + 600)), "id", "token issued in the future"),
        (lambda k: k.sign(id_claims(exp=None)), "id", "token has no exp"),
        (lambda k: _alg_none(), "id", "algorithm not allowed: none"),
        (_hs256_with_public_key, "id", "algorithm not allowed: HS256"),
        (lambda k: k.sign(id_claims(), alg="ES256", key=ec.generate_private_key(ec.SECP256R1())), "id", "algorithm not allowed: ES256"),
        (lambda k: "not.a.jwt", "id", "malformed token"),
        (lambda k: "", "id", "malformed token"),
    ],
)
async def test_refusals(keys_and_verifier, make, use, reason):
    keys, verifier = keys_and_verifier
    with pytest.raises(TokenError) as info:
        await verifier.verify(make(keys), use, nonce="n1")
    assert info.value.reason == reason


async def test_small_clock_skew_is_tolerated(keys_and_verifier):
    keys, verifier = keys_and_verifier
    await verifier.verify(keys.sign(id_claims(exp=int(time.time()) - 2)), "id")


async def test_unknown_kid_refetches_at_most_once_per_interval(keys_and_verifier):
    keys, verifier = keys_and_verifier
    await verifier.verify(keys.sign(id_claims()), "id")
    assert keys.fetches == 1
    for i in range(20):
        with pytest.raises(TokenError):
            await verifier.verify(keys.sign(id_claims(), kid=f"garbage-{i}"), "id")
    assert keys.fetches == 1, "garbage kids must not make us hammer the JWKS endpoint"


async def test_key_rotation_is_picked_up_by_refetch(keys_and_verifier):
    keys, verifier = keys_and_verifier
    await verifier.verify(keys.sign(id_claims()), "id")
    keys.add("k2")
    keys.served = ["k1", "k2"]
    verifier.jwks.refetch_interval = 0
    claims = await verifier.verify(keys.sign(id_claims(), kid="k2"), "id")
    assert claims["sub"] == "u1" and keys.fetches == 2


async def test_failed_fetch_keeps_known_keys(keys_and_verifier):
    keys, verifier = keys_and_verifier
    await verifier.verify(keys.sign(id_claims()), "id")
    keys.fail = True
    verifier.jwks.refetch_interval = 0
    with pytest.raises(TokenError):
        await verifier.verify(keys.sign(id_claims(), kid="k9"), "id")
    assert (await verifier.verify(keys.sign(id_claims()), "id"))["sub"] == "u1"


async def test_oidc_mode_accepts_tokens_without_token_use_but_checks_it_when_present(keys_and_verifier):
    keys, verifier = keys_and_verifier
    generic = TokenVerifier(verifier.jwks, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,), claims="oidc"))
    assert (await generic.verify(keys.sign(id_claims(token_use=None)), "id"))["sub"] == "u1"
    with pytest.raises(TokenError):
        await generic.verify(keys.sign(id_claims(token_use="access")), "id")
