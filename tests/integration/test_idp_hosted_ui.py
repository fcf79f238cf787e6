"""The Hosted UI through its HTML forms, scripted with a cookie-jar client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.fixtures.idp import (
    CALLBACK,
    PASSWORD,
    SIGNED_OUT,
    HostedUIBrowser,
    RunningIdp,
    callback_params,
    pkce_pair,
)


async def exchange(idp: RunningIdp, code: str) -> dict[str, Any]:
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}
    async with aiohttp.ClientSession() as session, session.post(idp.token_url, data=data) as response:
        assert response.status == 200
        return await response.json()


async def test_authorize_redirects_to_an_accessible_login_form(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    url = idp.authorize_url()
    async with hosted_ui.session.get(url, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/login?client_id=test-public")
    status, page = await hosted_ui.follow(url)
    assert status == 200
    form = hosted_ui.form(url)
    assert set(form.fields) == {"_csrf", "username", "password"}
    assert form.action.startswith(f"{idp.url}/login?client_id=test-public")
    assert '<label for="username">' in page and '<label for="password">' in page and 'lang="en"' in page


async def test_sign_in_returns_code_and_state(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    location = await hosted_ui.sign_in(idp.authorize_url(state="xyz"), "alice")
    params = callback_params(location)
    assert location.startswith(CALLBACK + "?") and params["state"] == "xyz"
    assert "id_token" in await exchange(idp, params["code"])


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("nobody", PASSWORD), ("", "")])
async def test_bad_credentials_show_cognitos_message(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, username: str, password: str
) -> None:
    url = idp.authorize_url()
    await hosted_ui.follow(url)
    status, page = await hosted_ui.submit(hosted_ui.form(url), username=username, password=password)
    assert status == 400 and hosted_ui.form(url, page).error == "Incorrect username or password."


async def test_username_is_case_insensitive(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    location = await hosted_ui.sign_in(idp.authorize_url(), "ALICE")
    assert "code" in callback_params(location)


async def test_form_without_csrf_token_is_refused(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    url = idp.authorize_url()
    await hosted_ui.follow(url)
    form = hosted_ui.form(url)
    form.fields["_csrf"] = "forged"
    status, page = await hosted_ui.submit(form, username="alice", password=PASSWORD)
    assert status == 403 and "expired" in page


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"client_id": "nope"}, "client_id"),
        ({"redirect_uri": "https://evil.example/cb"}, "redirect_mismatch"),
        ({"identity_provider": "Google"}, "Login option is not available"),
    ],
)
async def test_authorize_errors_shown_on_the_idp(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, params: dict[str, str], detail: str
) -> None:
    status, page = await hosted_ui.follow(idp.authorize_url(**params))
    assert status == 400 and detail in page and "<form" not in page


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": ""}, "invalid_request"),
        ({"scope": "openid admin:everything"}, "invalid_scope"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_authorize_errors_go_back_to_the_client(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, params: dict[str, str], error: str
) -> None:
    status, location = await hosted_ui.follow(idp.authorize_url(state="s-1", **params))
    assert status == 302 and location.startswith(CALLBACK)
    query = callback_params(location)
    assert query["error"] == error and query["state"] == "s-1" and query["error_description"]


async def test_identity_provider_cognito_shows_the_login_form(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    status, _ = await hosted_ui.follow(idp.authorize_url(identity_provider="COGNITO"))
    assert status == 200 and "password" in hosted_ui.form(idp.url).fields


async def test_silent_sso_then_logout_clears_the_session(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    first = callback_params(await hosted_ui.sign_in(idp.authorize_url(), "alice"))
    # A live Hosted UI session: authorize answers at once, with the original auth_time.
    status, location = await hosted_ui.follow(idp.authorize_url(nonce="n-2"))
    second = callback_params(location)
    assert status == 302 and second["code"] != first["code"]
    assert (await exchange(idp, second["code"]))["id_token"]
    status, _ = await hosted_ui.follow(idp.authorize_url(prompt="login"))
    assert status == 200  # prompt=login forces the form
    logout = f"{idp.url}/logout?{urlencode({'client_id': 'test-public', 'logout_uri': SIGNED_OUT})}"
    assert await hosted_ui.follow(logout) == (302, SIGNED_OUT)
    assert "cognito" not in {c.key for c in hosted_ui.session.cookie_jar}
    status, _ = await hosted_ui.follow(idp.authorize_url())
    assert status == 200  # the form again


async def test_logout_back_to_sign_in_with_redirect_uri(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    await hosted_ui.sign_in(idp.authorize_url(), "alice")
    query = urlencode({"client_id": "test-public", "redirect_uri": CALLBACK, "response_type": "code", "state": "s"})
    async with hosted_ui.session.get(f"{idp.url}/logout?{query}", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/login?client_id=test-public")
    status, _ = await hosted_ui.follow(f"{idp.url}/logout?{query}")
    assert status == 200 and "username" in hosted_ui.form(idp.url).fields


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "test-public", "logout_uri": "https://evil.example/"},
        {"client_id": "nope", "logout_uri": SIGNED_OUT},
        {"client_id": "test-public"},
        {"client_id": "test-public", "redirect_uri": "https://evil.example/", "response_type": "code"},
    ],
)
async def test_logout_errors_are_pages_not_redirects(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, query: dict[str, str]
) -> None:
    async with hosted_ui.session.get(f"{idp.url}/logout?{urlencode(query)}", allow_redirects=False) as response:
        assert response.status == 400 and "Location" not in response.headers
        assert "An error was encountered" in await response.text()


async def test_signup_confirm_then_sign_in(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    verifier, challenge = pkce_pair()
    authorize = idp.authorize_url(code_challenge=challenge, code_challenge_method="S256", state="su")
    await hosted_ui.follow(authorize)
    signup_url = f"{idp.url}/signup?" + authorize.split("?", 1)[1]
    status, _ = await hosted_ui.follow(signup_url)
    assert status == 200
    status, page = await hosted_ui.submit(hosted_ui.form(signup_url), username="carol", email="carol@example.com",
                                          password="Sup3r-secret")  # fmt: skip
    assert status == 200 and "Confirm your account" in page
    messages = await idp.outbox("carol")
    assert [(m["kind"], m["destination"]) for m in messages] == [("confirmation", "carol@example.com")]
    form = hosted_ui.form(idp.url)
    assert form.fields["username"] == "carol"
    status, page = await hosted_ui.submit(form, code="000000" if messages[0]["code"] != "000000" else "111111")
    assert status == 400 and hosted_ui.form(idp.url, page).error == "Invalid verification code provided, please try again."
    status, location = await hosted_ui.submit(hosted_ui.form(idp.url, page), code=messages[0]["code"])
    params = callback_params(location)
    assert status == 302 and params["state"] == "su"
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": params["code"],
            "redirect_uri": CALLBACK, "code_verifier": verifier}  # fmt: skip
    async with hosted_ui.session.post(idp.token_url, data=data) as response:
        tokens = await response.json()
    assert response.status == 200
    async with hosted_ui.session.get(f"{idp.url}/oauth2/userInfo",
                                     headers={"Authorization": f"Bearer {tokens['access_token']}"}) as response:  # fmt: skip
        info = await response.json()
    assert info["username"] == "carol" and info["email_verified"] == "true"
    # A fresh browser signs in with the new account through the form.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        location = await HostedUIBrowser(session).sign_in(idp.authorize_url(), "carol", "Sup3r-secret")
    assert "code" in callback_params(location)


@pytest.mark.parametrize(
    ("username", "email", "password", "error"),
    [
        ("dave", "dave@example.com", "Sh0rt!", "Password did not conform with policy: Password not long enough"),
        ("dave", "dave@example.com", "alllower1!", "Password did not conform with policy: Password must have uppercase characters"),
        ("dave", "dave@example.com", "ALLUPPER1!", "Password did not conform with policy: Password must have lowercase characters"),
        ("dave", "dave@example.com", "NoDigits!!", "Password did not conform with policy: Password must have numeric characters"),
        ("dave", "dave@example.com", "NoSymbols12", "Password did not conform with policy: Password must have symbol characters"),
        ("dave", "not-an-email", "Passw0rd!", "Invalid email address format."),
        ("Alice", "a2@example.com", "Passw0rd!", "User already exists"),
    ],
)  # fmt: skip
async def test_signup_errors(
    idp: RunningIdp, hosted_ui: HostedUIBrowser, username: str, email: str, password: str, error: str
) -> None:
    signup_url = f"{idp.url}/signup?" + idp.authorize_url().split("?", 1)[1]
    await hosted_ui.follow(signup_url)
    status, page = await hosted_ui.submit(hosted_ui.form(signup_url), username=username, email=email, password=password)
    assert status == 400 and hosted_ui.form(signup_url, page).error == error
    assert await idp.outbox() == []


async def test_unconfirmed_user_is_sent_to_the_code_form(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    signup_url = f"{idp.url}/signup?" + idp.authorize_url().split("?", 1)[1]
    await hosted_ui.follow(signup_url)
    await hosted_ui.submit(hosted_ui.form(signup_url), username="erin", email="erin@example.com", password=PASSWORD)
    url = idp.authorize_url(prompt="login")
    await hosted_ui.follow(url)
    status, page = await hosted_ui.submit(hosted_ui.form(url), username="erin", password=PASSWORD)
    assert status == 200 and "Confirm your account" in page


async def test_forgot_password_resets_with_the_emailed_code(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    query = idp.authorize_url().split("?", 1)[1]
    forgot_url = f"{idp.url}/forgotPassword?{query}"
    await hosted_ui.follow(forgot_url)
    status, page = await hosted_ui.submit(hosted_ui.form(forgot_url), username="bob")
    assert status == 200 and "Reset your password" in page
    code = (await idp.outbox("bob"))[-1]["code"]
    form = hosted_ui.form(idp.url)
    status, page = await hosted_ui.submit(form, code=code, password="weak")
    assert status == 400 and "Password did not conform with policy" in (hosted_ui.form(idp.url, page).error or "")
    status, page = await hosted_ui.submit(hosted_ui.form(idp.url, page), code=code, password="N3w-Passw0rd")
    assert status == 200 and "Sign in" in page
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        browser = HostedUIBrowser(session)
        assert "code" in callback_params(await browser.sign_in(idp.authorize_url(), "bob", "N3w-Passw0rd"))
        url = idp.authorize_url(prompt="login")
        await browser.follow(url)
        status, _ = await browser.submit(browser.form(url), username="bob", password=PASSWORD)
        assert status == 400  # the old password is gone


async def test_forgot_password_does_not_reveal_unknown_users(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    forgot_url = f"{idp.url}/forgotPassword?" + idp.authorize_url().split("?", 1)[1]
    await hosted_ui.follow(forgot_url)
    status, page = await hosted_ui.submit(hosted_ui.form(forgot_url), username="nobody")
    assert status == 200 and "Reset your password" in page and await idp.outbox() == []


async def test_account_pages_validate_the_client_too(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    for path in ("/login", "/signup", "/confirm", "/forgotPassword", "/confirmForgotPassword"):
        status, page = await hosted_ui.follow(f"{idp.url}{path}?client_id=nope&redirect_uri={CALLBACK}")
        assert status == 400 and "An error was encountered" in page, path
