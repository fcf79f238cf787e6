"""The local Cognito's OAuth2 endpoints against an independent client (Authlib) and PyJWT."""

from __future__ import annotations

import asyncio
import base64
import warnings
from typing import Any

import aiohttp
import jwt
import pytest
from authlib.common.security import generate_token

from tests.fixtures.idp import (
    CALLBACK,
    CONFIDENTIAL_SECRET,
    M2M_SECRET,
    HostedUIBrowser,
    RunningIdp,
    callback_params,
    pkce_pair,
)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _headers(auth: str | None) -> dict[str, str]:
    return {"Authorization": auth} if auth else {}


async def fetch_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def verify(idp: RunningIdp, token: str, **kwargs: Any) -> dict[str, Any]:
    """Verify with PyJWT from the published JWKS, the way a relying party would."""
    discovery = await fetch_json(f"{idp.issuer}/.well-known/openid-configuration")
    jwks = jwt.PyJWKSet.from_dict(await fetch_json(discovery["jwks_uri"]))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], issuer=idp.issuer, **kwargs)


async def post_token(data: dict[str, str], idp: RunningIdp, auth: str | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(idp.token_url, data=data, headers=_headers(auth)) as response:
            assert response.headers["Cache-Control"] == "no-store"
            return response.status, await response.json()


async def sign_in_code(idp: RunningIdp, browser: HostedUIBrowser, user: str = "alice", **params: str) -> str:
    location = await browser.sign_in(idp.authorize_url(**params), user)
    return callback_params(location)["code"]


async def code_tokens(idp: RunningIdp, browser: HostedUIBrowser, user: str = "alice") -> dict[str, Any]:
    code = await sign_in_code(idp, browser, user)
    status, body = await post_token(
        {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}, idp
    )
    assert status == 200, body
    return body


async def test_discovery_and_jwks_match_cognito_layout(idp: RunningIdp) -> None:
    doc = await fetch_json(f"{idp.url}/{idp.pool_id}/.well-known/openid-configuration")
    assert doc["issuer"] == idp.issuer == f"{idp.url}/{idp.pool_id}"
    assert doc["authorization_endpoint"] == f"{idp.url}/oauth2/authorize"
    assert doc["token_endpoint"] == f"{idp.url}/oauth2/token"
    assert doc["userinfo_endpoint"] == f"{idp.url}/oauth2/userInfo"
    assert doc["revocation_endpoint"] == f"{idp.url}/oauth2/revoke"
    assert doc["end_session_endpoint"] == f"{idp.url}/logout"
    keys = (await fetch_json(doc["jwks_uri"]))["keys"]
    assert [set(k) for k in keys] == [{"alg", "e", "kid", "kty", "n", "use"}]
    assert keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig"


async def test_authlib_completes_code_pkce_and_refresh(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    with warnings.catch_warnings():  # Authlib flags its httpx integration as deprecated
        import authlib.deprecate  # noqa: F401 - it installs an "always" filter on import; ignore must come after

        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    async with AsyncOAuth2Client(
        client_id="test-public", redirect_uri=CALLBACK, scope="openid email profile",
        code_challenge_method="S256", token_endpoint_auth_method="none",
    ) as client:  # fmt: skip
        verifier = generate_token(48)  # Authlib derives the S256 challenge itself
        url, state = client.create_authorization_url(f"{idp.url}/oauth2/authorize", code_verifier=verifier, nonce="n-1")
        location = await hosted_ui.sign_in(url, "alice")
        assert callback_params(location)["state"] == state
        token = await client.fetch_token(idp.token_url, authorization_response=location, code_verifier=verifier)
        assert {"id_token", "access_token", "refresh_token", "expires_in", "token_type"} <= set(token)
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        refreshed = await client.refresh_token(idp.token_url, refresh_token=token["refresh_token"])
        info = (await client.get(f"{idp.url}/oauth2/userInfo")).json()
    assert refreshed["access_token"] != token["access_token"]
    assert "id_token" in refreshed
    assert info["username"] == "alice" and info["email"] == "alice@example.com"
    id_claims = await verify(idp, token["id_token"], audience="test-public")
    assert id_claims["nonce"] == "n-1"


async def test_id_and_access_token_claims_are_cognitos(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui)
    id_claims = await verify(idp, tokens["id_token"], audience="test-public")
    access = await verify(idp, tokens["access_token"], options={"verify_aud": False})
    assert id_claims["token_use"] == "id" and id_claims["cognito:username"] == "alice"
    assert id_claims["cognito:groups"] == ["admins"] and id_claims["email_verified"] is True
    assert id_claims["custom:department"] == "engineering" and id_claims["email"] == "alice@example.com"
    assert {"sub", "aud", "iss", "auth_time", "exp", "iat", "jti", "origin_jti", "at_hash"} <= set(id_claims)
    assert access["token_use"] == "access" and access["client_id"] == "test-public"
    assert access["username"] == "alice" and access["version"] == 2 and "aud" not in access
    assert access["scope"] == "openid email profile" and access["cognito:groups"] == ["admins"]
    assert access["origin_jti"] == id_claims["origin_jti"] and access["sub"] == id_claims["sub"]
    assert access["exp"] - access["iat"] == 3600
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header == {"alg": "RS256", "kid": header["kid"]}  # no typ, as Cognito's


async def test_user_without_groups_has_no_groups_claim(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui, user="bob")
    assert "cognito:groups" not in jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert "cognito:groups" not in jwt.decode(tokens["access_token"], options={"verify_signature": False})


async def test_refresh_token_looks_cognito_sized_and_opaque(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    refresh = (await code_tokens(idp, hosted_ui))["refresh_token"]
    assert refresh.count(".") == 4 and 1500 < len(refresh) < 2200
    with pytest.raises(jwt.DecodeError):
        jwt.decode(refresh, options={"verify_signature": False})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "x" * 50}, "invalid_grant"),
        ({"code_verifier": None}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:8080/other"}, "invalid_grant"),
        ({"code": "00000000-0000-0000-0000-000000000000"}, "invalid_grant"),
        ({"client_id": "test-unknown"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
    ],
)
async def test_code_exchange_errors(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, change: dict[str, str | None], error: str
) -> None:
    verifier, challenge = pkce_pair()
    code = await sign_in_code(idp, hosted_ui, code_challenge=challenge, code_challenge_method="S256")
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code,
            "redirect_uri": CALLBACK, "code_verifier": verifier, **change}  # fmt: skip
    status, body = await post_token({k: v for k, v in data.items() if v is not None}, idp)
    assert (status, body["error"]) == (400, error)


async def test_code_is_single_use(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    code = await sign_in_code(idp, hosted_ui)
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}
    assert (await post_token(data, idp))[0] == 200
    assert await post_token(data, idp) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize("style", ["basic", "post"])
async def test_confidential_client_authenticates_by_basic_or_body(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, style: str
) -> None:
    code = await sign_in_code(idp, hosted_ui, client_id="test-confidential")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    if style == "basic":
        status, body = await post_token(data, idp, _basic("test-confidential", CONFIDENTIAL_SECRET))
    else:
        status, body = await post_token({**data, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET}, idp)
    assert status == 200 and "refresh_token" in body


@pytest.mark.parametrize("secret", ["wrong-secret", None])
async def test_confidential_client_with_bad_secret_is_invalid_client(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, secret: str | None
) -> None:
    code = await sign_in_code(idp, hosted_ui, client_id="test-confidential")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": "test-confidential"}
    auth = _basic("test-confidential", secret) if secret else None
    assert await post_token(data, idp, auth) == (400, {"error": "invalid_client"})


async def test_token_endpoint_rejects_json_body(idp: RunningIdp) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(idp.token_url, json={"grant_type": "client_credentials"}) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_request"


async def test_client_credentials_gives_access_token_with_custom_scopes(idp: RunningIdp) -> None:
    auth = _basic("test-m2m", M2M_SECRET)
    status, body = await post_token({"grant_type": "client_credentials", "scope": "api/read"}, idp, auth)
    assert status == 200 and set(body) == {"access_token", "expires_in", "token_type"}
    claims = await verify(idp, body["access_token"], options={"verify_aud": False})
    assert claims["scope"] == "api/read" and claims["sub"] == claims["client_id"] == "test-m2m"
    assert claims["token_use"] == "access" and "username" not in claims
    status, body = await post_token({"grant_type": "client_credentials"}, idp, auth)
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["scope"] == "api/read api/write"


async def test_client_credentials_errors(idp: RunningIdp) -> None:
    auth = _basic("test-m2m", M2M_SECRET)
    assert await post_token({"grant_type": "client_credentials", "scope": "openid"}, idp, auth) == (
        400, {"error": "invalid_scope"})  # fmt: skip
    public = {"grant_type": "client_credentials", "client_id": "test-public"}
    assert await post_token(public, idp) == (400, {"error": "unauthorized_client"})
    code_grant = {"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK}
    assert await post_token(code_grant, idp, auth) == (400, {"error": "unauthorized_client"})


async def test_refresh_without_rotation_returns_no_refresh_token(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui)
    data = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    for _ in range(2):  # without rotation the same refresh token keeps working
        status, body = await post_token(data, idp)
        assert status == 200 and set(body) == {"id_token", "access_token", "expires_in", "token_type"}
    old, new = (jwt.decode(t, options={"verify_signature": False}) for t in (tokens["id_token"], body["id_token"]))
    assert new["origin_jti"] == old["origin_jti"] and new["auth_time"] == old["auth_time"]
    assert new["jti"] != old["jti"]
    wrong_client = {**data, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET}
    assert (await post_token(wrong_client, idp))[1]["error"] == "invalid_grant"


async def test_rotation_old_token_works_only_within_grace(idp_factory: Any, hosted_ui: HostedUIBrowser) -> None:
    idp = await idp_factory(refresh_token_rotation=True, refresh_token_grace_period=1)
    first = (await code_tokens(idp, hosted_ui))["refresh_token"]
    data = {"grant_type": "refresh_token", "client_id": "test-public"}
    status, body = await post_token({**data, "refresh_token": first}, idp)
    second = body["refresh_token"]
    assert status == 200 and second != first
    assert (await post_token({**data, "refresh_token": first}, idp))[0] == 200  # within grace
    await asyncio.sleep(1.2)
    assert (await post_token({**data, "refresh_token": first}, idp))[1]["error"] == "invalid_grant"
    assert (await post_token({**data, "refresh_token": second}, idp))[0] == 200


async def test_rotation_with_zero_grace_is_single_use(idp_factory: Any, hosted_ui: HostedUIBrowser) -> None:
    idp = await idp_factory(refresh_token_rotation=True)
    first = (await code_tokens(idp, hosted_ui))["refresh_token"]
    data = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": first}
    assert (await post_token(data, idp))[0] == 200
    await asyncio.sleep(0.01)
    assert await post_token(data, idp) == (400, {"error": "invalid_grant", "error_description": "Invalid Refresh Token"})


async def revoke(idp: RunningIdp, data: dict[str, str], auth: str | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{idp.url}/oauth2/revoke", data=data, headers=_headers(auth)) as response:
            return response.status, await response.text()


async def test_revoked_refresh_token_fails_refresh_and_userinfo(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui)
    assert await revoke(idp, {"token": tokens["refresh_token"], "client_id": "test-public"}) == (200, "")
    data = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    assert (await post_token(data, idp))[1]["error"] == "invalid_grant"
    status, body, _ = await user_info(idp, tokens["access_token"])
    assert (status, body["error"]) == (401, "invalid_token")


async def test_revoke_errors(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui)
    assert await revoke(idp, {"token": "not-a-token", "client_id": "test-public"}) == (200, "")
    status, text = await revoke(idp, {"token": tokens["access_token"], "client_id": "test-public"})
    assert (status, text) == (400, '{"error": "unsupported_token_type"}')
    status, text = await revoke(idp, {"client_id": "test-public"})
    assert (status, '"invalid_request"' in text) == (400, True)
    bad = _basic("test-confidential", "wrong")
    assert await revoke(idp, {"token": tokens["refresh_token"]}, bad) == (401, '{"error": "invalid_client"}')
    # Another client's token is not revoked (and the answer does not say so).
    other = _basic("test-confidential", CONFIDENTIAL_SECRET)
    assert await revoke(idp, {"token": tokens["refresh_token"]}, other) == (200, "")
    data = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    assert (await post_token(data, idp))[0] == 200


async def user_info(idp: RunningIdp, access: str | None, method: str = "GET") -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {access}"} if access else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"{idp.url}/oauth2/userInfo", headers=headers) as response:
            return response.status, await response.json(), response.headers.get("WWW-Authenticate", "")


async def test_userinfo_returns_attributes_like_cognito(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await code_tokens(idp, hosted_ui)
    for method in ("GET", "POST"):
        status, body, _ = await user_info(idp, tokens["access_token"], method)
        assert status == 200
        assert body == {
            "sub": jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"],
            "email": "alice@example.com", "email_verified": "true",
            "custom:department": "engineering", "username": "alice",
        }  # fmt: skip


async def test_userinfo_errors(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    status, body, header = await user_info(idp, None)
    assert (status, body["error"]) == (400, "invalid_request") and 'error="invalid_request"' in header
    status, body, header = await user_info(idp, "garbage")
    assert (status, body["error"]) == (401, "invalid_token") and header.startswith('Bearer error="invalid_token"')
    tokens = await code_tokens(idp, hosted_ui)
    forged = tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB")
    assert (await user_info(idp, forged))[0] == 401


async def test_codes_refresh_and_access_tokens_expire(idp_factory: Any, hosted_ui: HostedUIBrowser) -> None:
    idp = await idp_factory(token_lifetimes={"auth_code": 1, "refresh": 1, "access": 1, "id": 1})
    tokens = await code_tokens(idp, hosted_ui)
    unused_code = await sign_in_code(idp, hosted_ui)
    await asyncio.sleep(1.1)  # one sleep for all three lifetimes keeps the suite fast
    code_grant = {"grant_type": "authorization_code", "client_id": "test-public", "code": unused_code,
                  "redirect_uri": CALLBACK}  # fmt: skip
    assert await post_token(code_grant, idp) == (400, {"error": "invalid_grant"})
    refresh = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    assert (await post_token(refresh, idp))[1]["error"] == "invalid_grant"
    assert (await user_info(idp, tokens["access_token"]))[0] == 401


async def test_id_token_only_with_openid_scope(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    code = await sign_in_code(idp, hosted_ui, scope="email")
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}
    status, body = await post_token(data, idp)
    assert status == 200 and "id_token" not in body
    assert (await user_info(idp, body["access_token"]))[0] == 401  # userInfo needs openid


async def test_malformed_basic_header_is_invalid_client(idp: RunningIdp) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": "Basic %%%not-base64"}
        async with session.post(idp.token_url, data={"grant_type": "client_credentials"}, headers=headers) as r:
            assert (r.status, await r.json()) == (400, {"error": "invalid_client"})
        headers = {"Authorization": _basic("test-m2m", M2M_SECRET)}
        async with session.post(idp.token_url, data={"grant_type": "client_credentials"}, headers=headers) as r:
            assert r.status == 200
