"""What doctor makes of each shape of answer: Cognito's, the local Cognito's, oidc-provider's (gateway/doctor_answers.py),
the clock verdict and the printed report (gateway/doctor.py). The requests themselves: tests/integration/test_doctor.py."""

from __future__ import annotations

import email.utils
import json
import secrets

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import parse_config
from gateway.doctor import CLOCK_LEEWAY, check_clock, diagnose, report
from gateway.doctor_answers import (
    Answer,
    ClockSample,
    Finding,
    Verdict,
    after_unknown_client,
    clock_sample,
    fail,
    ok,
    read_authorize,
    read_sign_out,
    read_token_error,
    redact,
    signing_keys,
    skip,
    without_password,
)

DOMAIN = "https://auth.example.com"
AUTHORIZE = f"{DOMAIN}/oauth2/authorize"
LOGOUT = f"{DOMAIN}/logout"
CALLBACK = "https://app.example.com/oauth2/callback"
BACK = "https://app.example.com/"
ASKED = f"{AUTHORIZE}?client_id=c1&redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth2%2Fcallback"
# The local Cognito's error page (gateway/idp/pages.py error_page), and oidc-provider's.
LOCAL_PAGE = '<p class="error" role="alert" id="error">{}</p><p>Please contact the application\'s administrator.</p>'
OIDC_PROVIDER_PAGE = "<h1>oops! something went wrong</h1><pre><strong>error</strong>: {}\n<strong>error_description</strong>: …</pre>"


def verdicts(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.check, f.verdict.value) for f in findings]


def redirect(location: str, status: int = 302) -> Answer:
    return Answer(status, ASKED, location)


def test_a_finding_is_one_aligned_line() -> None:
    assert ok("discovery", "https://x").line() == "ok   discovery: https://x"
    assert fail("callback", "refused").line() == "FAIL callback: refused"
    assert Finding(Verdict.WARN, "clock", "3 s").line() == "warn clock: 3 s"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # A known client and a registered callback: Cognito's classic and managed login go to /login.
        (redirect(f"{DOMAIN}/login?client_id=c1&redirect_uri=x"), [("client_id", "ok"), ("callback", "ok")]),
        (redirect("/login?client_id=c1", 302), [("client_id", "ok"), ("callback", "ok")]),
        (redirect("/interaction/abc123", 303), [("client_id", "ok"), ("callback", "ok")]),  # oidc-provider
        (redirect("https://accounts.google.com/o/oauth2/auth?x=1"), [("client_id", "ok"), ("callback", "ok")]),  # federation
        (Answer(200, ASKED, text="<form>"), [("client_id", "ok"), ("callback", "ok")]),
        # Real Cognito: its own /error page by redirect.
        (redirect(f"{DOMAIN}/error?error=redirect_mismatch&client_id=c1"), [("client_id", "ok"), ("callback", "FAIL")]),
        (redirect(f"{DOMAIN}/error?error=invalid_request&client_id=c1"), [("client_id", "FAIL"), ("callback", "skip")]),
        (redirect(f"{DOMAIN}/error?error=unauthorized_client&client_id=c1"), [("authorize", "FAIL"), ("callback", "skip")]),
        # The local Cognito: a 400 page.
        (Answer(400, ASKED, text=LOCAL_PAGE.format("redirect_mismatch: redirect_uri is not a callback URL of this app client.")),
         [("client_id", "ok"), ("callback", "FAIL")]),
        (Answer(400, ASKED, text=LOCAL_PAGE.format("invalid_request: client_id is missing or is not an app client of this pool.")),
         [("client_id", "FAIL"), ("callback", "skip")]),
        # oidc-provider: a 400 page, or JSON.
        (Answer(400, ASKED, text=OIDC_PROVIDER_PAGE.format("invalid_redirect_uri")), [("client_id", "ok"), ("callback", "FAIL")]),
        (Answer(400, ASKED, text=OIDC_PROVIDER_PAGE.format("invalid_client")), [("client_id", "FAIL"), ("callback", "skip")]),
        (Answer(400, ASKED, text=json.dumps({"error": "invalid_client"})), [("client_id", "FAIL"), ("callback", "skip")]),
        # Sent back to the callback: both are fine, the request itself is refused.
        (redirect(f"{CALLBACK}?error=invalid_scope&error_description=bad+scope&state=s"),
         [("client_id", "ok"), ("callback", "ok"), ("authorize", "FAIL")]),
        (Answer(503, ASKED, text="busy"), [("authorize", "FAIL"), ("callback", "skip")]),
    ],
)  # fmt: skip
def test_authorize_answers(answer: Answer, expected: list[tuple[str, str]]) -> None:
    assert verdicts(read_authorize(answer, AUTHORIZE, "c1", CALLBACK)) == expected


def test_authorize_messages_say_what_to_fix() -> None:
    refused = read_authorize(redirect(f"{DOMAIN}/error?error=redirect_mismatch&client_id=c1"), AUTHORIZE, "c1", CALLBACK)
    assert refused[1].line() == (
        f"FAIL callback: the provider refuses redirect_uri {CALLBACK} for client c1 (redirect_mismatch) — add it to the app client's callback URLs"
    )
    back = read_authorize(redirect(f"{CALLBACK}?error=invalid_scope&error_description=bad+scope"), AUTHORIZE, "c1", CALLBACK)
    assert back[2].message == "the provider refuses the sign-in request (invalid_scope: bad scope) — provider.scopes asks for a scope the app client does not allow"
    page = read_authorize(redirect("/interaction/abcdefgh-1234"), AUTHORIZE, "c1", CALLBACK)
    assert page[1].message.endswith("(its sign-in page: 302 to /interaction/…)")  # ids that change per request are left out


@pytest.mark.parametrize(
    ("error", "has_secret", "verdict", "says"),
    [
        ("invalid_grant", True, "ok", "accepts the credentials of client c1"),
        ("invalid_grant", False, "ok", "none set: client c1 is a public client"),
        ("invalid_client", True, "FAIL", "check provider.client_secret"),
        ("invalid_client", False, "FAIL", "it is a confidential client: set provider.client_secret"),
        ("unauthorized_client", True, "FAIL", "enable the authorization code grant"),
        ("invalid_request", True, "FAIL", "with invalid_request (400), not invalid_grant"),
    ],
)
def test_token_endpoint_answers(error: str, has_secret: bool, verdict: str, says: str) -> None:
    finding = read_token_error(error, 400, "c1", has_secret)
    assert finding.check == "secret" and finding.verdict.value == verdict and says in finding.message


@pytest.mark.parametrize(
    ("answer", "oidc", "verdict", "says"),
    [
        (Answer(302, LOGOUT, BACK), False, "ok", f"sends browsers back to {BACK}"),
        (Answer(302, LOGOUT, f"{DOMAIN}/login?client_id=c1"), False, "FAIL", f"it redirects to {DOMAIN}/login instead"),  # managed login
        (Answer(302, LOGOUT, f"{DOMAIN}/error?error=redirect_mismatch&client_id=c1"), False, "FAIL", "(redirect_mismatch)"),
        (Answer(400, LOGOUT, text=LOCAL_PAGE.format("redirect_mismatch: logout_uri is not a sign-out URL")), False, "FAIL", "(redirect_mismatch)"),
        (Answer(302, LOGOUT, BACK + "?x=1"), False, "FAIL", "instead"),  # not exactly the gateway's return address
        (Answer(200, LOGOUT, text="<form>sign out?</form>"), True, "ok", "it shows a sign-out page first"),
        (Answer(200, LOGOUT, text="<html>"), False, "FAIL", "(HTTP 200)"),  # Cognito never answers its logout with a page
        (Answer(400, LOGOUT, text=json.dumps({"error": "invalid_request"})), True, "FAIL", "(invalid_request)"),
        (Answer(502, LOGOUT), False, "FAIL", f"{LOGOUT} answered 502"),
    ],
)  # fmt: skip
def test_sign_out_answers(answer: Answer, oidc: bool, verdict: str, says: str) -> None:
    finding = read_sign_out(answer, LOGOUT, "c1", BACK, confirmation_page_ok=oidc)
    assert finding.check == "sign-out" and finding.verdict.value == verdict and says in finding.message, finding.message


def test_an_unknown_client_turns_the_other_refusals_into_skips() -> None:
    findings = [fail("client_id", "unknown"), skip("callback", "-"), fail("secret", "invalid_client"), fail("sign-out", "refused")]
    assert verdicts(after_unknown_client(findings)) == [("client_id", "FAIL"), ("callback", "skip"), ("secret", "skip"), ("sign-out", "skip")]
    known = [ok("client_id", "known"), fail("secret", "invalid_client")]
    assert after_unknown_client(known) == known


def _jwk(key: object, **extra: str) -> dict[str, str]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key)), **extra}


def test_signing_keys_of_the_allowed_algorithms() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    document = {"keys": [
        _jwk(rsa_key, alg="RS256", kid="a", use="sig"),
        _jwk(rsa_key, kid="b"),  # no alg: usable by an allowed RSA algorithm
        _jwk(ec_key, alg="ES256", kid="c"),
        _jwk(rsa_key, alg="RS256", kid="d", use="enc"),  # not for signatures
        {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},  # symmetric: never
        {"kty": "RSA", "alg": "RS256", "e": "AQAB"},  # no modulus
        "not a key",
    ]}  # fmt: skip
    assert signing_keys(document, ("RS256",)) == (["RS256", "RSA key"], ["ES256"])
    assert signing_keys(document, ("ES256",)) == (["ES256"], ["RS256", "RSA key"])
    assert signing_keys({"keys": "nope"}, ("RS256",)) == ([], [])


def test_clock_samples_from_date_headers() -> None:
    now = 1_700_000_000.25
    date = email.utils.formatdate(now + 30, usegmt=True)  # whole seconds: 30.75 s ahead at most, 29.75 at least
    sample = clock_sample("https://op.example.com/jwks", {"Date": date}, round_trip=0.5, now=now)
    assert sample is not None and sample.host == "op.example.com" and 29.7 < sample.skew < 30.8
    cached = clock_sample("https://op.example.com/jwks", {"Date": email.utils.formatdate(now - 100, usegmt=True), "Age": "100"}, 0.0, now)
    assert cached is not None and abs(cached.skew) < 1  # a cache's Date is the origin's: its Age is added back
    assert clock_sample("https://op.example.com", {}, 0.1) is None
    assert clock_sample("https://op.example.com", {"Date": "yesterday"}, 0.1) is None


@pytest.mark.parametrize(
    ("skew", "verdict"),
    [(0.3, "ok"), (-1.9, "ok"), (3.0, "warn"), (-4.5, "warn"), (CLOCK_LEEWAY + 1, "FAIL"), (-60.0, "FAIL")],
)
def test_clock_verdicts(skew: float, verdict: str) -> None:
    assert check_clock([ClockSample("op.example.com", 0.05, skew)]).verdict.value == verdict


def test_clock_uses_the_quickest_answer_and_says_which_way() -> None:
    samples = [ClockSample("slow.example.com", 2.0, 0.0), ClockSample("op.example.com", 0.01, 30.0)]
    finding = check_clock(samples)
    assert finding.verdict is Verdict.FAIL and finding.message.startswith("this machine is 30.0 s behind op.example.com")
    assert check_clock([ClockSample("op.example.com", 0.01, -30.0)]).message.startswith("this machine is 30.0 s ahead of op.example.com")
    assert check_clock([]).verdict is Verdict.SKIP


def test_the_report_never_shows_a_secret_and_counts_failures() -> None:
    session_secret, client_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(20)
    config = parse_config({
        "listen": "127.0.0.1:8080", "public_url": "https://app.example.com", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "https://op.example.com", "client_id": "c1", "client_secret": client_secret},
        "session": {"secrets": [session_secret]},
    }, env={})  # fmt: skip
    echoed = [fail("secret", f"the provider said: bad secret {client_secret}"), ok("discovery", f"x{session_secret}y")]
    lines, failures = report(config, echoed)
    assert lines == ["FAIL secret: the provider said: bad secret ***", "ok   discovery: x***y"] and failures == 1


def test_redaction_and_masked_urls() -> None:
    assert redact("abc-abcdef", ["abc", "abcdef"]) == "***-***"  # the longer secret first
    assert without_password("redis://:hunter2@redis:6379/0") == "redis://***@redis:6379/0"
    assert without_password("redis://redis:6379/0") == "redis://redis:6379/0"


async def test_without_a_provider_there_is_nothing_to_ask() -> None:
    config = parse_config({"listen": "127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}]}, env={})
    findings = await diagnose(config)
    assert [f.line() for f in findings] == ["skip provider: none configured: sign-in is off"] and report(config, findings)[1] == 0
