"""Identity headers: what the upstream is told (HeaderRenderer), and what no client may tell it (SpoofedHeaders).

Pure code; the signer and the provider are fakes, and `time.time` as the renderer sees it is a
clock the tests move. Real signatures are tests/unit/auth/test_signing.py; the headers as an
upstream receives them, tests/integration/test_rules_identity.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from gateway.auth import identity as identity_module
from gateway.auth.identity import (
    ACCESS_TOKEN_HEADER,
    DEFAULT_HEADERS,
    SIGNED_HEADERS_REUSE,
    HeaderRenderer,
    SpoofedHeaders,
    header_value,
)
from gateway.auth.principal import Principal
from gateway.config import IdentityConfig

NOW = 1_700_000_000.0
PUBLIC_URL = "https://gw.example"
CLIENT_ID = "client-1"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool"
ASSERTION = "X-Gateway-Assertion"


class Clock:
    """`time` as gateway.auth.identity sees it."""

    def __init__(self) -> None:
        self.now = NOW

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(identity_module, "time", fake)
    return fake


class FakeSigner:
    """Records every call; each answer is distinct, so a re-render shows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def alb_data(self, claims: dict[str, Any], issuer: str, client_id: str, expires_at: int) -> str:
        self.calls.append(("alb_data", (claims, issuer, client_id, expires_at)))
        return f"alb-data-{len(self.calls)}"

    def assertion(self, claims: dict[str, Any], issuer: str, audience: str, lifetime: int = 60) -> str:
        self.calls.append(("assertion", (claims, issuer, audience)))
        return f"assertion-{len(self.calls)}"


def fake_provider(issuer: str | None = ISSUER) -> Any:
    """Only `.loaded.endpoints.issuer` is read; `loaded` is None before the provider first answered."""
    return SimpleNamespace(loaded=None if issuer is None else SimpleNamespace(endpoints=SimpleNamespace(issuer=issuer)))


CLAIMS: dict[str, Any] = {
    "sub": "sub-1",
    "cognito:username": "alice",
    "email": "alice@example.com",
    "email_verified": True,
    "cognito:groups": ["admins", "ops"],
    "preferred_username": "Alice A.",
    "name": "Alice",
    "custom:tenant": "t-9",
    "scope": "openid",
    "iss": "https://not-userinfo",
}


def principal(claims: dict[str, Any] | None = None, *, expires_at: float = NOW + 3600, from_bearer: bool = False, token: str = "at-1") -> Principal:
    return Principal(dict(CLAIMS if claims is None else claims), token, expires_at, from_bearer)


def renderer(identity: IdentityConfig | None = None, signer: FakeSigner | None = None, provider: Any = None) -> HeaderRenderer:
    return HeaderRenderer(identity or IdentityConfig(), PUBLIC_URL, CLIENT_ID, provider, signer)


# --- header_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        (["a", "b", "c"], "a,b,c"),
        ([1, 2], "1,2"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (12.5, "12.5"),
        (None, None),
        ("", None),
        ([], None),
        ("ev\r\nX-Injected: 1", None),
        ("tab\there", None),
        ("nul\x00", None),
        ("del\x7f", None),
        (["ok", "bad\n"], None),
        ("ünïcode", "ünïcode"),
    ],
)
def test_header_value(value: Any, expected: str | None) -> None:
    assert header_value(value) == expected


# --- HeaderRenderer ----------------------------------------------------------------------


def test_default_headers(clock: Clock) -> None:
    assert renderer().render(principal()) == (
        ("X-Forwarded-User", "alice"),
        ("X-Forwarded-Email", "alice@example.com"),
        ("X-Forwarded-Groups", "admins,ops"),
        ("X-Forwarded-Preferred-Username", "Alice A."),
    )


def test_configured_claim_headers(clock: Clock) -> None:
    identity = IdentityConfig(
        headers=(
            ("X-User", "cognito:username"),
            ("X-Groups", "cognito:groups"),
            ("X-Verified", "email_verified"),
            ("X-Phone-Verified", "phone_number_verified"),
            ("X-Name", "name"),
            ("X-Tenant", "custom:tenant"),
            ("X-Missing", "nope"),
            ("X-Empty", "empty"),
        )
    )
    claims = {**CLAIMS, "phone_number_verified": False, "name": "Eve\r\nX-Admin: yes", "empty": ""}
    assert renderer(identity).render(principal(claims)) == (
        ("X-User", "alice"),
        ("X-Groups", "admins,ops"),
        ("X-Verified", "true"),
        ("X-Phone-Verified", "false"),
        ("X-Tenant", "t-9"),
    )


def test_access_token_header_only_when_configured(clock: Clock) -> None:
    p = principal(token="the-access-token")
    assert (ACCESS_TOKEN_HEADER, "the-access-token") in renderer(IdentityConfig(pass_access_token=True)).render(p)
    assert ACCESS_TOKEN_HEADER not in dict(renderer().render(p))


def test_authorization_with_pass_authorization(clock: Clock) -> None:
    headers = dict(renderer(IdentityConfig(pass_authorization=True)).render(principal(token="tok")))
    assert headers["Authorization"] == "Bearer tok"


def test_a_bearer_principal_always_gets_authorization(clock: Clock) -> None:
    headers = dict(renderer().render(principal(from_bearer=True, token="tok")))
    assert headers["Authorization"] == "Bearer tok"


def test_a_session_principal_gets_no_authorization_by_default(clock: Clock) -> None:
    assert "Authorization" not in dict(renderer().render(principal()))


def test_alb_compatible_headers_and_the_signers_arguments(clock: Clock) -> None:
    signer = FakeSigner()
    p = principal(expires_at=NOW + 1234.9, token="at-alb")
    headers = renderer(IdentityConfig(alb_compatible=True), signer, fake_provider()).render(p)
    assert headers[-3:] == (
        ("x-amzn-oidc-accesstoken", "at-alb"),
        ("x-amzn-oidc-identity", "sub-1"),
        ("x-amzn-oidc-data", "alb-data-1"),
    )
    assert ASSERTION not in dict(headers)
    [(kind, (claims, issuer, client_id, expires_at))] = signer.calls
    assert kind == "alb_data"
    assert issuer == ISSUER and client_id == CLIENT_ID
    assert expires_at == int(NOW + 1234.9) and type(expires_at) is int
    # userInfo's claims, as an ALB sends them: Cognito's `username`, no token-only claims
    assert claims == {
        "sub": "sub-1",
        "username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice",
        "custom:tenant": "t-9",
    }


def test_alb_data_before_the_provider_loaded_has_an_empty_issuer(clock: Clock) -> None:
    signer = FakeSigner()
    renderer(IdentityConfig(alb_compatible=True), signer, fake_provider(None)).render(principal())
    assert signer.calls[0][1][1] == ""


def test_assertion_header_and_the_signers_arguments(clock: Clock) -> None:
    signer = FakeSigner()
    identity = IdentityConfig(assertion_header=ASSERTION, assertion_audience="https://app.internal")
    headers = renderer(identity, signer, fake_provider()).render(principal())
    assert dict(headers)[ASSERTION] == "assertion-1"
    assert not any(name.startswith("x-amzn-oidc-") for name, _ in headers)
    [(kind, (claims, issuer, audience))] = signer.calls
    assert kind == "assertion"
    assert issuer == PUBLIC_URL  # the gateway issues the assertion
    assert audience == "https://app.internal"
    assert claims["groups"] == ["admins", "ops"]
    assert claims["sub"] == "sub-1" and claims["username"] == "alice"
    assert "scope" not in claims and "iss" not in claims


def test_assertion_audience_defaults_to_the_public_url_and_groups_to_generic_groups(clock: Clock) -> None:
    signer = FakeSigner()
    claims = {k: v for k, v in CLAIMS.items() if k != "cognito:groups"} | {"groups": ["g1"]}
    renderer(IdentityConfig(assertion_header=ASSERTION), signer, fake_provider()).render(principal(claims))
    _, (sent, _, audience) = signer.calls[0]
    assert audience == PUBLIC_URL
    assert sent["groups"] == ["g1"]


def test_both_signed_headers(clock: Clock) -> None:
    signer = FakeSigner()
    headers = renderer(IdentityConfig(alb_compatible=True, assertion_header=ASSERTION), signer, fake_provider()).render(principal())
    assert [kind for kind, _ in signer.calls] == ["alb_data", "assertion"]
    assert {"x-amzn-oidc-data", ASSERTION} <= set(dict(headers))


def test_no_signer_no_signed_headers(clock: Clock) -> None:
    headers = renderer(IdentityConfig(alb_compatible=True, assertion_header=ASSERTION), None, fake_provider()).render(principal())
    assert not {"x-amzn-oidc-data", "x-amzn-oidc-identity", ASSERTION} & set(dict(headers))


def test_rendering_is_cached_per_principal_until_access_expiry(clock: Clock) -> None:
    r = renderer()
    p = principal(expires_at=NOW + 100)
    first = r.render(p)
    clock.now = NOW + 99
    assert r.render(p) is first
    twin = principal(expires_at=NOW + 100)  # equal claims, another principal: rendered on its own
    assert r.render(twin) == first and r.render(twin) is not first
    clock.now = NOW + 100
    again = r.render(p)
    assert again == first and again is not first


def test_the_cache_does_not_mix_principals(clock: Clock) -> None:
    r = renderer()
    alice = r.render(principal())
    bob = r.render(principal({**CLAIMS, "cognito:username": "bob"}))
    assert dict(alice)["X-Forwarded-User"] == "alice" and dict(bob)["X-Forwarded-User"] == "bob"


def test_signed_headers_are_re_rendered_after_the_reuse_window(clock: Clock) -> None:
    signer = FakeSigner()
    r = renderer(IdentityConfig(assertion_header=ASSERTION), signer, fake_provider())
    p = principal(expires_at=NOW + 3600)
    first = r.render(p)
    clock.now = NOW + SIGNED_HEADERS_REUSE - 1
    assert r.render(p) is first
    assert len(signer.calls) == 1
    clock.now = NOW + SIGNED_HEADERS_REUSE
    second = r.render(p)
    assert len(signer.calls) == 2
    assert dict(second)[ASSERTION] == "assertion-2"


def test_signed_headers_are_not_reused_past_access_expiry(clock: Clock) -> None:
    signer = FakeSigner()
    r = renderer(IdentityConfig(alb_compatible=True), signer, fake_provider())
    p = principal(expires_at=NOW + 10)  # sooner than the reuse window
    r.render(p)
    clock.now = NOW + 10
    r.render(p)
    assert len(signer.calls) == 2


# --- SpoofedHeaders ----------------------------------------------------------------------

ORDINARY = {
    "Accept": "text/html",
    "Cookie": "a=b",
    "User-Agent": "test",
    "X-Request-Id": "r1",
    "Content-Type": "application/json",
    "X-Forwarded-For": "10.0.0.1",
    "X-Corporate": "keep",  # not under the operator's X-Corp-* prefix
    "X-Users-Count": "3",
}


def remaining(spoofed: SpoofedHeaders, sent: list[tuple[str, str]]) -> list[str]:
    headers: CIMultiDict[str] = CIMultiDict(sent)
    spoofed.remove_from(headers)
    return [name for name, _ in headers.items()]  # every line, repeats too (keys() folds them)


def test_ordinary_headers_are_left_alone() -> None:
    sent = list(ORDINARY.items())
    assert remaining(SpoofedHeaders(IdentityConfig(strip_headers=("X-Corp-*",))), sent) == list(ORDINARY)


def test_default_and_access_token_headers_are_removed_in_any_case() -> None:
    sent = [(name.lower(), "forged") for name in DEFAULT_HEADERS] + [(name.upper(), "forged") for name in DEFAULT_HEADERS]
    sent += [(ACCESS_TOKEN_HEADER, "forged"), ("Accept", "*/*")]
    assert remaining(SpoofedHeaders(IdentityConfig()), sent) == ["Accept"]


def test_every_value_of_a_repeated_header_is_removed() -> None:
    sent = [("X-Forwarded-User", "a"), ("Accept", "*/*"), ("x-forwarded-user", "b"), ("X-FORWARDED-USER", "c")]
    assert remaining(SpoofedHeaders(IdentityConfig()), sent) == ["Accept"]


def test_configured_header_names_are_removed_even_when_replacing_the_defaults() -> None:
    identity = IdentityConfig(headers=(("X-Corp-User", "sub"), ("X-Team", "cognito:groups")), assertion_header=ASSERTION)
    sent = [("X-Corp-User", "f"), ("x_team", "f"), (ASSERTION.lower(), "f"), ("X-Forwarded-User", "f"), ("Accept", "*/*")]
    assert remaining(SpoofedHeaders(identity), sent) == ["Accept"]


@pytest.mark.parametrize(
    "name",
    [
        "X_Forwarded_User",
        "x.forwarded.user",
        "X-Forwarded_Email",
        "Remote-User",
        "REMOTE_USER",
        "X-Remote-User",
        "X-Auth-Request-Email",
        "x_auth_request_user",
        "x-amzn-oidc-data",
        "X_AMZN_OIDC_IDENTITY",
        "X-Pomerium-Jwt-Assertion",
        "X-WEBAUTH-USER",
        "Cf-Access-Jwt-Assertion",
        "X-Goog-Authenticated-User-Email",
        "X-MS-CLIENT-PRINCIPAL-NAME",
        "OIDC_CLAIM_email",
        "X-Auth-Username",
        "X-Userinfo",
        "X-Original-URL",
        "x_rewrite_url",
        "GAP-Auth",
    ],
)
def test_foreign_identity_headers_are_removed_in_odd_spellings(name: str) -> None:
    assert remaining(SpoofedHeaders(IdentityConfig()), [(name, "forged"), ("Accept", "*/*")]) == ["Accept"]


def test_operator_strip_headers_names_and_prefixes() -> None:
    spoofed = SpoofedHeaders(IdentityConfig(strip_headers=("X-Legacy-User", "X-Corp-*")))
    sent = [
        ("X-Legacy-User", "f"),
        ("x_legacy_user", "f"),
        ("X-Corp-Id", "f"),
        ("x.corp.role", "f"),
        ("X-Legacy-User-Agent", "kept: a name, not a prefix"),
        ("X-Corporate", "kept"),
    ]
    assert remaining(spoofed, sent) == ["X-Legacy-User-Agent", "X-Corporate"]


METHOD_OVERRIDES = ["X-HTTP-Method-Override", "x_http_method", "X-Method-Override"]


def test_method_override_headers_are_removed_by_default() -> None:
    sent = [(name, "DELETE") for name in METHOD_OVERRIDES] + [("Accept", "*/*")]
    assert remaining(SpoofedHeaders(IdentityConfig()), sent) == ["Accept"]


def test_method_override_headers_pass_when_configured() -> None:
    sent = [(name, "DELETE") for name in METHOD_OVERRIDES]
    assert remaining(SpoofedHeaders(IdentityConfig(pass_method_override=True)), sent) == METHOD_OVERRIDES
    # still removed with it: everything else
    assert remaining(SpoofedHeaders(IdentityConfig(pass_method_override=True)), [("X-Forwarded-User", "f")]) == []


def test_authorization_is_removed_only_with_pass_authorization() -> None:
    sent = [("Authorization", "Bearer forged"), ("authorization", "Basic x"), ("Accept", "*/*")]
    assert remaining(SpoofedHeaders(IdentityConfig(pass_authorization=True)), sent) == ["Accept"]
    assert remaining(SpoofedHeaders(IdentityConfig()), sent) == ["Authorization", "authorization", "Accept"]
