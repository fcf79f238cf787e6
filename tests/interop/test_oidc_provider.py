"""Interop: the gateway signs in against a certified third-party OpenID Provider (npm oidc-provider), via discovery."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from tests.fixtures.servers import free_port
from tests.fixtures.stack import SESSION_SECRET, session_in

SECRET = "interop-client-secret-0123456789"


def client_metadata(gateway: str, confidential: bool) -> dict:
    metadata = {
        "client_id": "gateway-confidential" if confidential else "gateway-public",
        "redirect_uris": [f"{gateway}/oauth2/callback"],
        "post_logout_redirect_uris": [f"{gateway}/"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    if confidential:
        metadata.update(client_secret=SECRET, token_endpoint_auth_method="client_secret_basic")
    else:
        metadata.update(token_endpoint_auth_method="none")
    return metadata


async def start(oidc_provider_factory, make_gateway, demo_upstream, confidential: bool, access_ttl: int = 3600, **extra):
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    metadata = client_metadata(gateway, confidential)
    op = oidc_provider_factory([metadata], access_ttl=access_ttl)
    # No `kind`: a non-Cognito issuer is detected as a generic OpenID provider.
    provider = {"issuer": op.issuer, "client_id": metadata["client_id"], **extra.pop("provider", {})}
    if confidential:
        provider["client_secret"] = SECRET
    config = {
        "listen": f"127.0.0.1:{port}",
        "public_url": gateway,
        "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": provider,
        "session": {"secrets": [SESSION_SECRET]},
        **extra,
    }
    await make_gateway(config)
    return op, gateway


async def sign_in_with_oidc_provider(browser, url: str, login: str = "alice"):
    page = await browser.open(url)
    assert page.status == 200 and 'name="login"' in page.text, page.text[:300]
    page = await browser.submit(page, login=login, password="anything")
    if 'name="prompt" value="consent"' in page.text:
        page = await browser.submit(page)
    return page


@pytest.mark.parametrize("confidential", [False, True], ids=["public", "confidential"])
async def test_sign_in_via_discovery(oidc_provider_factory, make_gateway, demo_upstream, browser, confidential):
    op, gateway = await start(oidc_provider_factory, make_gateway, demo_upstream, confidential)
    landed = await sign_in_with_oidc_provider(browser, gateway + "/api/whoami?from=interop")
    assert landed.status == 200 and landed.url == gateway + "/api/whoami?from=interop"
    seen = json.loads(landed.text)
    assert seen["raw_path"] == "/api/whoami?from=interop"
    assert seen["identity"]["X-Forwarded-User"] == "alice"  # preferred_username: a generic id token has no cognito:username
    assert op.grants("authorization_code") == 1
    async with browser.session.get(gateway + "/oauth2/userinfo") as response:
        info = await response.json()
    assert info["sub"] == "alice" and info["email"] == "alice@example.com"


async def test_sign_out_uses_the_end_session_endpoint(oidc_provider_factory, make_gateway, demo_upstream, browser):
    op, gateway = await start(oidc_provider_factory, make_gateway, demo_upstream, confidential=False)
    await sign_in_with_oidc_provider(browser, gateway + "/")
    async with browser.session.get(gateway + "/oauth2/sign_out", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False) as response:
        location = response.headers["Location"]
    assert location.startswith(op.issuer) and "id_token_hint=" in location and "post_logout_redirect_uri=" in location
    assert urlsplit(location).path == urlsplit(op.issuer + "/session/end").path


async def test_transparent_refresh(oidc_provider_factory, make_gateway, demo_upstream, browser):
    import asyncio

    op, gateway = await start(
        oidc_provider_factory, make_gateway, demo_upstream, confidential=True, access_ttl=2, refresh={"before_expiry": "0s"}
    )
    await sign_in_with_oidc_provider(browser, gateway + "/")
    before = session_in(browser.cookies())
    await asyncio.sleep(max(0.0, before["exp"] - time.time()) + 0.3)
    async with browser.session.get(gateway + "/api/whoami", allow_redirects=False) as response:
        assert response.status == 200
    after = session_in(browser.cookies())
    assert after["at"] != before["at"] and after["exp"] > time.time()
    assert op.grants("refresh_token") == 1


async def test_without_profile_scope_the_user_is_named_by_sub(oidc_provider_factory, make_gateway, demo_upstream, browser):
    _, gateway = await start(oidc_provider_factory, make_gateway, demo_upstream, False, provider={"scopes": ["openid", "email"]})
    landed = await sign_in_with_oidc_provider(browser, gateway + "/api/whoami", login="bob")
    identity = json.loads(landed.text)["identity"]
    assert identity["X-Forwarded-User"] == "bob" and "X-Forwarded-Preferred-Username" not in identity
