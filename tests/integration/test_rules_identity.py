"""Per-path rules, what the upstream receives, Bearer access and signed identity headers."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from tests.fixtures.browser import Browser
from tests.fixtures.idp import M2M_SECRET
from tests.fixtures.servers import start_runner
from tests.fixtures.stack import cookie_header

RULES = [
    {"path": "/public/**", "allow": "anyone"},
    {"path": "/api/**", "unauthenticated": "deny", "bearer": True},
    {"path": "/scoped/**", "unauthenticated": "deny", "bearer": True, "scopes": ["api/write"]},
    {"path": "/admin/**", "groups": ["admins"]},
    {"path": "/eng/*", "claims": {"custom:department": ["engineering", "finance"]}},
    {"path": "/corp/**", "email_domains": ["example.com"]},
    {"path": "regex:^/v[0-9]+/", "methods": ["GET"], "unauthenticated": "deny"},
]
SPOOFED = {
    "X-Forwarded-User": "mallory",
    "X_Forwarded_User": "mallory",
    "x-forwarded-email": "mallory@evil.example",
    "X-Forwarded-Groups": "admins",
    "X-Forwarded-Preferred-Username": "mallory",
    "X-Forwarded-Access-Token": "forged",
    "x-amzn-oidc-data": "forged",
    "X-Amzn-Oidc-Identity": "forged",
    "x_amzn_oidc_accesstoken": "forged",
}
IDENTITY_NAMES = {n.lower().replace("_", "-") for n in SPOOFED}


@pytest.fixture
async def recorder():
    """An upstream that answers every path with what it received."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"raw_path": request.raw_path, "headers": [[k, v] for k, v in request.headers.items()]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner, url = await start_runner(app)
    yield url
    await runner.cleanup()


async def raw_get(base: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | str]:
    """A request with the target sent byte for byte (no client-side normalization)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def received(body: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


@pytest.fixture
async def stack_with_users(make_stack, recorder):
    stack = await make_stack(rules=RULES, default={"unauthenticated": "authenticate"}, upstreams=[{"path": "/", "url": recorder}])
    cookies = {}
    for user in ("alice", "bob"):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept": "text/html"}) as http:
            browser = Browser(http)
            page = await browser.sign_in(stack.gateway + "/private", user)
            assert page.status == 200
            cookies[user] = cookie_header({k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")})
    return stack, cookies


# (who, method, path, expected status: 200 = reached the upstream)
TABLE = [
    (None, "GET", "/public/page", 200),
    (None, "GET", "/public", 200),
    (None, "GET", "/private", 401),
    (None, "GET", "/api/items", 401),
    (None, "GET", "/v1/items", 401),
    ("alice", "GET", "/private", 200),
    ("bob", "GET", "/private", 200),
    ("alice", "GET", "/admin/users", 200),
    ("bob", "GET", "/admin/users", 403),
    ("bob", "GET", "/admin", 403),
    ("alice", "GET", "/eng/doc", 200),
    ("bob", "GET", "/eng/doc", 403),
    ("alice", "GET", "/corp/x", 200),
    ("bob", "GET", "/corp/x", 200),
    ("alice", "GET", "/api/items", 200),
    ("alice", "GET", "/v2/items", 200),
    ("alice", "POST", "/v2/items", 200),  # methods: [GET] -> the rule does not apply, default does
    (None, "POST", "/v2/items", 401),
    ("alice", "GET", "/scoped/x", 403),  # a session's access token has no api/write scope
]


async def test_rules_table(stack_with_users):
    stack, cookies = stack_with_users
    async with aiohttp.ClientSession() as http:
        for who, method, path, expected in TABLE:
            headers = {"Accept": "application/json"}
            if who:
                headers["Cookie"] = cookies[who]
            async with http.request(method, stack.gateway + path, headers=headers, allow_redirects=False) as response:
                body = await response.json()
                assert response.status == expected, (who, method, path, response.status, body)
                if expected == 200:
                    assert body["raw_path"] == path
                else:
                    assert body["error"] in ("unauthenticated", "missing_token", "forbidden")


@pytest.mark.parametrize(
    "target",
    ["/public/../admin/users", "/public/%2e%2e/admin/users", "/%61dmin/users", "//admin/users", "/admin;x", "/public%2F..%2Fadmin", "/public/..%2Fadmin", "/public/%252e%252e/admin"],
)
async def test_bypass_attempts_are_refused(stack_with_users, target):
    stack, cookies = stack_with_users
    for who in (None, "bob"):
        status, body = await raw_get(stack.gateway, target, {"Cookie": cookies["bob"]} if who else None)
        assert status == 400, (who, target, status, body)
        assert isinstance(body, dict) and body["error"] == "ambiguous_path"


async def test_upstream_receives_exactly_the_verified_identity(stack_with_users):
    stack, cookies = stack_with_users
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.gateway + "/admin/x", headers={**SPOOFED, "Cookie": cookies["alice"]}) as response:
            got = received(await response.json())
    identity = {k: v for k, v in got.items() if k.replace("_", "-") in IDENTITY_NAMES}
    assert identity == {"x-forwarded-user": "alice", "x-forwarded-email": "alice@example.com", "x-forwarded-groups": "admins"}
    assert "cookie" not in got or "_gw_session" not in got["cookie"]


async def test_spoofed_identity_never_arrives_on_public_paths(stack_with_users):
    stack, _ = stack_with_users
    status, body = await raw_get(stack.gateway, "/public/x", SPOOFED)
    assert status == 200
    assert not [k for k in received(body) if k.replace("_", "-") in IDENTITY_NAMES]


async def m2m_token(idp, scope: str) -> str:
    async with aiohttp.ClientSession() as http:
        form = {"grant_type": "client_credentials", "scope": scope}
        basic = "Basic " + base64.b64encode(f"test-m2m:{M2M_SECRET}".encode()).decode()
        async with http.post(idp.token_url, data=form, headers={"Authorization": basic}) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["access_token"]


async def test_bearer_tokens(make_stack, recorder, idp_factory):
    stack = await make_stack(
        rules=RULES, upstreams=[{"path": "/", "url": recorder}], provider={"bearer_client_ids": ["gw-public", "test-m2m"]}
    )
    read_token, write_token = await m2m_token(stack.idp, "api/read"), await m2m_token(stack.idp, "api/write")
    other_pool = await idp_factory(user_pool_id="us-east-1_OtherPool")
    foreign = await m2m_token(other_pool, "api/read")
    async with aiohttp.ClientSession() as http:

        async def call(path: str, token: str | None) -> tuple[int, dict]:
            headers = {"Accept": "application/json", **SPOOFED}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            async with http.get(stack.gateway + path, headers=headers, allow_redirects=False) as response:
                return response.status, await response.json()

        status, body = await call("/api/items", read_token)
        assert status == 200 and received(body)["authorization"] == f"Bearer {read_token}"
        assert "x-forwarded-user" not in received(body) and "x-amzn-oidc-data" not in received(body)
        assert (await call("/scoped/x", write_token))[0] == 200
        assert (await call("/scoped/x", read_token)) == (403, {"error": "forbidden", "message": "You are signed in but not allowed here."})
        assert (await call("/api/items", None))[1]["error"] == "missing_token"
        for bad in (foreign, read_token[:-4] + "AAAA", "not-a-jwt"):
            status, body = await call("/api/items", bad)
            assert (status, body["error"]) == (401, "invalid_token")


async def test_bearer_from_an_unlisted_client_is_refused(make_stack, recorder):
    stack = await make_stack(rules=RULES, upstreams=[{"path": "/", "url": recorder}])  # accepts gw-public only
    token = await m2m_token(stack.idp, "api/read")
    async with aiohttp.ClientSession() as http:
        async with http.get(stack.gateway + "/api/x", headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 401 and (await response.json())["error"] == "invalid_token"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_alb_compatible_headers_verify_like_an_alb(make_stack, recorder, browser):
    stack = await make_stack(
        upstreams=[{"path": "/", "url": recorder}],
        identity={"alb_compatible": True, "assertion_header": "X-Gateway-Assertion", "assertion_audience": "legacy-app"},
    )
    page = await browser.sign_in(stack.gateway + "/x")
    got = received(json.loads(page.text))
    data = got["x-amzn-oidc-data"]
    header = jwt.get_unverified_header(data)
    assert header["alg"] == "ES256" and header["client"] == stack.client_id and header["iss"] == stack.idp.issuer
    assert header["signer"].startswith("arn:aws:elasticloadbalancing:us-east-1:")
    async with aiohttp.ClientSession() as http:  # what ALB verification code does, with one base URL changed
        async with http.get(f"{stack.gateway}/oauth2/keys/{header['kid']}") as response:
            pem = await response.text()
        async with http.get(f"{stack.gateway}/.well-known/jwks.json") as response:
            jwks = await response.json()
    claims = jwt.decode(data, pem, algorithms=["ES256"])
    assert claims["username"] == "alice" and claims["sub"] == got["x-amzn-oidc-identity"]
    assert got["x-amzn-oidc-accesstoken"].count(".") == 2
    assertion = got["x-gateway-assertion"]
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(assertion)["kid"]]
    asserted = jwt.decode(assertion, key.key, algorithms=["ES256"], audience="legacy-app", issuer=stack.gateway)
    assert asserted["sub"] == claims["sub"] and asserted["groups"] == ["admins"]


async def test_userinfo_enrichment_once_per_token(make_stack, recorder, browser):
    mapping = {"X-Forwarded-User": "cognito:username", "X-User-Name": "username", "X-Department": "custom:department"}
    plain = await make_stack(upstreams=[{"path": "/", "url": recorder}], identity={"headers": mapping})
    page = await browser.sign_in(plain.gateway + "/x")
    assert "x-user-name" not in received(json.loads(page.text)), "username is a userInfo attribute, not an id token claim"

    enriched = await make_stack(upstreams=[{"path": "/", "url": recorder}], identity={"headers": mapping, "userinfo": True})
    browser.session.cookie_jar.clear()
    page = await browser.sign_in(enriched.gateway + "/x")
    for _ in range(4):
        page = await browser.open(enriched.gateway + "/x")
    got = received(json.loads(page.text))
    assert got["x-user-name"] == "alice" and got["x-forwarded-user"] == "alice" and got["x-department"] == "engineering"
    # Once at sign-in (its sub must be the token's), then once for this access token: not per request.
    assert (await enriched.idp.admin("GET", "stats"))["userinfo_requests"] == 2


async def test_host_rules_see_through_a_trailing_dot(make_stack, recorder):
    rules = [{"path": "/**", "host": "admin.localhost", "groups": ["admins"]}, {"path": "/**", "allow": "anyone"}]
    stack = await make_stack(rules=rules, upstreams=[{"path": "/", "url": recorder}])
    port = stack.gateway.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        for host in (f"admin.localhost:{port}", f"admin.localhost.:{port}", f"ADMIN.localhost.:{port}"):
            async with http.get(stack.gateway + "/x", headers={"Host": host, "Accept": "application/json"}) as response:
                assert response.status == 401, host
        async with http.get(stack.gateway + "/x", headers={"Host": f"www.localhost:{port}"}) as response:
            assert response.status == 200
