"""The identity pool client: provider names, how AWS's answers are read and classified, against the
local Cognito and a small server that answers what AWS might (throttling, HTML, nonsense)."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from aiohttp import web

from gateway.config import AwsCredentialsConfig
from gateway.oidc.identity_pool import MAX_ANSWER, IdentityPoolClient, IdentityPoolError, Refusal, provider_name
from tests.fixtures.servers import start_runner

POOL = "us-east-1:" + str(uuid.uuid4())


def test_provider_name_is_the_issuer_without_scheme():
    assert provider_name("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc") == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
    assert provider_name("http://127.0.0.1:9000/us-east-1_Local/") == "127.0.0.1:9000/us-east-1_Local"


async def answering(status: int, body: bytes, content_type: str = "application/x-amz-json-1.1"):
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"target": request.headers.get("X-Amz-Target"), "type": request.content_type, "body": await request.json()})
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/", handle)
    runner, url = await start_runner(app)
    return runner, url, seen


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, b'{"__type": "NotAuthorizedException", "message": "Invalid login token."}', Refusal.NOT_AUTHORIZED, "NotAuthorizedException"),
        (400, b'{"__type": "com.amazonaws#ResourceNotFoundException", "message": "x"}', Refusal.MISCONFIGURED, "ResourceNotFoundException"),
        (400, b'{"__type": "InvalidParameterException"}', Refusal.MISCONFIGURED, "InvalidParameterException"),
        (400, b'{"__type": "TooManyRequestsException"}', Refusal.UNAVAILABLE, "TooManyRequestsException"),
        (500, b'{"__type": "InternalErrorException"}', Refusal.UNAVAILABLE, "InternalErrorException"),
        (502, b"<html>bad gateway</html>", Refusal.UNAVAILABLE, "bad_answer"),
        (200, b"[]", Refusal.UNAVAILABLE, "bad_answer"),
        (200, b"{}", Refusal.UNAVAILABLE, "bad_answer"),
        (200, b'{"IdentityId": "' + b"x" * MAX_ANSWER + b'"}', Refusal.UNAVAILABLE, "bad_answer"),
    ],
)
async def test_answers_are_classified(status, body, kind, code):
    runner, url, seen = await answering(status, body)
    try:
        async with aiohttp.ClientSession() as http:
            client = IdentityPoolClient(AwsCredentialsConfig(POOL, "us-east-1", url + "/"), lambda: http, timeout=2)
            with pytest.raises(IdentityPoolError) as caught:
                await client.get_id("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_P", "id.token.x")
    finally:
        await runner.cleanup()
    assert (caught.value.kind, caught.value.code) == (kind, code)
    assert seen[0]["target"] == "AWSCognitoIdentityService.GetId" and seen[0]["type"] == "application/x-amz-json-1.1"
    assert seen[0]["body"] == {"IdentityPoolId": POOL, "Logins": {"cognito-idp.us-east-1.amazonaws.com/us-east-1_P": "id.token.x"}}
    assert "id.token.x" not in str(caught.value)


async def test_credentials_answer_is_read_and_bad_ones_refused():
    good = {"IdentityId": "us-east-1:1", "Credentials": {"AccessKeyId": "ASIA1", "SecretKey": "s", "SessionToken": "t", "Expiration": 1.7e9}}
    for answer, ok in [(good, True), ({"Credentials": {**good["Credentials"], "Expiration": "soon"}}, False), ({"IdentityId": "x"}, False)]:
        runner, url, _ = await answering(200, json.dumps(answer).encode())
        try:
            async with aiohttp.ClientSession() as http:
                client = IdentityPoolClient(AwsCredentialsConfig(POOL, "us-east-1", url + "/"), lambda: http, timeout=2)
                if ok:
                    credentials = await client.get_credentials("us-east-1:1", "https://i/p", "tok")
                    assert credentials.to_json() == {"IdentityId": "us-east-1:1", "AccessKeyId": "ASIA1", "SecretKey": "s",
                                                     "SessionToken": "t", "Expiration": 1700000000}  # fmt: skip
                else:
                    with pytest.raises(IdentityPoolError):
                        await client.get_credentials("us-east-1:1", "https://i/p", "tok")
        finally:
            await runner.cleanup()


async def test_unreachable_is_unavailable():
    async with aiohttp.ClientSession() as http:
        client = IdentityPoolClient(AwsCredentialsConfig(POOL, "us-east-1", "http://127.0.0.1:9/"), lambda: http, timeout=1)
        with pytest.raises(IdentityPoolError) as caught:
            await client.get_id("https://i/p", "tok")
    assert (caught.value.kind, caught.value.code) == (Refusal.UNAVAILABLE, "unreachable")


async def test_against_the_local_cognito(idp_factory):
    idp = await idp_factory(identity_pools=[{"identity_pool_id": POOL}])
    async with aiohttp.ClientSession() as http:
        client = IdentityPoolClient(AwsCredentialsConfig(POOL, "us-east-1", idp.url + "/"), lambda: http, timeout=2)
        with pytest.raises(IdentityPoolError) as caught:
            await client.get_id(idp.issuer, "not.a.token")
    assert (caught.value.kind, caught.value.code) == (Refusal.NOT_AUTHORIZED, "NotAuthorizedException")


async def test_an_answer_arriving_in_pieces_is_read_whole():
    """A body split over several packets (as from AWS over TLS) is one answer, not a bad one."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-amz-json-1.1"})
        await response.prepare(request)
        await response.write(b'{"IdentityId": "us-east-1:')
        await asyncio.sleep(0.05)
        await response.write(b'0f0e0d0c-0b0a-4909-8807-060504030201"}')
        return response

    app = web.Application()
    app.router.add_post("/", handle)
    runner, url = await start_runner(app)
    try:
        async with aiohttp.ClientSession() as http:
            client = IdentityPoolClient(AwsCredentialsConfig(POOL, "us-east-1", url + "/"), lambda: http, timeout=2)
            identity = await client.get_id("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_P", "id.token.x")
    finally:
        await runner.cleanup()
    assert identity == "us-east-1:0f0e0d0c-0b0a-4909-8807-060504030201"
