"""GET /oauth2/aws-credentials: a real gateway process, the local Cognito's identity pool behind it."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.fixtures.browser import Browser
from tests.fixtures.idp import RunningIdp
from tests.fixtures.servers import GatewayProcess, free_port
from tests.fixtures.stack import SESSION_SECRET, gateway_clients, session_in

POOL = "us-east-1:" + str(uuid.uuid4())
FIELDS = {"IdentityId", "AccessKeyId", "SecretKey", "SessionToken", "Expiration"}
SAME_ORIGIN = {"Accept": "application/json", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


@dataclass
class CredentialsStack:
    idp: RunningIdp
    gateway: GatewayProcess

    @property
    def endpoint(self) -> str:
        return self.gateway.url + "/oauth2/aws-credentials"

    async def identity_calls(self) -> dict[str, int]:
        return (await self.idp.admin("GET", "stats/identity"))["requests"]


@pytest.fixture
async def credentials_stack(idp_factory, gateway_process, demo_upstream):
    async def start(aws_credentials: dict[str, Any] | None = None, pools: list[dict[str, Any]] | None = None, **extra: Any) -> CredentialsStack:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        idp_overrides = extra.pop("idp", {})
        idp = await idp_factory(clients=gateway_clients(url), identity_pools=pools or [{"identity_pool_id": POOL}], **idp_overrides)
        config = {
            "public_url": url,
            "upstreams": [{"path": "/", "url": demo_upstream}],
            "provider": {"issuer": idp.issuer, "client_id": "gw-public", "timeout": "2s"},
            "session": {"secrets": [SESSION_SECRET]},
            "aws_credentials": {"endpoint": idp.url, **(aws_credentials or {"identity_pool_id": POOL})},
            **extra,
        }
        gateway = await asyncio.to_thread(gateway_process, config, 1, port)
        return CredentialsStack(idp, gateway)

    return start


async def fetch(browser: Browser, url: str, **headers: str) -> tuple[int, Any, Any]:
    async with browser.session.get(url, headers={**SAME_ORIGIN, **headers}, allow_redirects=False) as response:
        return response.status, json.loads(await response.text()), response.headers


async def test_signed_in_user_gets_credentials_fetched_once_and_never_in_cookie_or_log(credentials_stack, browser):
    stack = await credentials_stack()
    await browser.sign_in(stack.gateway.url + "/")
    cookies_before = browser.cookies()
    answers = await asyncio.gather(*(fetch(browser, stack.endpoint) for _ in range(20)))  # one session, at once
    status, body, headers = answers[0]
    assert status == 200 and set(body) == FIELDS
    assert all(answer[:2] == (200, body) for answer in answers), "concurrent requests share one fetch"
    assert re.fullmatch(r"us-east-1:[0-9a-f-]{36}", body["IdentityId"]) and body["AccessKeyId"].startswith("ASIA")
    assert isinstance(body["Expiration"], int) and len(body["SecretKey"]) == 40
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert not [name for name in headers if name.lower().startswith("access-control-")]
    assert "Set-Cookie" not in headers
    assert await stack.identity_calls() == {"GetId": 1, "GetCredentialsForIdentity": 1}

    again = await fetch(browser, stack.endpoint)
    assert again[:2] == (200, body), "served from the cache"
    assert await stack.identity_calls() == {"GetId": 1, "GetCredentialsForIdentity": 1}

    assert browser.cookies() == cookies_before
    sealed = json.dumps(session_in({k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}))
    log = stack.gateway.log()
    for secret in (body["AccessKeyId"], body["SecretKey"], body["SessionToken"]):
        assert secret not in sealed and secret not in log


async def test_signed_out_is_401_and_bearer_tokens_are_not_taken(credentials_stack, browser):
    stack = await credentials_stack()
    status, body, headers = await fetch(browser, stack.endpoint)
    assert status == 401 and body["error"] == "unauthenticated" and headers["WWW-Authenticate"].startswith("Bearer")
    await browser.sign_in(stack.gateway.url + "/")
    assert (await fetch(browser, stack.endpoint))[0] == 200
    async with browser.session.get(stack.gateway.url + "/oauth2/sign_out", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False):
        pass
    assert (await fetch(browser, stack.endpoint))[0] == 401
    async with aiohttp.ClientSession() as http:  # an access token is no id token: GetId cannot use it
        async with http.get(stack.endpoint, headers={**SAME_ORIGIN, "Authorization": "Bearer " + "x" * 40}) as response:
            assert response.status == 401


async def test_other_sites_cannot_have_them(credentials_stack, browser):
    stack = await credentials_stack()
    await browser.sign_in(stack.gateway.url + "/")
    refused = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another app
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"},
    ]
    no_fetch_metadata = [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/page"}]
    for headers in refused:
        status, body, answer_headers = await fetch(browser, stack.endpoint, **headers)
        assert (status, body["error"]) == (403, "cross_site"), headers
        assert answer_headers["Cache-Control"] == "no-store"
    for headers in no_fetch_metadata:
        async with browser.session.get(stack.endpoint, headers={"Accept": "application/json", **headers}) as response:
            assert response.status == 403, headers
    assert await stack.identity_calls() == {}
    allowed = [
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {"Origin": stack.gateway.url},  # a browser without Fetch Metadata, on one of our pages
        {"Referer": stack.gateway.url + "/app"},
    ]
    for headers in allowed:
        async with browser.session.get(stack.endpoint, headers={"Accept": "application/json", **headers}) as response:
            assert response.status == 200, headers


async def test_a_refresh_on_the_same_request_gives_the_new_id_tokens_credentials(credentials_stack, browser):
    stack = await credentials_stack(
        pools=[{"identity_pool_id": POOL, "credentials_lifetime": 2}],
        idp={"token_lifetimes": {"access": 300, "id": 300}},
        refresh={"before_expiry": "300s"},  # every request refreshes the session's tokens first
    )
    await browser.sign_in(stack.gateway.url + "/")
    refreshed = (await stack.idp.admin("GET", "stats/refresh"))["total"]
    first = await fetch(browser, stack.endpoint)
    assert first[0] == 200, first[1]
    second = await fetch(browser, stack.endpoint)
    assert second[0] == 200 and second[1]["IdentityId"] == first[1]["IdentityId"]
    # One refresh per request: finding the refreshed id token asked the refresher, not the provider, again.
    assert (await stack.idp.admin("GET", "stats/refresh"))["total"] == refreshed + 2
    calls = await stack.identity_calls()
    assert calls["GetId"] == 1, "the identity id is kept per user, whatever the id token"
    assert calls["GetCredentialsForIdentity"] == 2, "a refreshed id token is a new key"


async def test_short_lived_credentials_are_fetched_again_before_they_expire(credentials_stack, browser):
    stack_cached = await credentials_stack(pools=[{"identity_pool_id": POOL, "credentials_lifetime": 2}])
    await browser.sign_in(stack_cached.gateway.url + "/")
    one = await fetch(browser, stack_cached.endpoint)
    assert (await fetch(browser, stack_cached.endpoint))[1] == one[1]  # cached for half their 2 s
    await asyncio.sleep(1.3)
    later = await fetch(browser, stack_cached.endpoint)
    assert later[0] == 200 and later[1]["AccessKeyId"] != one[1]["AccessKeyId"]
    assert (await stack_cached.identity_calls())["GetCredentialsForIdentity"] == 2


async def test_identity_service_failures_are_short_json_answers(credentials_stack, browser):
    cases = [
        ({"identity_pool_id": "us-east-1:" + str(uuid.uuid4())}, 502, "identity_pool_error", "ResourceNotFoundException"),
        ({"identity_pool_id": POOL, "endpoint": f"http://127.0.0.1:{free_port()}"}, 503, "identity_pool_unavailable", "unreachable"),
    ]
    for aws_credentials, status, error, reason in cases:
        stack = await credentials_stack(aws_credentials=aws_credentials)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            signed_in = Browser(session)
            await signed_in.sign_in(stack.gateway.url + "/")
            got, body, headers = await fetch(signed_in, stack.endpoint)
        assert (got, body["error"]) == (status, error) and reason in body["message"], body
        assert headers["Content-Type"].startswith("application/json") and headers["Cache-Control"] == "no-store"
        assert "Traceback" not in stack.gateway.log()
        if status == 503:
            assert headers["Retry-After"] == "5"
    refusing = await credentials_stack(pools=[{"identity_pool_id": POOL, "client_ids": ["gw-confidential"]}])
    await browser.sign_in(refusing.gateway.url + "/")
    got, body, _ = await fetch(browser, refusing.endpoint)
    assert (got, body["error"]) == (403, "identity_pool_refused") and "NotAuthorizedException" in body["message"]


async def test_not_configured_is_not_found(make_stack, browser):
    stack = await make_stack()
    await browser.sign_in(stack.gateway + "/")
    async with browser.session.get(stack.gateway + "/oauth2/aws-credentials", headers=SAME_ORIGIN, allow_redirects=False) as response:
        assert response.status == 404  # the endpoint prefix is the gateway's: not passed to the app either
