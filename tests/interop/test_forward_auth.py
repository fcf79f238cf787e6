"""Forward-auth (/oauth2/auth) behind a real nginx (auth_request), Caddy (forward_auth) and Traefik (ForwardAuth).

The browser only ever talks to the proxy: the gateway's public_url is the proxy's URL, the local
Cognito's callback and sign-out URLs point at the proxy, and the proxy routes /oauth2/ to the gateway.
The configurations are the ones in docs/deployment.md (tests/fixtures/proxies.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl

from gateway.auth.foreign_headers import FOREIGN_NAMES, FOREIGN_PREFIXES, METHOD_OVERRIDE_NAMES
from gateway.auth.identity import ACCESS_TOKEN_HEADER, CLIENT_ID_HEADER, DEFAULT_HEADERS
from gateway.demo.upstream import create_demo_app, echo
from tests.fixtures.idp import RunningIdp, default_idp_config
from tests.fixtures.proxies import CADDY_SITE, NGINX_SITE, TRAEFIK_DYNAMIC, TRAEFIK_STATIC, RunningProxy
from tests.fixtures.servers import ROOT, free_port, start_runner
from tests.fixtures.stack import SESSION_SECRET, gateway_clients, session_in

RULES = [
    {"path": "/public/**", "allow": "anyone"},
    {"path": "/admin/**", "groups": ["admins"]},
    {"path": "/partner/**", "host": "partner.example", "allow": "anyone"},
]
JSON = {"Accept": "application/json"}
IDENTITY = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username")


@dataclass
class ProxiedStack:
    proxy: RunningProxy
    url: str  # the proxy: the only address the browser uses
    idp: RunningIdp
    gateway: str
    app: str


@pytest.fixture
async def app_upstream() -> AsyncIterator[str]:
    """The demo app, plus an echo of what arrived on any other path (/public/…, /admin/…)."""
    app = create_demo_app()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner, url = await start_runner(app)
    yield url
    await runner.cleanup()


@pytest.fixture
async def proxied(
    idp_factory, make_gateway, app_upstream, nginx_proxy, caddy_proxy, traefik_proxy
) -> Callable[..., Awaitable[ProxiedStack]]:
    async def start(kind: str, idp: dict[str, Any] | None = None, **gateway: Any) -> ProxiedStack:
        port = free_port()  # the proxy's, first: Cognito's callback URL and public_url name it
        url = f"http://127.0.0.1:{port}"
        idp_config = default_idp_config()
        idp_config["clients"] = gateway_clients(url) + idp_config["clients"]
        running = await idp_factory(idp_config, **(idp or {}))
        gateway_port = free_port()
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{gateway_port}",
            "public_url": url,
            "trusted_proxies": ["127.0.0.1/32"],
            "upstreams": [{"path": "/", "url": app_upstream}],
            "provider": {"issuer": running.issuer, "client_id": "gw-public"},
            "session": {"secrets": [SESSION_SECRET]},
            "rules": RULES,
            "default": {"unauthenticated": "authenticate"},
            **gateway,
        }
        gateway_url = await make_gateway(config)
        factory = {"nginx": nginx_proxy, "caddy": caddy_proxy, "traefik": traefik_proxy}[kind]
        proxy = await factory(gateway=gateway_url, app=app_upstream, port=port)
        return ProxiedStack(proxy, url, running, gateway_url, app_upstream)

    return start


def seen_by_app(text: str) -> dict[str, Any]:
    return json.loads(text)


def identity_received(summary: dict[str, Any]) -> dict[str, list[str]]:
    """Every identity header the app received, in any spelling (X_Forwarded_User too), with all values."""
    found: dict[str, list[str]] = {}
    for name, value in summary["headers"]:
        normalized = name.lower().replace("_", "-")
        if normalized in IDENTITY:
            found.setdefault(normalized, []).append(value)
    return found


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _big_session_users() -> list[dict[str, Any]]:
    """Real Cognito sessions are 4-6 KB (two cookie chunks); the local tokens are smaller, so add attributes.

    Random ones: the session is compressed before it is sealed.
    """
    users = default_idp_config()["users"]
    alice = next(u for u in users if u["username"] == "alice")
    alice["attributes"] = {**alice["attributes"], "custom:bio": secrets.token_urlsafe(1200), "custom:notes": secrets.token_urlsafe(900)}
    return users


SHORT_TOKENS_BIG_SESSION = {"token_lifetimes": {"access": 2, "id": 2}, "users": _big_session_users()}
PROXIES = pytest.mark.parametrize("kind", ["nginx", "caddy", "traefik"])
# Traefik's ForwardAuth resolves a relative Location against the auth request's URL: the gateway
# answers forward-auth with an absolute Location on public_url, so the browser is sent to the right host.
@PROXIES
async def test_browser_signs_in_through_the_proxy_and_returns_to_the_original_uri(proxied, browser, kind):
    stack = await proxied(kind)
    page = await browser.open(stack.url + "/api/whoami?x=1&y=2")
    assert page.status == 200 and "password" in page.text, (page.status, page.url, page.text[:300])
    assert urlsplit(page.url).netloc == urlsplit(stack.idp.url).netloc, "ends on the local Cognito's form"
    start = next(u for u in page.history if urlsplit(u).path == "/oauth2/start")
    assert start.startswith(stack.url + "/oauth2/start?"), "sign-in starts on the proxy's host"
    assert query(start)["rd"] == "/api/whoami?x=1&y=2", "the whole original URI, query included"
    assert query(page.history[page.history.index(start) + 1])["redirect_uri"] == stack.url + "/oauth2/callback"

    landed = await browser.submit(page, username="alice", password="Passw0rd!")
    assert landed.status == 200 and landed.url == stack.url + "/api/whoami?x=1&y=2", landed.history
    assert any(u.startswith(stack.url + "/oauth2/callback?") for u in landed.history), "callback through the proxy"
    summary = seen_by_app(landed.text)
    assert summary["raw_path"] == "/api/whoami?x=1&y=2"
    assert identity_received(summary) == {
        "x-forwarded-user": ["alice"],
        "x-forwarded-email": ["alice@example.com"],
        "x-forwarded-groups": ["admins"],
    }, summary["headers"]
    assert summary["host"] == urlsplit(stack.url).netloc

    # Signed in: the next request goes straight through, with no visit to the gateway's endpoints.
    again = await browser.open(stack.url + "/api/whoami")
    assert again.status == 200 and again.history == [stack.url + "/api/whoami"]
    assert identity_received(seen_by_app(again.text))["x-forwarded-user"] == ["alice"]


@PROXIES
async def test_client_identity_headers_never_reach_the_app(proxied, browser, kind):
    stack = await proxied(kind)
    spoofed = {
        "X-Forwarded-User": "mallory",
        "X-Forwarded-Email": "mallory@evil.example",
        "X-Forwarded-Groups": "admins",
        "X-Forwarded-Preferred-Username": "mallory",
        "X_Forwarded_User": "mallory",
        "X-Auth-Set-Cookie-0": "_gw_session_0=planted; Path=/",
        **JSON,
    }
    # Anonymous on a public path: the auth answer carries no identity, and the client's must not pass.
    async with browser.session.get(stack.url + "/public/page", headers=spoofed, allow_redirects=False) as response:
        assert response.status == 200, await response.text()
        summary = seen_by_app(await response.text())
        assert identity_received(summary) == {}
        assert "Set-Cookie" not in response.headers, "a client's X-Auth-Set-Cookie-N must not come back as a cookie"

    await browser.sign_in(stack.url + "/api/whoami", "bob")
    async with browser.session.get(stack.url + "/api/whoami", headers=spoofed, allow_redirects=False) as response:
        assert response.status == 200
        received = identity_received(seen_by_app(await response.text()))
    assert received == {"x-forwarded-user": ["bob"], "x-forwarded-email": ["bob@example.com"]}, received


@PROXIES
async def test_client_cannot_choose_the_uri_the_gateway_judges(proxied, http, kind):
    """X-Original-URI / X-Forwarded-Uri from the client must not make /admin look like /public.

    The proxy overwrites its own header; the client's copy under the other proxy's name is either
    dropped by the config (Caddy: 401, as without it) or refused by the gateway as a contradiction (403).
    """
    stack = await proxied(kind)
    for header in ("X-Original-URI", "X-Forwarded-Uri"):
        headers = {header: "/public/x", "X-Original-Method": "GET", "X-Forwarded-Method": "GET", **JSON}
        async with http.get(stack.url + "/admin/secret", headers=headers, allow_redirects=False) as response:
            body = await response.text()
            assert response.status in (401, 403), (header, response.status, body)
            assert '"raw_path"' not in body, "the app must not be reached"


@PROXIES
async def test_client_cannot_choose_the_host_the_gateway_judges(proxied, http, kind):
    stack = await proxied(kind)
    headers = {"X-Forwarded-Host": "partner.example", **JSON}
    async with http.get(stack.url + "/partner/x", headers=headers, allow_redirects=False) as response:
        assert response.status == 401, (response.status, await response.text())
    if kind == "nginx":  # the rule does work for that host (Caddy serves only the site's own host here)
        async with http.get(stack.url + "/partner/x", headers={"Host": "partner.example", **JSON}) as response:
            assert response.status == 200


@PROXIES
async def test_public_path_needs_no_sign_in(proxied, http, kind):
    stack = await proxied(kind)
    async with http.get(stack.url + "/public/docs/a.html?q=1", allow_redirects=False) as response:
        assert response.status == 200
        summary = seen_by_app(await response.text())
    assert summary["raw_path"] == "/public/docs/a.html?q=1" and identity_received(summary) == {}


@PROXIES
async def test_admin_path_needs_the_group(proxied, browser, kind):
    stack = await proxied(kind)
    await browser.sign_in(stack.url + "/admin/panel", "bob")  # lands on the 403
    async with browser.session.get(stack.url + "/admin/panel", allow_redirects=False) as response:
        assert response.status == 403
        assert "Location" not in response.headers
    browser.session.cookie_jar.clear()
    landed = await browser.sign_in(stack.url + "/admin/panel", "alice")
    assert landed.status == 200 and landed.url == stack.url + "/admin/panel"
    summary = seen_by_app(landed.text)
    assert summary["raw_path"] == "/admin/panel" and identity_received(summary)["x-forwarded-groups"] == ["admins"]


@PROXIES
async def test_api_client_gets_401_not_a_redirect(proxied, http, kind):
    stack = await proxied(kind)
    for method, headers in [("GET", JSON), ("GET", {"X-Requested-With": "XMLHttpRequest"}), ("POST", {"Accept": "text/html"})]:
        async with http.request(method, stack.url + "/api/echo/x", headers=headers, data=b"{}", allow_redirects=False) as response:
            assert response.status == 401, (method, headers, response.status)
            assert "Location" not in response.headers
            body = await response.text()
            assert json.loads(body)["error"] == "unauthenticated", body


@PROXIES
async def test_sign_out_through_the_proxy(proxied, browser, kind):
    stack = await proxied(kind)
    await browser.sign_in(stack.url + "/api/whoami")
    assert any(name.startswith("_gw_session_") for name in browser.cookies())

    page = await browser.open(stack.url + "/oauth2/sign_out")
    assert page.history[0] == stack.url + "/oauth2/sign_out"
    logout = page.history[1]
    assert urlsplit(logout).path == "/logout" and query(logout)["logout_uri"] == stack.url + "/"
    assert stack.url + "/" in page.history[2:], "Cognito sends the browser back to the proxy"
    assert not [name for name in browser.cookies() if re.fullmatch(r"_gw_session_\d", name)], browser.cookies()
    assert page.status == 200 and "password" in page.text, "signed out: / asks for a sign-in again"
    async with browser.session.get(stack.url + "/api/whoami", headers=JSON, allow_redirects=False) as response:
        assert response.status == 401


@PROXIES
async def test_refreshed_session_cookies_reach_the_browser(proxied, browser, kind):
    stack = await proxied(kind, idp=SHORT_TOKENS_BIG_SESSION, refresh={"before_expiry": "0s", "timeout": "2s"})
    landed = await browser.sign_in(stack.url + "/api/whoami")
    assert landed.status == 200, f"sign-in with a two-chunk session failed: {landed.status} {landed.text[:200]}"
    old_cookies = {k: v for k, v in browser.cookies().items() if k.startswith("_gw_session_")}
    old = session_in(old_cookies)
    assert len(old_cookies) >= 2, "a Cognito session is chunked: the test needs more than one Set-Cookie"
    await asyncio.sleep(max(0.0, old["exp"] - time.time()) + 0.2)

    async with browser.session.get(stack.url + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200, "no sign-in page while the refresh token is good"
        summary = seen_by_app(await response.text())
        assert identity_received(summary)["x-forwarded-user"] == ["alice"]
        assert not [h for h, _ in summary["headers"] if h.lower().startswith("x-auth-set-cookie")], "not for the app"
        lines = response.headers.getall("Set-Cookie", [])
        assert not [h for h in response.headers if h.lower().startswith("x-auth-set-cookie")]
    new_chunks = {}
    for line in lines:
        name, _, rest = line.partition("=")
        if re.fullmatch(r"_gw_session_\d", name):
            new_chunks[name] = rest.split(";", 1)[0]
    assert set(old_cookies) <= set(new_chunks), f"every chunk must be rewritten, got {lines}"
    assert all(new_chunks[name] != old_cookies[name] for name in old_cookies)
    new = session_in(browser.cookies())
    assert new["at"] != old["at"] and new["exp"] > time.time() and new["rt"] == old["rt"]

    # The browser now holds the new session: the next request works without another refresh.
    async with browser.session.get(stack.url + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200 and "Set-Cookie" not in response.headers
    stats = await stack.idp.admin("GET", "stats")
    assert stats["token_requests"].get("refresh_token", 0) == 1


def test_docs_show_the_tested_configurations():
    text = (ROOT / "docs" / "deployment.md").read_text()
    assert NGINX_SITE in text, "docs/deployment.md must show tests/fixtures/proxies.py's NGINX_SITE verbatim"
    assert CADDY_SITE in text, "docs/deployment.md must show tests/fixtures/proxies.py's CADDY_SITE verbatim"
    assert TRAEFIK_STATIC in text, "docs/deployment.md must show tests/fixtures/proxies.py's TRAEFIK_STATIC verbatim"
    assert TRAEFIK_DYNAMIC in text, "docs/deployment.md must show tests/fixtures/proxies.py's TRAEFIK_DYNAMIC verbatim"


# --- what the documented configurations must guarantee, like the gateway's proxy mode ------------

SAMPLE_SUFFIX = "sample"


def forbidden_names() -> list[str]:
    """Every header no client may pass to the app (normalized): the gateway's list, one sample name per prefix."""
    names = set(FOREIGN_NAMES) | set(METHOD_OVERRIDE_NAMES) | {n.lower() for n in DEFAULT_HEADERS} | {ACCESS_TOKEN_HEADER.lower(), CLIENT_ID_HEADER.lower()}
    names |= {f"x-auth-set-cookie-{i}" for i in range(4)}  # the gateway's cookie copies, for the proxy only
    for prefix in FOREIGN_PREFIXES:
        names.add(prefix + SAMPLE_SUFFIX if prefix.endswith("-") else prefix + "-" + SAMPLE_SUFFIX)
        if not prefix.endswith("-"):
            names.add(prefix)  # x-ms-client-principal itself
    return sorted(names)


def _separators(name: str, first: str, second: str) -> str:
    parts = name.split("-")
    return parts[0] + "".join((first if i % 2 == 0 else second) + part for i, part in enumerate(parts[1:]))


SPELLINGS: dict[str, Callable[[str], str]] = {
    "Title-Case": lambda n: "-".join(p.capitalize() for p in n.split("-")),
    "lower-case": lambda n: n,
    "UPPER-CASE": str.upper,
    "Title_Underscore": lambda n: "_".join(p.capitalize() for p in n.split("-")),
    "lower_underscore": lambda n: n.replace("-", "_"),
    "mIxEd_sep-case": lambda n: _separators(n, "_", "-").swapcase(),
    "mixed-sep_case": lambda n: _separators(n, "-", "_").upper(),
}


def forbidden_received(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Headers the app received that a client forged (the tests' values all start with `forged`)."""
    return [(name, value) for name, value in summary["headers"] if "forged" in value]


@PROXIES
async def test_no_identity_header_of_any_system_reaches_the_app_in_any_spelling(proxied, browser, kind):
    """gateway/auth/foreign_headers.py's names and prefixes, the gateway's own and method overrides, ×7 spellings."""
    stack = await proxied(kind)
    names = forbidden_names()
    await browser.sign_in(stack.url + "/api/whoami", "alice")
    for spelling, spell in SPELLINGS.items():
        forged = {spell(name): f"forged-{index}" for index, name in enumerate(names)}
        assert len(forged) == len(names)
        headers = {**forged, "X-Custom": "kept", "X_Custom_Underscore": "any", **JSON}
        for path, signed_in in (("/api/whoami", True), ("/public/page", False)):
            async with aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar if signed_in else aiohttp.DummyCookieJar()) as client:
                async with client.get(stack.url + path, headers=headers, allow_redirects=False) as response:
                    status, text, set_cookie = response.status, await response.text(), response.headers.getall("Set-Cookie", [])
            assert status == 200, (kind, spelling, path, status, text[:300])
            summary = seen_by_app(text)
            assert forbidden_received(summary) == [], (kind, spelling, path)
            assert [v for n, v in summary["headers"] if n.lower() == "x-custom"] == ["kept"], "an ordinary header passes"
            assert not any("forged" in line for line in set_cookie), "no cookie from a client's X-Auth-Set-Cookie-N"
            if signed_in:
                assert identity_received(summary) == {
                    "x-forwarded-user": ["alice"],
                    "x-forwarded-email": ["alice@example.com"],
                    "x-forwarded-groups": ["admins"],
                }, (kind, spelling)
            else:
                assert identity_received(summary) == {}, (kind, spelling)
    print(f"{kind}: {len(names)} names x {len(SPELLINGS)} spellings x 2 paths refused")


# Paths a client may try to reach the forward-auth endpoint by; the proxies decode, clean and
# case-fold paths differently, and so does the gateway behind them.
AUTH_PATHS = [
    "/oauth2/auth",
    "/oauth2/auth/",
    "/oauth2/auth?x=1",
    "//oauth2/auth",
    "/oauth2//auth",
    "/oauth2/./auth",
    "/oauth2/x/../auth",
    "/oauth2/%61uth",
    "/oauth2/auth%2f",
    "/oauth2/auth;x",
    "/OAUTH2/AUTH",
    "/oauth2/Auth",
]
TOKEN_HEADERS = ("x-forwarded-", "x-amzn-oidc-", "x-auth-set-cookie-", "authorization", "x-auth-request-")


@PROXIES
async def test_client_cannot_call_the_forward_auth_endpoint(proxied, browser, kind):
    """A same-origin script must not read /oauth2/auth's answer: it would hand it the access token."""
    stack = await proxied(kind, identity={"pass_access_token": True, "pass_authorization": True, "alb_compatible": True})
    await browser.sign_in(stack.url + "/api/whoami", "alice")
    async with browser.session.get(stack.url + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200  # the proxy's own subrequest works
        assert identity_received(seen_by_app(await response.text()))["x-forwarded-user"] == ["alice"]
    # What a client would read if it reached the endpoint: the gateway, asked directly from a trusted
    # address with the browser's cookies, answers with the tokens.
    async with browser.session.get(stack.gateway + "/oauth2/auth", headers={"X-Forwarded-Uri": "/api/whoami"}) as response:
        assert response.status == 202 and "X-Forwarded-Access-Token" in response.headers and "x-amzn-oidc-accesstoken" in response.headers
    for path in AUTH_PATHS:
        async with browser.session.get(yarl.URL(stack.url + path, encoded=True), headers=JSON, allow_redirects=False) as response:
            body = await response.text()
            leaked = [h for h in response.headers if h.lower().startswith(TOKEN_HEADERS)]
            assert leaked == [], (kind, path, response.status, leaked)
            app_answered = response.status == 200 and '"raw_path"' in body
            assert app_answered or not 200 <= response.status < 300, (kind, path, response.status, body[:200])
            if path == "/oauth2/auth" or path == "/oauth2/auth?x=1":
                assert response.status in (403, 404, 418), (kind, path, response.status)
