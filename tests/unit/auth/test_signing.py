"""The gateway's own signing keys: derivation, rotation, ALB-format and assertion JWTs, caching."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from gateway.auth.signing import GatewaySigner
from gateway.errors import ConfigError

NEW = "n" * 40
OLD = "o" * 40
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
CLAIMS = {"sub": "8a4b6c1e-0000-4000-8000-000000000001", "email": "alice@example.com", "username": "alice"}
ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _alb_verify(signer: GatewaySigner, token: str, signer_arn: str, client_id: str) -> dict:
    """What an app behind an ALB does: PEM by the header's kid, ES256, then signer and client."""
    header = jwt.get_unverified_header(token)
    pem = signer.public_pem(header["kid"])
    assert pem is not None
    payload = jwt.decode(token, pem, algorithms=["ES256"], issuer=ISSUER)
    assert header["signer"] == signer_arn and header["client"] == client_id
    assert header["iss"] == ISSUER and header["exp"] == payload["exp"]
    return payload


def test_same_secrets_give_same_key_and_different_secrets_do_not() -> None:
    first = GatewaySigner.from_secrets((NEW,), None, "eu-west-1")
    second = GatewaySigner.from_secrets((NEW,), None, "eu-west-1")
    other = GatewaySigner.from_secrets((OLD,), None, "eu-west-1")
    assert first.kid == second.kid and first.jwks() == second.jwks()
    assert first.public_pem(first.kid) == second.public_pem(second.kid)
    assert first.signer_arn == second.signer_arn
    assert other.kid != first.kid and other.public_pem(other.kid) != first.public_pem(first.kid)
    assert uuid.UUID(first.kid).version == 4 and str(uuid.UUID(first.kid)) == first.kid


def test_default_signer_arn_is_alb_shaped_and_configured_one_is_kept() -> None:
    default = GatewaySigner.from_secrets((NEW,), None, "eu-west-1").signer_arn
    prefix = "arn:aws:elasticloadbalancing:eu-west-1:000000000000:loadbalancer/app/cognito-gateway/"
    assert default.startswith(prefix) and len(default) == len(prefix) + 16
    assert GatewaySigner.from_secrets((NEW,), ARN, "eu-west-1").signer_arn == ARN


@pytest.mark.parametrize(
    ("secrets", "arn", "region"),
    [((), None, "eu-west-1"), ((NEW,), None, "local"), ((NEW,), "arn:aws:ec2:eu-west-1:1:instance/i-1", "eu-west-1")],
)
def test_unusable_settings_are_config_errors(secrets: tuple[str, ...], arn: str | None, region: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySigner.from_secrets(secrets, arn, region)
    assert NEW not in str(caught.value)  # never a secret in a message


def test_rotation_publishes_old_key_and_signs_with_new() -> None:
    rotated = GatewaySigner.from_secrets((NEW, OLD), None, "eu-west-1")
    new_only = GatewaySigner.from_secrets((NEW,), None, "eu-west-1")
    old_only = GatewaySigner.from_secrets((OLD,), None, "eu-west-1")
    assert [key["kid"] for key in rotated.jwks()["keys"]] == [new_only.kid, old_only.kid]
    assert rotated.public_pem(old_only.kid) == old_only.public_pem(old_only.kid)
    token = rotated.assertion(CLAIMS, ISSUER, "https://app.example.com")
    assert jwt.get_unverified_header(token)["kid"] == new_only.kid
    # A token signed before the rotation still verifies with what the rotated signer publishes.
    before = old_only.alb_data(CLAIMS, ISSUER, "client-1", int(time.time()) + 120)
    _alb_verify(rotated, before, old_only.signer_arn, "client-1")


def test_alb_data_has_the_alb_format_and_verifies_with_the_pem() -> None:
    signer = GatewaySigner.from_secrets((NEW,), ARN, "eu-west-1")
    expires_at = int(time.time()) + 120
    token = signer.alb_data(CLAIMS, ISSUER, "client-1", expires_at)
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    assert list(header) == ["typ", "kid", "alg", "iss", "client", "signer", "exp"]  # the ALB's order
    assert header == {"typ": "JWT", "kid": signer.kid, "alg": "ES256", "iss": ISSUER,
                      "client": "client-1", "signer": ARN, "exp": expires_at}  # fmt: skip
    assert "=" not in token and len(base64.urlsafe_b64decode(signature_b64 + "==")) == 64
    assert _alb_verify(signer, token, ARN, "client-1") == {**CLAIMS, "exp": expires_at, "iss": ISSUER}


def test_claims_cannot_override_exp_or_iss() -> None:
    signer = GatewaySigner.from_secrets((NEW,), None, "eu-west-1")
    expires_at = int(time.time()) + 120
    sneaky = {**CLAIMS, "exp": expires_at + 10**6, "iss": "https://evil.example", "aud": "x"}
    payload = jwt.decode(signer.alb_data(sneaky, ISSUER, "c", expires_at), options={"verify_signature": False})
    assert payload["exp"] == expires_at and payload["iss"] == ISSUER
    token = signer.assertion(sneaky, ISSUER, "https://app.example.com")
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["aud"] == "https://app.example.com" and payload["exp"] - payload["iat"] == 60


def test_assertion_verifies_from_jwks_with_audience() -> None:
    signer = GatewaySigner.from_secrets((NEW, OLD), None, "eu-west-1")
    token = signer.assertion({**CLAIMS, "cognito:groups": ["admins"]}, ISSUER, "https://app.example.com")
    keys = jwt.PyJWKSet.from_dict(signer.jwks())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    payload = jwt.decode(token, key, algorithms=["ES256"], audience="https://app.example.com", issuer=ISSUER)
    assert payload["sub"] == CLAIMS["sub"] and payload["cognito:groups"] == ["admins"]
    assert 0 <= time.time() - payload["iat"] < 5 and payload["exp"] == payload["iat"] + 60
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=["ES256"], audience="https://other.example.com")


def test_tampered_tokens_fail() -> None:
    signer = GatewaySigner.from_secrets((NEW,), ARN, "eu-west-1")
    token = signer.alb_data(CLAIMS, ISSUER, "client-1", int(time.time()) + 120)
    header_b64, payload_b64, signature_b64 = token.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "mallory"}).encode()).rstrip(b"=")
    flipped = signature_b64[:-2] + ("AA" if signature_b64[-2:] != "AA" else "BA")
    pem = signer.public_pem(signer.kid)
    for bad in (f"{header_b64}.{forged_payload.decode()}.{signature_b64}", f"{header_b64}.{payload_b64}.{flipped}"):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, pem, algorithms=["ES256"])
    other = GatewaySigner.from_secrets((OLD,), ARN, "eu-west-1")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_pem(other.kid), algorithms=["ES256"])
    assert signer.public_pem("00000000-0000-4000-8000-000000000000") is None


def test_cache_reuses_token_until_shortly_before_exp() -> None:
    clock = FakeClock()
    signer = GatewaySigner.from_secrets((NEW,), None, "eu-west-1", clock=clock)
    first = signer.assertion(CLAIMS, ISSUER, "aud", lifetime=60)
    clock.now += 29
    assert signer.assertion(CLAIMS, ISSUER, "aud", lifetime=60) == first  # ECDSA is randomized: same = cached
    assert signer.assertion({**CLAIMS, "email": "b@example.com"}, ISSUER, "aud") != first
    assert signer.assertion(CLAIMS, ISSUER, "other-aud") != first
    clock.now += 2  # now 29 s before exp: a fresh token
    second = signer.assertion(CLAIMS, ISSUER, "aud", lifetime=60)
    assert second != first
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(clock.now)


def test_cache_for_tiny_lifetime_and_alb_data() -> None:
    clock = FakeClock()
    signer = GatewaySigner.from_secrets((NEW,), None, "eu-west-1", clock=clock)
    tiny = signer.assertion(CLAIMS, ISSUER, "aud", lifetime=4)
    assert signer.assertion(CLAIMS, ISSUER, "aud", lifetime=4) == tiny  # reused for half its life
    clock.now += 2
    assert signer.assertion(CLAIMS, ISSUER, "aud", lifetime=4) != tiny
    expires_at = int(clock.now) + 120
    data = signer.alb_data(CLAIMS, ISSUER, "c", expires_at)
    assert signer.alb_data(CLAIMS, ISSUER, "c", expires_at) == data
    assert signer.alb_data(CLAIMS, ISSUER, "c", expires_at + 1) != data  # exp is part of the token
    clock.now += 91
    assert signer.alb_data(CLAIMS, ISSUER, "c", expires_at) != data


def test_cache_stays_bounded() -> None:
    clock = FakeClock()
    signer = GatewaySigner.from_secrets((NEW,), None, "eu-west-1", clock=clock)
    for i in range(10_050):
        signer.assertion({"sub": str(i)}, ISSUER, "aud")
    assert len(signer._cache) <= 10_000
    newest = signer.assertion({"sub": "10049"}, ISSUER, "aud")
    assert signer.assertion({"sub": "10049"}, ISSUER, "aud") == newest
