"""Machine clients end to end: the local Cognito's client_credentials tokens, with custom scopes of
its resource servers, on `bearer: true` rules of a real gateway process, proxied and through
forward-auth (/oauth2/auth). The pure decisions are tests/unit/auth/test_machine_clients.py.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import aiohttp
import jwt
import pytest

from tests.fixtures.idp import CALLBACK, PASSWORD, RunningIdp, callback_params
from tests.fixtures.servers import free_port
from tests.fixtures.stack import gateway_clients

MACHINE_SECRET = secrets.token_urlsafe(24)
ASSERTION = "X-Gateway-Assertion"
APP = "/api/echo"  # the demo app answers every path under it with what it received
RULES = [
    {"path": APP + "/orders/**", "unauthenticated": "deny", "bearer": True, "scopes": ["orders/read"]},
    {"path": APP + "/orders-admin/**", "unauthenticated": "deny", "bearer": True, "scopes": ["orders/write"]},
    {"path": APP + "/team/**", "unauthenticated": "deny", "bearer": True, "groups": ["admins"]},
    {"path": APP + "/public/**", "allow": "anyone"},
]
# Headers a client sends to pass for someone else: none may reach the app.
SPOOFED = {"X-Forwarded-Client-Id": "billing-svc", "x_forwarded_client_id": "billing-svc", "X-Forwarded-User": "alice"}
USER_HEADERS = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username")


def idp_config(gateway_url: str) -> dict[str, Any]:
    machine = {"client_secret": MACHINE_SECRET, "flows": ["client_credentials"]}
    return {
        "region": "us-east-1",
        "user_pool_id": "us-east-1_Machines",
        "groups": ["admins"],
        "resource_servers": [
            {"identifier": "orders", "name": "Orders API", "scopes": ["read", {"name": "write", "description": "Change orders"}]},
            {"identifier": "billing", "scopes": ["read"]},
        ],
        "clients": [
            *gateway_clients(gateway_url),
            {"client_id": "orders-reporter", **machine, "scopes": ["orders/read", "orders/write"]},
            {"client_id": "billing-svc", **machine, "scopes": ["billing/read"]},
            {"client_id": "stranger", **machine, "scopes": ["orders/read"]},  # not in bearer_client_ids
            {"client_id": "orders-web", "callback_urls": [CALLBACK], "scopes": ["openid", "orders/read"]},
        ],
        "users": [{"username": "alice", "password": PASSWORD, "email": "alice@example.com", "groups": ["admins"]}],
    }


@pytest.fixture
async def machines(idp_factory, gateway_process, demo_upstream):
    """The local Cognito and a `python -m gateway run` process in front of the demo app (which echoes headers)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(idp_config(url))
    config = {
        "public_url": url,
        "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-public", "bearer_client_ids": ["gw-public", "orders-reporter", "billing-svc", "orders-web"]},
        "session": {"secrets": [secrets.token_urlsafe(32)]},
        "identity": {"alb_compatible": True, "assertion_header": ASSERTION},
        "trusted_proxies": ["127.0.0.1/32"],
        "rules": RULES,
    }  # fmt: skip
    gateway = await asyncio.to_thread(gateway_process, config, 1, port)
    return idp, gateway.url


async def client_token(idp: RunningIdp, client_id: str, scope: str | None = None) -> str:
    """POST /oauth2/token grant_type=client_credentials with HTTP Basic client authentication."""
    basic = base64.b64encode(f"{client_id}:{MACHINE_SECRET}".encode()).decode()
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    async with aiohttp.ClientSession() as http:
        async with http.post(idp.token_url, data=form, headers={"Authorization": f"Basic {basic}"}) as response:
            body = await response.json()
            assert response.status == 200, body
    assert set(body) == {"access_token", "expires_in", "token_type"}  # no id token, no refresh token
    return str(body["access_token"])


async def user_token(idp: RunningIdp, hosted_ui) -> str:
    """alice's access token from the Hosted UI (code flow), with the custom scope orders/read."""
    location = await hosted_ui.sign_in(idp.authorize_url("orders-web", scope="openid orders/read"), "alice")
    form = {"grant_type": "authorization_code", "client_id": "orders-web", "code": callback_params(location)["code"], "redirect_uri": CALLBACK}
    async with aiohttp.ClientSession() as http:
        async with http.post(idp.token_url, data=form) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["access_token"])


async def call(gateway: str, path: str, token: str | None, **headers: str) -> tuple[int, dict[str, Any]]:
    sent = {"Accept": "application/json", **SPOOFED, **headers}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway + APP + path, headers=sent, allow_redirects=False) as response:
            return response.status, await response.json()


def received(body: dict[str, Any]) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        got.setdefault(name.lower().replace("_", "-"), []).append(value)
    return got


async def test_the_local_cognitos_machine_token_has_cognitos_claims(machines) -> None:
    idp, _ = machines
    claims = jwt.decode(await client_token(idp, "orders-reporter", "orders/read"), options={"verify_signature": False})
    assert set(claims) == {"sub", "token_use", "scope", "auth_time", "iss", "exp", "iat", "version", "jti", "client_id"}
    assert claims["sub"] == claims["client_id"] == "orders-reporter" and claims["token_use"] == "access"
    assert claims["scope"] == "orders/read" and claims["iss"] == idp.issuer and claims["version"] == 2
    everything = jwt.decode(await client_token(idp, "orders-reporter"), options={"verify_signature": False})
    assert everything["scope"] == "orders/read orders/write"  # no scope asked: all the client's, as in Cognito
    async with aiohttp.ClientSession() as http:  # a scope of another resource server, or a standard one: refused
        basic = base64.b64encode(f"orders-reporter:{MACHINE_SECRET}".encode()).decode()
        for scope in ("billing/read", "openid", "orders/delete"):
            form = {"grant_type": "client_credentials", "scope": scope}
            async with http.post(idp.token_url, data=form, headers={"Authorization": f"Basic {basic}"}) as response:
                assert (response.status, (await response.json())["error"]) == (400, "invalid_scope"), scope


async def test_a_machine_reaches_a_scoped_bearer_rule_as_its_client_and_no_user(machines) -> None:
    idp, gateway = machines
    token = await client_token(idp, "orders-reporter", "orders/read")
    status, body = await call(gateway, "/orders/42", token)
    assert status == 200, body
    got = received(body)
    assert got["x-forwarded-client-id"] == ["orders-reporter"]  # the spoofed billing-svc never arrives
    assert not [name for name in USER_HEADERS if name in got], got
    assert got["authorization"] == [f"Bearer {token}"] and got["x-amzn-oidc-accesstoken"] == [token]
    assert "x-amzn-oidc-data" not in got and "x-amzn-oidc-identity" not in got  # an ALB describes users only
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway}/.well-known/jwks.json") as response:
            jwks = jwt.PyJWKSet.from_dict(await response.json())
    assertion = got[ASSERTION.lower()][0]
    asserted = jwt.decode(assertion, jwks[jwt.get_unverified_header(assertion)["kid"]].key, algorithms=["ES256"], audience=gateway)
    assert asserted["client_id"] == "orders-reporter" and asserted["scope"] == "orders/read" and "sub" not in asserted


async def test_what_a_machine_is_refused(machines) -> None:
    idp, gateway = machines
    read_only = await client_token(idp, "orders-reporter", "orders/read")
    forbidden = (403, {"error": "forbidden", "message": "You are signed in but not allowed here."})
    assert await call(gateway, "/orders-admin/x", read_only) == forbidden  # the rule wants orders/write
    assert (await call(gateway, "/orders-admin/x", await client_token(idp, "orders-reporter", "orders/write")))[0] == 200
    assert await call(gateway, "/orders/x", await client_token(idp, "billing-svc", "billing/read")) == forbidden  # another resource server's scope
    assert await call(gateway, "/team/x", read_only) == forbidden  # groups: only users have them
    status, body = await call(gateway, "/orders/x", await client_token(idp, "stranger", "orders/read"))
    assert (status, body["error"]) == (401, "invalid_token")  # not in provider.bearer_client_ids
    status, body = await call(gateway, "/orders/x", None)
    assert (status, body["error"]) == (401, "missing_token")
    status, body = await call(gateway, "/private", read_only)  # not a bearer rule: the token is not even looked at
    assert (status, body["error"]) == (401, "unauthenticated")
    status, body = await call(gateway, "/public/x", read_only)  # anyone: passes, as nobody, spoofing stripped
    got = received(body)
    assert status == 200 and "x-forwarded-client-id" not in got and "x-forwarded-user" not in got


async def test_a_users_access_token_with_the_scope_still_works(machines, hosted_ui) -> None:
    idp, gateway = machines
    token = await user_token(idp, hosted_ui)
    for path in ("/orders/1", "/team/1"):  # the scope; the user's group
        status, body = await call(gateway, path, token)
        assert status == 200, (path, body)
        got = received(body)
        assert got["x-forwarded-user"] == ["alice"] and got["x-forwarded-client-id"] == ["orders-web"]
        assert got["x-amzn-oidc-identity"] and "x-amzn-oidc-data" in got
    assert (await call(gateway, "/orders-admin/1", token))[0] == 403


async def ask(gateway: str, uri: str, token: str | None) -> aiohttp.ClientResponse:
    """/oauth2/auth as nginx asks it, with the client's headers passed along."""
    headers = {"X-Original-URI": APP + uri, "Accept": "application/json", **SPOOFED}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway + "/oauth2/auth", headers=headers, allow_redirects=False) as response:
            await response.read()
            return response


async def test_forward_auth_answers_a_machine_like_the_proxy(machines) -> None:
    idp, gateway = machines
    token = await client_token(idp, "orders-reporter", "orders/read")
    allowed = await ask(gateway, "/orders/42", token)
    assert allowed.status == 202
    assert allowed.headers.getall("X-Forwarded-Client-Id") == ["orders-reporter"]  # only the gateway's, for the proxy to copy
    assert "X-Forwarded-User" not in allowed.headers and "x-amzn-oidc-data" not in allowed.headers
    assert (await ask(gateway, "/orders-admin/1", token)).status == 403
    assert (await ask(gateway, "/orders/1", await client_token(idp, "billing-svc"))).status == 403
    assert (await ask(gateway, "/orders/1", await client_token(idp, "stranger"))).status == 401
    assert (await ask(gateway, "/orders/1", None)).status == 401
    public = await ask(gateway, "/public/1", token)
    assert public.status == 202 and "X-Forwarded-Client-Id" not in public.headers


async def test_concurrent_machines_are_each_told_their_own_client(machines) -> None:
    idp, gateway = machines
    reporter, billing = await client_token(idp, "orders-reporter", "orders/read"), await client_token(idp, "billing-svc")
    results = await asyncio.gather(*[call(gateway, "/orders/x", reporter) for _ in range(20)],
                                   *[call(gateway, "/orders/x", billing) for _ in range(20)])  # fmt: skip
    assert [status for status, _ in results] == [200] * 20 + [403] * 20
    assert all(received(body)["x-forwarded-client-id"] == ["orders-reporter"] for _, body in results[:20])
