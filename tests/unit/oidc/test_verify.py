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
from gateway.config import ProviderKind
from gateway.oidc.profile import GENERIC_OIDC, profile_for
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
    generic = TokenVerifier(verifier.jwks, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,), profile=GENERIC_OIDC))
    assert (await generic.verify(keys.sign(id_claims(token_use=None)), "id"))["sub"] == "u1"
    with pytest.raises(TokenError):
        await generic.verify(keys.sign(id_claims(token_use="access")), "id")


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda k: k.sign(id_claims(sub=None)), "token has no sub"),
        (lambda k: k.sign(id_claims(sub="")), "token has no sub"),
        (lambda k: k.sign(id_claims(sub=42)), "token has no sub"),
        (lambda k: k.sign(id_claims(iss=None)), "token has no iss"),
        (lambda k: k.sign(id_claims(aud=None)), "token has no aud"),
        (lambda k: k.sign(id_claims(aud=[CLIENT, "other"], azp="other")), "token is for another client (azp)"),
        (lambda k: k.sign(id_claims(nonce=None)), "token has no nonce"),
        (lambda k: k.sign(id_claims(iat=None)), "token has no iat"),
        (lambda k: k.sign(id_claims(exp=str(int(time.time()) + 300))), "token has no numeric exp"),
        (lambda k: k.sign(id_claims(iat=True)), "token has no numeric iat"),
        (lambda k: k.sign(id_claims(nbf=int(time.time()) + 600)), "token not valid yet (nbf)"),
        (lambda k: k.sign(id_claims(), headers={"crit": ["exp"]}), None),  # PyJWT or we: refused either way
        (lambda k: k.sign(id_claims(), kid=None), "token has no kid"),
    ],
)
@pytest.mark.parametrize("kind", ["cognito", "oidc"])
async def test_required_claims_for_every_provider_kind(keys_and_verifier, make, reason, kind):
    """The id token's required claims are required whatever the provider kind (no kid: see below)."""
    keys, verifier = keys_and_verifier
    generic = TokenVerifier(verifier.jwks, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,), profile=profile_for(ProviderKind(kind))))
    if reason == "token has no kid" and kind == "oidc":
        reason = "token has no kid and the JWKS has 2 keys"
        keys.add("k2")
        keys.served = ["k1", "k2"]
    with pytest.raises(TokenError) as info:
        await generic.verify(make(keys), "id", nonce="n1")
    assert reason is None or info.value.reason == reason


def _rs256_with_header(keys: Keys, header: dict[str, Any]) -> str:
    """PyJWT refuses to write a non-string kid; an attacker's token is written by hand."""
    signing_input = (
        base64.urlsafe_b64encode(json.dumps({"alg": "RS256", **header}).encode()).rstrip(b"=")
        + b"."
        + base64.urlsafe_b64encode(json.dumps(id_claims()).encode()).rstrip(b"=")
    )
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(signing_input, keys.private["k1"])
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


async def test_access_token_needs_sub(keys_and_verifier):
    keys, verifier = keys_and_verifier
    with pytest.raises(TokenError, match="no sub"):
        await verifier.verify(keys.sign(access_claims(sub=None)), "access")


async def test_kid_absent_single_key_jwks(keys_and_verifier):
    """OpenID Connect Core 10.1 (rp-id_token-kid-absent-single-jwks): kind oidc uses the only key;
    kind cognito (aws-jwt-verify) refuses a token without kid."""
    keys, verifier = keys_and_verifier
    generic = TokenVerifier(verifier.jwks, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,), profile=GENERIC_OIDC))
    assert (await generic.verify(keys.sign(id_claims(), kid=None), "id", nonce="n1"))["sub"] == "u1"
    with pytest.raises(TokenError, match="bad signature"):  # the only key must still have signed it
        await generic.verify(keys.sign(id_claims(), kid=None, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)), "id")
    with pytest.raises(TokenError, match="token has no kid"):
        await verifier.verify(keys.sign(id_claims(), kid=None), "id")
    with pytest.raises(TokenError, match="malformed token|token has no kid"):  # a non-string kid is not "absent"
        await generic.verify(_rs256_with_header(keys, {"kid": 7}), "id")
    assert (await generic.verify(_rs256_with_header(keys, {}), "id"))["sub"] == "u1"


async def test_key_type_must_match_the_algorithm():
    """An EC token whose kid names an RSA key (JWK without alg) is refused before any signature check."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = {k: v for k, v in json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())).items() if k != "alg"}

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [{**jwk, "kid": "k1", "use": "sig"}]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner, url = await start_runner(app)
    try:
        async with aiohttp.ClientSession() as http:
            cache = JwksCache(lambda: http, url + "/jwks.json")
            verifier = TokenVerifier(cache, VerifyPolicy(issuer=ISSUER, client_ids=(CLIENT,), algorithms=("RS256", "ES256")))
            token = jwt.encode(id_claims(), ec_key, algorithm="ES256", headers={"kid": "k1"})
            with pytest.raises(TokenError, match="key type does not match"):
                await verifier.verify(token, "id")
            assert (await verifier.verify(jwt.encode(id_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"}), "id"))["sub"] == "u1"
    finally:
        await runner.cleanup()


async def test_unusable_jwks_keeps_the_keys_we_had(keys_and_verifier):
    keys, verifier = keys_and_verifier
    await verifier.verify(keys.sign(id_claims()), "id")
    keys.served = []  # {"keys": []}: nothing usable
    await verifier.jwks.refresh()
    assert (await verifier.verify(keys.sign(id_claims()), "id"))["sub"] == "u1"
