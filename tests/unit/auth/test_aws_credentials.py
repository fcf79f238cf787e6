"""The credentials endpoint's decisions: how long credentials are handed out, which requests are
another site's, and the cache with one fetch per id token (a fake identity pool at the I/O seam)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.auth.aws_credentials import MARGIN, REFUSAL_TTL, AwsCredentialsEndpoint, fresh_until, from_another_site
from gateway.auth.same_origin import OwnOrigins
from gateway.oidc.identity_pool import AwsCredentials, IdentityPoolError, Refusal

OURS = OwnOrigins("https://app.example.com", ("https://admin.example.com",))


def test_fresh_until_keeps_a_margin_and_halves_short_lives():
    assert fresh_until(10_000.0, 6_400.0) == 10_000.0 - MARGIN
    assert fresh_until(1_060.0, 1_000.0) == 1_030.0
    assert fresh_until(900.0, 1_000.0) == 900.0  # already expired: not kept at all


@pytest.mark.parametrize(
    ("headers", "foreign"),
    [
        ({}, False),  # a client that says nothing: curl with a cookie, not a page of another site
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example.com"}, True),  # the browser's word wins
        ({"Origin": "https://app.example.com"}, False),
        ({"Origin": "https://admin.example.com"}, False),
        ({"Origin": "https://evil.example"}, True),
        ({"Origin": "null"}, True),
        ({"Referer": "https://app.example.com/page"}, False),
        ({"Referer": "https://evil.example/page"}, True),
        ({"Referer": "android-app://x"}, True),
    ],
)
def test_from_another_site(headers, foreign):
    request = make_mocked_request("GET", "/oauth2/aws-credentials", headers={"Host": "app.example.com", **headers})
    assert from_another_site(request, OURS) is foreign


def id_token(sub: str, exp: float, jti: str = "1") -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub, "iss": "https://issuer/p", "exp": exp, "jti": jti}).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


class FakePool:
    def __init__(self, lifetime: float, now: list[float]) -> None:
        self.calls: list[str] = []
        self.lifetime, self.now = lifetime, now
        self.refuse: IdentityPoolError | None = None

    async def get_id(self, issuer: str, token: str) -> str:
        self.calls.append("GetId")
        return "us-east-1:0000"

    async def get_credentials(self, identity_id: str, issuer: str, token: str) -> AwsCredentials:
        self.calls.append("GetCredentialsForIdentity")
        await asyncio.sleep(0.01)
        if self.refuse:
            raise self.refuse
        n = len(self.calls)
        return AwsCredentials(identity_id, f"ASIA{n}", "s" * 40, "t", self.now[0] + self.lifetime)


def endpoint(pool: FakePool, now: list[float]) -> AwsCredentialsEndpoint:
    return AwsCredentialsEndpoint(pool, authenticator=None, own_origins=OURS, clock=lambda: now[0])  # type: ignore[arg-type]


async def test_one_fetch_for_concurrent_requests_then_cached_until_the_margin():
    now = [1_000.0]
    pool = FakePool(3600, now)
    credentials = endpoint(pool, now)
    token = id_token("alice", 5_000)
    answers = await asyncio.gather(*(credentials.credentials(token) for _ in range(50)))
    assert len({a.access_key_id for a in answers}) == 1 and pool.calls == ["GetId", "GetCredentialsForIdentity"]
    now[0] = 1_000 + 3600 - MARGIN - 1
    assert (await credentials.credentials(token)) is answers[0]
    now[0] += 2
    assert (await credentials.credentials(token)).access_key_id != answers[0].access_key_id
    assert pool.calls == ["GetId", "GetCredentialsForIdentity", "GetCredentialsForIdentity"]  # the identity id is kept


async def test_refusals_are_kept_briefly_and_forget_the_identity_id():
    now = [1_000.0]
    pool = FakePool(3600, now)
    credentials = endpoint(pool, now)
    pool.refuse = IdentityPoolError(Refusal.NOT_AUTHORIZED, "NotAuthorizedException")
    for _ in range(3):  # a refused user reloading the page costs the account's quota nothing more
        with pytest.raises(IdentityPoolError):
            await credentials.credentials(id_token("alice", 5_000))
    assert pool.calls == ["GetId", "GetCredentialsForIdentity"]
    pool.refuse = None
    now[0] += REFUSAL_TTL
    await credentials.credentials(id_token("alice", 5_000))
    assert pool.calls == ["GetId", "GetCredentialsForIdentity", "GetId", "GetCredentialsForIdentity"]


async def test_an_expired_id_token_is_not_sent():
    now = [1_000.0]
    pool = FakePool(3600, now)
    with pytest.raises(IdentityPoolError) as caught:
        await endpoint(pool, now).credentials(id_token("alice", 999))
    assert caught.value.code == "id_token_expired" and pool.calls == []


def test_credentials_never_show_their_secrets_in_repr():
    credentials = AwsCredentials("us-east-1:1", "ASIAABCDEFGHIJKLMNOP", "secret-" * 6, "token-" * 10, 1.0)
    assert "secret-" not in repr(credentials) and "token-" not in repr(credentials) and "ABCDEF" not in repr(credentials)
    answer: dict[str, Any] = credentials.to_json()
    assert answer["Expiration"] == 1 and isinstance(answer["Expiration"], int)
