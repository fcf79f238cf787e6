"""The local Cognito's identity pools through AWS's own SDK: boto3's `cognito-identity` client.

boto3 is synchronous and the local Cognito runs on the test's event loop, so each call runs in a
thread. Dummy credentials keep botocore from looking for real ones (GetId and
GetCredentialsForIdentity are unsigned anyway).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import boto3
import jwt
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from gateway.idp.keys import SigningKey, generate_key
from gateway.idp.state import KEYS
from tests.fixtures.idp import CALLBACK, CONFIDENTIAL_SECRET, HostedUIBrowser, RunningIdp, callback_params, pkce_pair

POOL = "us-east-1:" + str(uuid.uuid4())
OTHER_POOL = "eu-west-1:" + str(uuid.uuid4())


def cognito_identity(idp: RunningIdp) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=secrets.token_urlsafe(30), region_name="us-east-1"
    )
    return session.client("cognito-identity", endpoint_url=idp.url, config=BotoConfig(retries={"max_attempts": 1}))


async def id_token_of(idp: RunningIdp, browser: HostedUIBrowser, user: str = "alice", client_id: str = "test-public") -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    authorize = idp.authorize_url(client_id, code_challenge=challenge, code_challenge_method="S256")
    code = callback_params(await browser.sign_in(authorize, user))["code"]
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": CALLBACK, "code_verifier": verifier}
    if client_id == "test-confidential":
        form["client_secret"] = CONFIDENTIAL_SECRET
    async with aiohttp.ClientSession() as http, http.post(idp.token_url, data=form) as response:
        assert response.status == 200, await response.text()
        return await response.json()


@pytest.fixture
async def pooled_idp(idp_factory) -> RunningIdp:
    return await idp_factory(identity_pools=[{"identity_pool_id": POOL}, {"identity_pool_id": OTHER_POOL, "client_ids": ["test-confidential"]}])


def provider(idp: RunningIdp) -> str:
    return idp.issuer.split("://", 1)[1]


async def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    return await asyncio.to_thread(getattr(client, operation), **params)


async def refused(client: Any, operation: str, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        await call(client, operation, **params)
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


async def test_get_id_and_credentials_through_boto3(pooled_idp, hosted_ui):
    tokens = await id_token_of(pooled_idp, hosted_ui)
    client = cognito_identity(pooled_idp)
    logins = {provider(pooled_idp): tokens["id_token"]}
    got = await call(client, "get_id", IdentityPoolId=POOL, Logins=logins)
    identity = got["IdentityId"]
    assert re.fullmatch(r"us-east-1:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", identity)
    answer = await call(client, "get_credentials_for_identity", IdentityId=identity, Logins=logins)
    assert answer["IdentityId"] == identity
    credentials = answer["Credentials"]
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", credentials["AccessKeyId"])
    assert len(credentials["SecretKey"]) == 40 and len(credentials["SessionToken"]) >= 500
    expiration = credentials["Expiration"]
    assert isinstance(expiration, datetime)  # botocore parsed the epoch seconds as a timestamp
    assert abs(expiration - (datetime.now(timezone.utc) + timedelta(hours=1))) < timedelta(seconds=10)
    again = await call(client, "get_credentials_for_identity", IdentityId=identity, Logins=logins)
    assert again["Credentials"]["AccessKeyId"] != credentials["AccessKeyId"]  # new credentials each call, as AWS
    stats = await pooled_idp.admin("GET", "stats/identity")
    assert stats["requests"] == {"GetId": 1, "GetCredentialsForIdentity": 2}


async def test_identity_id_is_stable_per_user_and_pool_and_cognitos_provider_name_works(pooled_idp, hosted_ui, idp_factory):
    client = cognito_identity(pooled_idp)
    alice = (await id_token_of(pooled_idp, hosted_ui))["id_token"]
    alice_again = (await id_token_of(pooled_idp, hosted_ui, client_id="test-confidential"))["id_token"]
    first = await call(client, "get_id", IdentityPoolId=POOL, Logins={provider(pooled_idp): alice})
    aws_name = f"cognito-idp.us-east-1.amazonaws.com/{pooled_idp.pool_id}"  # the name real Cognito uses
    second = await call(client, "get_id", IdentityPoolId=POOL, Logins={aws_name: alice_again})
    assert first["IdentityId"] == second["IdentityId"]
    other_pool = await call(client, "get_id", IdentityPoolId=OTHER_POOL, Logins={aws_name: alice_again})
    assert other_pool["IdentityId"].startswith("eu-west-1:") and other_pool["IdentityId"] != first["IdentityId"]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        bob = (await id_token_of(pooled_idp, HostedUIBrowser(session), "bob"))["id_token"]
    bobs = await call(client, "get_id", IdentityPoolId=POOL, Logins={aws_name: bob})
    assert bobs["IdentityId"] != first["IdentityId"]
    # Bob's token does not open Alice's identity.
    code, message = await refused(client, "get_credentials_for_identity", IdentityId=first["IdentityId"], Logins={aws_name: bob})
    assert code == "NotAuthorizedException" and "Logins don't match" in message


def forged(idp: RunningIdp, key: SigningKey | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": str(uuid.uuid4()), "aud": "test-public", "iss": idp.issuer, "token_use": "id", "iat": now, "exp": now + 600, **claims}
    key = key or idp.app[KEYS].current
    return jwt.encode(body, key.private_key, algorithm="RS256", headers={"kid": key.kid})


async def test_errors_are_cognito_identitys(pooled_idp, hosted_ui):
    client = cognito_identity(pooled_idp)
    tokens = await id_token_of(pooled_idp, hosted_ui)
    name = provider(pooled_idp)
    unknown_pool = "us-east-1:" + str(uuid.uuid4())
    assert (await refused(client, "get_id", IdentityPoolId=unknown_pool, Logins={name: tokens["id_token"]}))[0] == "ResourceNotFoundException"
    assert (await refused(client, "get_id", IdentityPoolId="not-a-pool", Logins={name: tokens["id_token"]}))[0] == "InvalidParameterException"
    cases = {
        "an access token": tokens["access_token"],
        "expired": forged(pooled_idp, exp=int(time.time()) - 60),
        "signed by a key not ours": forged(pooled_idp, key=generate_key()),
        "another issuer": forged(pooled_idp, iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"),
        "an unknown client": forged(pooled_idp, aud="somebody-else"),
        "garbage": "not.a.jwt",
    }
    for case, token in cases.items():
        code, _ = await refused(client, "get_id", IdentityPoolId=POOL, Logins={name: token})
        assert code == "NotAuthorizedException", case
    # The pool that takes the confidential client's tokens only refuses the public one's.
    code, message = await refused(client, "get_id", IdentityPoolId=OTHER_POOL, Logins={name: tokens["id_token"]})
    assert code == "NotAuthorizedException" and "audience" in message
    code, message = await refused(client, "get_id", IdentityPoolId=POOL, Logins={"accounts.google.com": tokens["id_token"]})
    assert code == "NotAuthorizedException" and "supported provider" in message
    code, _ = await refused(client, "get_id", IdentityPoolId=POOL)  # unauthenticated identities: not supported
    assert code == "NotAuthorizedException"
    unknown_identity = "us-east-1:" + str(uuid.uuid4())
    code, _ = await refused(client, "get_credentials_for_identity", IdentityId=unknown_identity, Logins={name: tokens["id_token"]})
    assert code == "NotAuthorizedException"
    code, _ = await refused(client, "get_credentials_for_identity", IdentityId="ap-south-1:" + str(uuid.uuid4()), Logins={name: tokens["id_token"]})
    assert code == "ResourceNotFoundException"


async def test_raw_protocol_edges(pooled_idp):
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    async with aiohttp.ClientSession() as http:
        async with http.post(pooled_idp.url + "/", data="{}", headers={**headers, "X-Amz-Target": "AWSCognitoIdentityService.DeleteIdentityPool"}) as response:
            assert response.status == 400 and (await response.json(content_type=None))["__type"] == "UnknownOperationException"
        async with http.post(pooled_idp.url + "/", data="{nope", headers={**headers, "X-Amz-Target": "AWSCognitoIdentityService.GetId"}) as response:
            assert response.status == 400 and (await response.json(content_type=None))["__type"] == "SerializationException"
        async with http.get(pooled_idp.url + "/") as response:
            assert response.status in (404, 405)


async def test_without_identity_pools_nothing_is_served_at_the_root(idp):
    async with aiohttp.ClientSession() as http:
        async with http.post(idp.url + "/", data="{}", headers={"X-Amz-Target": "AWSCognitoIdentityService.GetId"}) as response:
            assert response.status == 404
