"""Relying-party conformance: the negative cases of the OpenID Foundation's RP certification plan
(code flow), each served by a misbehaving OpenID provider — a real HTTP server on 127.0.0.1 — to
the real gateway, for `provider.kind: cognito` and `provider.kind: oidc`.

Every refused case must end with a 4xx at the callback (a provider that is down, slow or answers
5xx may give 502/503/504 — never 500), no session cookie, and a protected page that still sends
the browser to sign in. The same harness signs in with well-formed tokens (the controls), so a
harness that could not tell a session from none would fail there.

Choices, where the certification plan leaves one:
- `kid` absent, JWKS with exactly one key (rp-id_token-kid-absent-single-jwks): `kind: oidc`
  accepts with that key, as the plan expects of a generic RP; `kind: cognito` refuses, like
  aws-jwt-verify (Cognito always sends a kid). `kid` absent with several keys: refused by both.
- Required claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nonce` at sign-in) are required for every
  provider kind. With `kind: cognito` the access token is a JWT that is verified as well (its
  `sub` too, which must be the id token's); with `kind: oidc` it may be opaque and is not.
- A token endpoint answer that is not a usable token response (garbage, HTML, empty, an array,
  too big, tokens missing or of the wrong type) is a refused sign-in (400); one that fails at the
  transport (5xx, slower than provider.timeout, cut off) is 502.
- userInfo: at sign-in with identity.userinfo on, a userInfo whose `sub` differs from the id
  token's refuses the sign-in; at request time such a userInfo is discarded.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest

from gateway.config import ProviderKind
from gateway.errors import ProviderError, TokenError
from gateway.oidc.bodies import MAX_RESPONSE_BYTES
from gateway.oidc.client import OidcClient, UserInfoMismatch
from gateway.oidc.profile import profile_for
from tests.fixtures.misbehaving_op import SUBJECT, MisbehavingOp, OpKey, hmac_token, pooled_key, unsigned_token
from tests.fixtures.servers import free_port
from tests.fixtures.stack import SESSION_SECRET

CLIENT = "rp-conformance-client"
COOKIE = "_gw_rp"  # not the default, so the assertions follow the configured name
PROTECTED = "/api/whoami?from=rp"
TIMEOUT = 1.0  # provider.timeout in these tests, seconds
HUGE = 50 * 1024 * 1024

ACCEPT, REFUSE, UNAVAILABLE = "accept", "refuse", "unavailable"
KINDS = ("cognito", "oidc")


@dataclass(frozen=True)
class Case:
    setup: Callable[[MisbehavingOp], None]
    expect: str | dict[str, str] = REFUSE  # one outcome, or one per kind
    reason: str | None = None  # a piece of the refusal message (the verification reason)
    check: Callable[[MisbehavingOp, "Attempt"], None] | None = None  # more assertions afterwards
    config: dict[str, Any] = field(default_factory=dict)

    def outcome(self, kind: str) -> str:
        return self.expect if isinstance(self.expect, str) else self.expect[kind]


def id_token(op: MisbehavingOp, **claims: Any) -> None:
    """The token endpoint answers with an id token having these claim overrides (None: absent)."""
    op.token_response = lambda: op.good_token_response(id_token=op.sign(op.id_claims(**claims)))


def raw_id_token(make: Callable[[MisbehavingOp], str]) -> Callable[[MisbehavingOp], None]:
    def setup(op: MisbehavingOp) -> None:
        op.token_response = lambda: op.good_token_response(id_token=make(op))

    return setup


def access_token(op: MisbehavingOp, **claims: Any) -> None:
    op.token_response = lambda: op.good_token_response(access_token=op.sign(op.access_claims(**claims)))


def token_body(make: Callable[[MisbehavingOp], Any]) -> Callable[[MisbehavingOp], None]:
    def setup(op: MisbehavingOp) -> None:
        op.token_response = lambda: make(op)

    return setup


def token_handler(make: Callable[[MisbehavingOp], Any]) -> Callable[[MisbehavingOp], None]:
    def setup(op: MisbehavingOp) -> None:
        op.token_handler = make(op)

    return setup


K2 = lambda: OpKey("k2", pooled_key("rsa-2"))  # noqa: E731
EC1 = lambda: OpKey("e1", pooled_key("ec-1", "ES256"), "ES256")  # noqa: E731
EC_OTHER = lambda: OpKey("e1", pooled_key("ec-other", "ES256"), "ES256")  # noqa: E731
RSA_OTHER = lambda: OpKey("k1", pooled_key("rsa-other"))  # noqa: E731


def without_signature(op: MisbehavingOp) -> str:
    return op.sign(op.id_claims()).rsplit(".", 1)[0] + "."


def tampered_payload(op: MisbehavingOp) -> str:
    """A genuine signature over another payload (sub changed)."""
    header, _, signature = op.sign(op.id_claims()).split(".")
    forged = op.sign(op.id_claims(sub="admin")).split(".")[1]
    return f"{header}.{forged}.{signature}"


def es256(op: MisbehavingOp) -> None:
    op.keys = [op.k1, EC1()]
    op.signing_key = op.keys[1]


def es256_bad_signature(op: MisbehavingOp) -> None:
    op.keys = [op.k1, EC1()]
    op.token_response = lambda: op.good_token_response(id_token=op.sign(op.id_claims(), key=EC_OTHER()))


def es256_header_on_the_rsa_kid(op: MisbehavingOp) -> None:
    op.keys = [op.k1, EC1()]
    op.token_response = lambda: op.good_token_response(id_token=op.sign(op.id_claims(), key=EC_OTHER(), kid="k1"))


def kid_absent(keys: Callable[[MisbehavingOp], list[OpKey]]) -> Callable[[MisbehavingOp], None]:
    def setup(op: MisbehavingOp) -> None:
        op.keys = keys(op)
        op.token_response = lambda: op.good_token_response(
            id_token=op.sign(op.id_claims(), kid=None), access_token=op.sign(op.access_claims(), kid=None)
        )

    return setup


def rotation(op: MisbehavingOp) -> None:
    """At the token request the OP has switched to a new key with a new kid: only it is in the JWKS."""

    async def rotate() -> None:
        await asyncio.sleep(0.15)  # past provider.jwks_refetch_interval since the gateway's last JWKS fetch
        op.keys = [K2()]
        op.signing_key = op.keys[0]

    op.before_token = rotate


def rotation_then(jwks: Callable[[MisbehavingOp], Any]) -> Callable[[MisbehavingOp], None]:
    """Rotation, but the JWKS the gateway refetches is broken: the new kid cannot be trusted."""

    def setup(op: MisbehavingOp) -> None:
        async def rotate() -> None:
            await asyncio.sleep(0.15)
            op.signing_key = K2()
            op.jwks_handler = jwks(op)

        op.before_token = rotate

    return setup


def refetched(op: MisbehavingOp, attempt: "Attempt") -> None:
    assert op.jwks_fetches >= 2, "the gateway never refetched the JWKS: the rotation path was not exercised"


def bounded(op: MisbehavingOp, attempt: "Attempt") -> None:
    # Without a bound the gateway reads all 50 MB; with it, it hangs up after ~1 MB (plus socket buffers).
    assert op.sent_bytes < 16 * 1024 * 1024, f"the gateway let the provider send {op.sent_bytes} bytes"
    assert attempt.elapsed < 5, attempt.elapsed


def within_timeout(op: MisbehavingOp, attempt: "Attempt") -> None:
    assert attempt.elapsed < TIMEOUT + 2.5, f"the callback took {attempt.elapsed:.1f}s with provider.timeout {TIMEOUT}s"


CASES: dict[str, Case] = {
    # --- the controls: the same harness with well-formed tokens signs in -------------------
    "valid": Case(lambda op: None, ACCEPT),
    "valid-es256": Case(es256, ACCEPT),
    "key-rotation-new-kid": Case(rotation, ACCEPT, check=refetched),
    # --- signatures ----------------------------------------------------------------------------
    "rs256-bad-signature": Case(raw_id_token(lambda op: op.sign(op.id_claims(), key=RSA_OTHER())), reason="bad signature"),
    "signature-stripped": Case(raw_id_token(without_signature), reason="bad signature"),
    "payload-tampered": Case(raw_id_token(tampered_payload), reason="bad signature"),
    "alg-none": Case(raw_id_token(lambda op: unsigned_token(op.id_claims())), reason="algorithm not allowed: none"),
    "hs256-rsa-public-key-as-secret": Case(
        raw_id_token(lambda op: hmac_token(op.id_claims(), op.k1.public_pem())), reason="algorithm not allowed: HS256"
    ),
    "es256-bad-signature": Case(es256_bad_signature, reason="bad signature"),
    "es256-header-with-rsa-kid": Case(es256_header_on_the_rsa_kid, reason="algorithm"),
    "unknown-kid": Case(raw_id_token(lambda op: op.sign(op.id_claims(), kid="not-in-jwks")), reason="unknown signing key"),
    "kid-absent-several-keys": Case(kid_absent(lambda op: [op.k1, K2()]), reason="no kid"),
    "kid-absent-single-key": Case(kid_absent(lambda op: [op.k1]), {"cognito": REFUSE, "oidc": ACCEPT}),
    "kid-absent-single-key-jwk-without-kid": Case(
        kid_absent(lambda op: [OpKey(None, op.k1.private)]), {"cognito": REFUSE, "oidc": ACCEPT}
    ),
    "rotation-refetched-jwks-huge": Case(rotation_then(lambda op: op.huge(HUGE, declare_length=False)), check=bounded),
    "rotation-refetched-jwks-garbage": Case(rotation_then(lambda op: op.raw(b"<html>no</html>", content_type="text/html"))),
    # --- claims --------------------------------------------------------------------------------
    "wrong-iss": Case(lambda op: id_token(op, iss="https://evil.example/pool"), reason="wrong issuer"),
    "missing-iss": Case(lambda op: id_token(op, iss=None), reason="no iss"),
    "wrong-aud": Case(lambda op: id_token(op, aud="someone-else"), reason="another client (aud)"),
    "missing-aud": Case(lambda op: id_token(op, aud=None), reason="no aud"),
    "aud-list-with-foreign-azp": Case(lambda op: id_token(op, aud=[CLIENT, "other"], azp="other"), reason="(azp)"),
    "missing-sub": Case(lambda op: id_token(op, sub=None), reason="no sub"),
    "empty-sub": Case(lambda op: id_token(op, sub=""), reason="no sub"),
    "numeric-sub": Case(lambda op: id_token(op, sub=12345), reason="no sub"),
    # A generic provider's access token may be opaque: only Cognito's is verified.
    "access-token-missing-sub": Case(lambda op: access_token(op, sub=None), {"cognito": REFUSE, "oidc": ACCEPT}),
    "access-token-other-sub": Case(lambda op: access_token(op, sub="someone-else"), {"cognito": REFUSE, "oidc": ACCEPT}),
    "wrong-nonce": Case(lambda op: id_token(op, nonce="not-the-one-we-sent"), reason="nonce mismatch"),
    "missing-nonce": Case(lambda op: id_token(op, nonce=None), reason="no nonce"),
    "iat-missing": Case(lambda op: id_token(op, iat=None), reason="no iat"),
    "iat-far-future": Case(lambda op: id_token(op, iat=int(time.time()) + 3600), reason="issued in the future"),
    "exp-missing": Case(lambda op: id_token(op, exp=None), reason="no exp"),
    "exp-past": Case(lambda op: id_token(op, exp=int(time.time()) - 600), reason="token expired"),
    "exp-not-a-number": Case(lambda op: id_token(op, exp=str(int(time.time()) + 600)), reason="exp"),
    "nbf-future": Case(lambda op: id_token(op, nbf=int(time.time()) + 3600), reason="not valid yet"),
    "id-token_use-access": Case(lambda op: id_token(op, token_use="access"), reason="not an id token"),
    # --- the token endpoint ------------------------------------------------------------------
    "token-garbage": Case(token_handler(lambda op: op.raw(b"\x00\xff garbage {{{"))),
    "token-html-200": Case(token_handler(lambda op: op.raw(b"<html><body>Welcome!</body></html>", content_type="text/html"))),
    "token-huge-body": Case(token_handler(lambda op: op.huge(HUGE, declare_length=False)), check=bounded),
    "token-huge-declared-length": Case(token_handler(lambda op: op.huge(HUGE, declare_length=True)), check=bounded),
    "token-slow-body": Case(token_handler(lambda op: op.trickle(TIMEOUT * 6)), UNAVAILABLE, check=within_timeout),
    "token-no-answer": Case(token_handler(lambda op: op.hang(TIMEOUT * 6)), UNAVAILABLE, check=within_timeout),
    "token-cut-off": Case(token_handler(lambda op: op.truncated(5000, b'{"access_token": "abc')), UNAVAILABLE),
    "token-500": Case(token_handler(lambda op: op.raw(b'{"error": "server_error"}', status=500)), UNAVAILABLE),
    "token-empty-200": Case(token_handler(lambda op: op.raw(b""))),
    "token-json-array": Case(token_body(lambda op: [op.good_token_response()])),
    "token-json-string": Case(token_body(lambda op: "access_token")),
    "token-deeply-nested-json": Case(token_handler(lambda op: op.raw(b"[" * 200_000 + b"]" * 200_000))),
    "token-200-with-error": Case(token_body(lambda op: {"error": "invalid_grant"})),
    "access-token-missing": Case(token_body(lambda op: op.good_token_response(access_token=None))),
    "id-token-missing": Case(token_body(lambda op: op.good_token_response(id_token=None)), reason="no id token"),
    "access-token-not-a-string": Case(token_body(lambda op: {**op.good_token_response(), "access_token": {"a": 1}})),
    "id-token-not-a-string": Case(token_body(lambda op: {**op.good_token_response(), "id_token": 12345})),
    "expires_in-not-a-number": Case(token_body(lambda op: {**op.good_token_response(), "expires_in": "soon"})),
}


@dataclass
class Attempt:
    status: int
    body: str
    set_cookies: list[str]
    elapsed: float


def session_cookie_names(names: Any, cookie: str = COOKIE) -> list[str]:
    pattern = re.compile(rf"^{re.escape(cookie)}(_\d+)?$")  # the session and its chunks, not login cookies
    return [name for name in names if pattern.match(name)]


@pytest.fixture
async def relying_party(make_gateway, demo_upstream):
    """A factory: (kind, gateway config overrides) -> (the misbehaving OP, the gateway's URL)."""
    ops: list[MisbehavingOp] = []

    async def start(kind: str, config: dict[str, Any] | None = None) -> tuple[MisbehavingOp, str]:
        op = await MisbehavingOp(CLIENT).start()
        ops.append(op)
        port = free_port()
        gateway = f"http://127.0.0.1:{port}"
        provider = {
            "issuer": op.issuer, "client_id": CLIENT, "kind": kind, "algorithms": ["RS256", "ES256"],
            "jwks_refetch_interval": "100ms", "timeout": f"{TIMEOUT}s",
        }  # fmt: skip
        settings: dict[str, Any] = {
            "listen": f"127.0.0.1:{port}", "public_url": gateway, "upstreams": [{"path": "/", "url": demo_upstream}],
            "provider": provider, "session": {"secrets": [SESSION_SECRET], "cookie_name": COOKIE},
        }  # fmt: skip
        for key, value in (config or {}).items():
            settings[key] = {**settings.get(key, {}), **value}
        await make_gateway(settings)
        return op, gateway

    yield start
    for op in ops:
        await op.stop()


async def attempt_sign_in(http: aiohttp.ClientSession, gateway: str) -> Attempt:
    """Protected page -> /oauth2/start -> the OP's authorize -> our callback, whose answer is returned."""
    url = gateway + PROTECTED
    for _ in range(4):
        async with http.get(url, allow_redirects=False) as response:
            assert response.status == 302, (url, response.status, (await response.text())[:300])
            url = urljoin(url, response.headers["Location"])
        if urlsplit(url).path == "/oauth2/callback":
            break
    else:
        raise AssertionError(f"never reached the callback: {url}")
    started = time.monotonic()
    async with http.get(url, allow_redirects=False) as response:
        body = await response.text()
        return Attempt(response.status, body, response.headers.getall("Set-Cookie", []), time.monotonic() - started)


async def follow_up(http: aiohttp.ClientSession, gateway: str) -> aiohttp.ClientResponse:
    async with http.get(gateway + PROTECTED, allow_redirects=False) as response:
        await response.read()
        return response


def assert_signed_in(attempt: Attempt, http: aiohttp.ClientSession) -> None:
    assert attempt.status == 302, (attempt.status, attempt.body[:300])
    assert session_cookie_names(c.key for c in http.cookie_jar), "no session cookie after a good sign-in"


def assert_no_session(case: str, attempt: Attempt, http: aiohttp.ClientSession) -> None:
    set_names = [header.split("=", 1)[0] for header in attempt.set_cookies if not _deletes(header)]
    assert not session_cookie_names(set_names), f"{case}: a session cookie was set: {attempt.set_cookies}"
    assert not session_cookie_names(c.key for c in http.cookie_jar), f"{case}: a session cookie is in the jar"


def _deletes(set_cookie: str) -> bool:
    return "max-age=0" in set_cookie.lower().replace(" ", "") or set_cookie.split(";", 1)[0].endswith("=")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
async def test_rp_conformance(relying_party, browser, kind, case):
    spec = CASES[case]
    op, gateway = await relying_party(kind, spec.config)
    spec.setup(op)
    http = browser.session
    attempt = await attempt_sign_in(http, gateway)
    assert op.token_requests == 1, f"{case}: the gateway never called the token endpoint"
    assert attempt.status != 500, f"{case}: 500 at the callback: {attempt.body[:300]}"
    outcome = spec.outcome(kind)
    if outcome == ACCEPT:
        assert_signed_in(attempt, http)
        page = await follow_up(http, gateway)
        assert page.status == 200, f"{case}: signed in, yet the protected page answered {page.status}"
    else:
        if outcome == REFUSE:
            assert 400 <= attempt.status < 500, f"{case}: expected a 4xx, got {attempt.status}: {attempt.body[:300]}"
        else:  # the provider is slow, down or broken: 4xx, or 502/503/504 says so
            assert 400 <= attempt.status < 500 or attempt.status in (502, 503, 504), (case, attempt.status)
        if spec.reason is not None:
            assert spec.reason in attempt.body, f"{case}: refused for another reason: {attempt.body[:400]}"
        assert_no_session(case, attempt, http)
        page = await follow_up(http, gateway)
        assert page.status == 302 and page.headers["Location"].startswith("/oauth2/start"), (
            f"{case}: a protected page after the refused sign-in answered {page.status} {page.headers.get('Location')}"
        )
    if spec.check is not None:
        spec.check(op, attempt)


# --- userInfo -------------------------------------------------------------------------------------

USERINFO_ON = {"identity": {"userinfo": True}}


@asynccontextmanager
async def provider_against_op(kind: str) -> AsyncIterator[tuple[MisbehavingOp, Any]]:
    """A fresh misbehaving OP, and the gateway's provider objects (endpoints, client, verifier) loaded against it as the app builds them."""
    from gateway.config import parse_config
    from gateway.oidc.provider import Provider

    op = await MisbehavingOp(CLIENT).start()
    op.nonce = "n-1"
    try:
        config = parse_config({
            "listen": "127.0.0.1:0", "public_url": "http://127.0.0.1:9", "upstreams": [{"path": "/", "url": "http://127.0.0.1:9"}],
            "provider": {"issuer": op.issuer, "client_id": CLIENT, "kind": kind, "timeout": f"{TIMEOUT}s"},
            "session": {"secrets": [SESSION_SECRET]},
        }, env={})  # fmt: skip
        assert config.provider is not None
        async with aiohttp.ClientSession() as http:
            yield op, await Provider(config.provider, lambda: http).load()
    finally:
        await op.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_sign_in_check_refuses_userinfo_about_another_user(kind):
    """verify_tokens(userinfo=True), as the callback calls it with identity.userinfo on."""
    from gateway.auth.tokens import verify_tokens

    async with provider_against_op(kind) as (op, loaded):
        tokens = await loaded.client.exchange_code("c", "http://127.0.0.1:9/cb", "v" * 43)
        assert (await verify_tokens(loaded, tokens, profile_for(ProviderKind(kind)), nonce="n-1", userinfo=True)).access_token
        assert op.userinfo_requests == 1
        op.userinfo = lambda: {"sub": "someone-else", "email": "victim@example.com"}
        with pytest.raises(TokenError) as refused:
            await verify_tokens(loaded, tokens, profile_for(ProviderKind(kind)), nonce="n-1", userinfo=True)
        assert "another user" in refused.value.reason
        # Without the flag (identity.userinfo off) userInfo is not asked at all.
        await verify_tokens(loaded, tokens, profile_for(ProviderKind(kind)), nonce="n-1")
        assert op.userinfo_requests == 2
        # A userInfo endpoint that fails (not a mismatch) does not block the sign-in.
        op.userinfo = lambda: ["not", "an", "object"]
        assert (await verify_tokens(loaded, tokens, profile_for(ProviderKind(kind)), nonce="n-1", userinfo=True)).access_token


async def test_userinfo_client_checks_sub_and_shape():
    async with provider_against_op("oidc") as (op, loaded):
        client: OidcClient = loaded.client
        assert (await client.userinfo("at", expected_sub=SUBJECT))["email"] == "user@op.example"
        op.userinfo = lambda: {"sub": "intruder", "email": "evil@example.com"}
        with pytest.raises(UserInfoMismatch) as mismatch:
            await client.userinfo("at", expected_sub=SUBJECT)
        # Both kinds of error: request-time enrichment (which catches ProviderError) discards it.
        assert isinstance(mismatch.value, ProviderError) and isinstance(mismatch.value, TokenError)
        for bad in ([{"sub": SUBJECT}], "text", {"email": "no-sub@example.com"}, {"sub": 7}):
            op.userinfo = lambda bad=bad: bad
            with pytest.raises(ProviderError):
                await client.userinfo("at", expected_sub=SUBJECT)


async def test_token_endpoint_answers_are_read_with_a_bound():
    """The client never holds more than MAX_RESPONSE_BYTES of a token endpoint answer."""
    async with provider_against_op("oidc") as (op, loaded):
        client = loaded.client
        op.token_handler = op.huge(HUGE, declare_length=False)
        with pytest.raises(ProviderError):
            await client.exchange_code("c", "http://127.0.0.1:9/cb", "v" * 43)
        assert op.sent_bytes < 16 * 1024 * 1024
        body = json.dumps({**op.good_token_response(), "padding": "x" * (MAX_RESPONSE_BYTES // 2)}).encode()
        op.token_handler = op.raw(body)
        assert (await client.exchange_code("c", "http://127.0.0.1:9/cb", "v" * 43)).access_token


@pytest.mark.parametrize("kind", KINDS)
async def test_callback_refuses_userinfo_about_another_user(relying_party, browser, kind):
    op, gateway = await relying_party(kind, USERINFO_ON)
    op.userinfo = lambda: {"sub": "someone-else", "email": "victim@example.com"}
    attempt = await attempt_sign_in(browser.session, gateway)
    assert 400 <= attempt.status < 500, (attempt.status, attempt.body[:300])
    assert_no_session("userinfo-sub-mismatch", attempt, browser.session)


@pytest.mark.parametrize("kind", KINDS)
async def test_callback_with_matching_userinfo_signs_in(relying_party, browser, kind):
    """The control of the test above: identity.userinfo on, userInfo about the same user."""
    op, gateway = await relying_party(kind, USERINFO_ON)
    attempt = await attempt_sign_in(browser.session, gateway)
    assert_signed_in(attempt, browser.session)
    page = await browser.open(gateway + PROTECTED)
    headers = dict(json.loads(page.text)["headers"])
    assert page.status == 200 and headers.get("X-Forwarded-User") == "rp-user"


@pytest.mark.parametrize("kind", KINDS)
async def test_request_time_userinfo_about_another_user_is_discarded(relying_party, browser, kind):
    op, gateway = await relying_party(kind, {"identity": {"userinfo": True, "headers": {"X-Forwarded-Phone": "phone_number"}}})
    attempt = await attempt_sign_in(browser.session, gateway)
    assert_signed_in(attempt, browser.session)
    # After sign-in the provider starts describing someone else (the id token has no phone_number).
    op.userinfo = lambda: {"sub": "someone-else", "phone_number": "+15550100"}
    page = await browser.open(gateway + PROTECTED)
    headers = dict(json.loads(page.text)["headers"])
    assert page.status == 200 and "X-Forwarded-Phone" not in headers, headers


@pytest.mark.parametrize("kind", KINDS)
async def test_request_time_userinfo_that_is_not_an_object_is_not_a_500(relying_party, browser, kind):
    """identity.userinfo on, and userInfo answers a JSON array: the request is served with token claims."""
    op, gateway = await relying_party(kind, USERINFO_ON)
    attempt = await attempt_sign_in(browser.session, gateway)
    assert_signed_in(attempt, browser.session)
    op.userinfo = lambda: [{"sub": SUBJECT, "email": "array@example.com"}]
    page = await browser.open(gateway + PROTECTED)
    assert page.status == 200, (page.status, page.text[:300])
    assert dict(json.loads(page.text)["headers"]).get("X-Forwarded-User") == "rp-user"


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_must_stay_about_the_same_user(kind):
    """OpenID Connect Core 12.2: a refreshed id token has the sub of the one it replaces."""
    from gateway.auth.tokens import verify_tokens
    from gateway.oidc.client import TokenSet

    async with provider_against_op(kind) as (op, loaded):
        signed_in = await verify_tokens(loaded, await loaded.client.refresh("rt"), profile_for(ProviderKind(kind)), nonce="n-1")
        op.nonce = None  # type: ignore[assignment]  # no nonce in refreshed id tokens
        same = await verify_tokens(loaded, await loaded.client.refresh("rt"), profile_for(ProviderKind(kind)), nonce=None, previous=signed_in)
        assert same.created_at == signed_in.created_at
        other_id = op.sign(op.id_claims(sub="someone-else"))
        other_access = op.sign(op.access_claims(sub="someone-else"))
        with pytest.raises(TokenError, match="another user"):
            await verify_tokens(loaded, TokenSet(other_access, 600, other_id, "rt"), profile_for(ProviderKind(kind)), nonce=None, previous=signed_in)
        # No new id token: Cognito's new access token must still be about the signed-in user.
        refreshed_access_only = TokenSet(other_access, 600, None, None)
        if kind == "cognito":
            with pytest.raises(TokenError, match="different users"):
                await verify_tokens(loaded, refreshed_access_only, profile_for(ProviderKind(kind)), nonce=None, previous=signed_in)
        else:  # a generic provider's access token may be opaque: it is not read
            await verify_tokens(loaded, refreshed_access_only, profile_for(ProviderKind(kind)), nonce=None, previous=signed_in)
