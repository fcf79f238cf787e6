"""The decision, pure: (rule, authentication) -> Verdict, and (method, host, target) -> rule.

No request, no I/O: a Policy over compiled Rules, the SpoofedHeaders of an IdentityConfig and a
HeaderRenderer (or a recording stand-in for one). Every Decision is reached here; the HTTP
answers built from them are tests/integration/test_rules_identity.py and test_forward_auth_endpoint.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.auth.decide import Decision, Policy, Verdict
from gateway.auth.identity import HeaderRenderer, Headers, SpoofedHeaders
from gateway.auth.principal import BearerRefused, Principal
from gateway.auth.rules import Rules
from gateway.config import IdentityConfig, RuleConfig, Unauthenticated

PUBLIC_URL = "https://gw.example"
CLIENT_ID = "client-1"

PUBLIC = RuleConfig("/public/**", allow_anyone=True)
API = RuleConfig("/api/**", bearer=True, unauthenticated=Unauthenticated.DENY)
API_BROWSER = RuleConfig("/api-ui/**", bearer=True)  # bearer, but browsers may sign in
DENIED = RuleConfig("/deny/**", unauthenticated=Unauthenticated.DENY)
ADMIN = RuleConfig("/admin/**", groups=("admins",))
SCOPED = RuleConfig("/scoped/**", scopes=("write",))
CLAIMED = RuleConfig("/claims/**", claims=(("dept", ("eng",)),))
MAIL = RuleConfig("/mail/**", email_domains=("example.com",))
GET_ONLY = RuleConfig("/feed", methods=("GET",), allow_anyone=True)
OPS_HOST = RuleConfig("/**", host="ops.example", groups=("ops",))
DEFAULT = RuleConfig(None)
RULES = (PUBLIC, API, API_BROWSER, DENIED, ADMIN, SCOPED, CLAIMED, MAIL, GET_ONLY, OPS_HOST)
PROTECTED = (API, API_BROWSER, DENIED, ADMIN, SCOPED, CLAIMED, MAIL, DEFAULT)


def principal(**overrides: Any) -> Principal:
    claims: dict[str, Any] = {
        "sub": "u1",
        "cognito:username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "cognito:groups": ["admins", "ops"],
        "scope": "openid write",
        "dept": "eng",
    }
    claims.update(overrides)
    return Principal({k: v for k, v in claims.items() if v is not None}, "access-token", time.time() + 3600)


def make_policy(renderer: Any = "default", identity: IdentityConfig | None = None) -> Policy:
    identity = identity or IdentityConfig()
    if renderer == "default":
        renderer = HeaderRenderer(identity, PUBLIC_URL, CLIENT_ID)
    return Policy(Rules(RULES, DEFAULT), SpoofedHeaders(identity), renderer)


class RecordingRenderer:
    """Stands in for HeaderRenderer: what it was asked to render, and a distinct answer each time."""

    def __init__(self) -> None:
        self.rendered: list[Principal] = []

    def render(self, p: Principal) -> Headers:
        self.rendered.append(p)
        return (("X-Rendered", f"{p.claims['sub']}#{len(self.rendered)}"),)


@pytest.fixture
def policy() -> Policy:
    return make_policy()


# --- rule_for ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "host", "target", "rule"),
    [
        ("GET", "app.example", "/public/x", PUBLIC),
        ("GET", "app.example", "/public/x?next=/admin", PUBLIC),  # the query is not the path
        ("GET", "app.example", "/admin?x=/public/y", ADMIN),
        ("POST", "app.example", "/api/v1/items", API),
        ("GET", "app.example", "/elsewhere", DEFAULT),
        ("GET", "app.example", "/feed", GET_ONLY),
        ("HEAD", "app.example", "/feed", GET_ONLY),  # a GET rule covers HEAD
        ("POST", "app.example", "/feed", DEFAULT),
        ("DELETE", "app.example", "/feed", DEFAULT),
        ("GET", "ops.example", "/anything", OPS_HOST),  # host-specific
        ("GET", "ops.example", "/public/x", PUBLIC),  # first match wins
        ("GET", "app.example", "/anything", DEFAULT),  # another host: not the ops rule
        ("GET", "ops.example.evil", "/anything", DEFAULT),
    ],
)
def test_rule_for_picks_the_rule(policy: Policy, method: str, host: str, target: str, rule: RuleConfig) -> None:
    assert policy.rule_for(method, host, target) is rule


@pytest.mark.parametrize(
    "target",
    [
        "/a/%2e%2e/b",  # encoded dot segment
        "/public/%2E%2E/admin",
        "/public/../admin",
        "/public/./x",
        "//admin",
        "/admin;x",
        "/%61dmin",  # encoded letter
        "/admin%2Fsettings",  # encoded slash
        "/admin%5c",  # encoded backslash
        "/admin#frag",
        "admin",
        "/public/%EF%BC%8E%EF%BC%8E/admin",  # fullwidth dots
    ],
)
def test_ambiguous_paths_are_a_bad_path_verdict(policy: Policy, target: str) -> None:
    verdict = policy.rule_for("GET", "app.example", target)
    assert isinstance(verdict, Verdict)
    assert verdict.decision is Decision.BAD_PATH
    assert verdict.error == "ambiguous_path" and verdict.reason
    assert verdict.principal is None and verdict.headers_to_set == ()
    assert verdict.headers_to_remove is policy.spoofed


def test_encoded_but_unambiguous_paths_are_not_refused(policy: Policy) -> None:
    assert policy.rule_for("GET", "app.example", "/public/a%20b") is PUBLIC
    assert policy.rule_for("GET", "app.example", "/public/%C3%A9t%C3%A9") is PUBLIC


# --- decide: who gets in -----------------------------------------------------------------


def test_a_permitted_principal_is_allowed_with_the_renderers_headers(policy: Policy) -> None:
    p = principal()
    for rule in PROTECTED:
        verdict = policy.decide(rule, p)
        assert verdict.decision is Decision.ALLOW, rule
        assert verdict.principal is p
        assert verdict.error == "" and verdict.reason == ""
        assert verdict.headers_to_set == policy.renderer.render(p)  # type: ignore[union-attr]
    assert verdict.headers_to_set == (
        ("X-Forwarded-User", "alice"),
        ("X-Forwarded-Email", "alice@example.com"),
        ("X-Forwarded-Groups", "admins,ops"),
    )


def test_headers_to_set_are_exactly_the_renderers_output() -> None:
    renderer = RecordingRenderer()
    policy = make_policy(renderer)
    p = principal()
    verdict = policy.decide(ADMIN, p)
    assert verdict.decision is Decision.ALLOW
    assert renderer.rendered == [p]
    assert verdict.headers_to_set == (("X-Rendered", "u1#1"),)


def test_the_same_principal_gets_the_same_cached_headers(policy: Policy) -> None:
    p = principal()
    first = policy.decide(ADMIN, p).headers_to_set
    second = policy.decide(DEFAULT, p).headers_to_set
    assert first and second is first
    other = principal(**{"cognito:username": "bob"})
    assert dict(policy.decide(ADMIN, other).headers_to_set)["X-Forwarded-User"] == "bob"


def test_allow_anyone_without_a_principal_is_allowed_without_headers(policy: Policy) -> None:
    verdict = policy.decide(PUBLIC, None)
    assert verdict.decision is Decision.ALLOW
    assert verdict.principal is None and verdict.headers_to_set == ()
    assert verdict.headers_to_remove is policy.spoofed


def test_allow_anyone_with_a_principal_passes_their_identity(policy: Policy) -> None:
    p = principal(**{"cognito:groups": None})  # no groups at all: allow_anyone needs none
    verdict = policy.decide(PUBLIC, p)
    assert verdict.decision is Decision.ALLOW
    assert verdict.principal is p
    assert ("X-Forwarded-User", "alice") in verdict.headers_to_set


def test_allow_anyone_with_a_principal_and_sign_in_off_has_no_headers() -> None:
    policy = make_policy(None)
    verdict = policy.decide(PUBLIC, principal())
    assert verdict.decision is Decision.ALLOW and verdict.headers_to_set == ()


def test_with_sign_in_off_allow_carries_no_headers() -> None:
    policy = make_policy(None)
    assert policy.renderer is None
    for rule in (PUBLIC, ADMIN, DEFAULT):
        verdict = policy.decide(rule, principal())
        assert verdict.decision is Decision.ALLOW
        assert verdict.headers_to_set == ()
        assert verdict.headers_to_remove is policy.spoofed
    assert policy.anonymous.decision is Decision.ALLOW and policy.anonymous.headers_to_set == ()


# --- decide: who does not ----------------------------------------------------------------


@pytest.mark.parametrize("rule", [DEFAULT, ADMIN, SCOPED, API_BROWSER])
def test_nobody_on_a_protected_rule_is_sent_to_sign_in(policy: Policy, rule: RuleConfig) -> None:
    verdict = policy.decide(rule, None)
    assert verdict.decision is Decision.SIGN_IN
    assert verdict.principal is None and verdict.headers_to_set == ()


def test_nobody_on_a_deny_bearer_rule_is_missing_a_token(policy: Policy) -> None:
    verdict = policy.decide(API, None)
    assert (verdict.decision, verdict.error) == (Decision.DENY, "missing_token")
    assert verdict.reason and verdict.headers_to_set == ()


def test_nobody_on_a_deny_rule_is_unauthenticated(policy: Policy) -> None:
    verdict = policy.decide(DENIED, None)
    assert (verdict.decision, verdict.error) == (Decision.DENY, "unauthenticated")
    assert verdict.reason and verdict.headers_to_set == ()


@pytest.mark.parametrize("rule", [API, API_BROWSER, DENIED])
def test_a_refused_bearer_token_is_denied_as_invalid(policy: Policy, rule: RuleConfig) -> None:
    verdict = policy.decide(rule, BearerRefused("token expired"))
    assert verdict.decision is Decision.DENY
    assert verdict.error == "invalid_token" and verdict.reason == "token expired"
    assert verdict.principal is None and verdict.headers_to_set == ()


@pytest.mark.parametrize(
    ("rule", "overrides"),
    [
        (ADMIN, {"cognito:groups": ["users"]}),
        (ADMIN, {"cognito:groups": None}),
        (SCOPED, {"scope": "openid read"}),
        (SCOPED, {"scope": None}),
        (CLAIMED, {"dept": "sales"}),
        (CLAIMED, {"dept": None}),
        (MAIL, {"email": "alice@evil.com"}),
        (MAIL, {"email": "alice@evil.com@example.com"}),
        (MAIL, {"email_verified": False}),
        (OPS_HOST, {"cognito:groups": ["admins"]}),
    ],
)
def test_a_principal_the_rule_does_not_permit_is_forbidden(policy: Policy, rule: RuleConfig, overrides: dict[str, Any]) -> None:
    verdict = policy.decide(rule, principal(**overrides))
    assert verdict.decision is Decision.FORBIDDEN
    assert verdict.error == "forbidden" and verdict.reason
    assert verdict.principal is None and verdict.headers_to_set == ()


@pytest.mark.parametrize(
    ("rule", "overrides"),
    [
        (ADMIN, {"cognito:groups": None, "groups": ["admins"]}),  # a generic provider's `groups`
        (SCOPED, {"scope": ["write"]}),
        (CLAIMED, {"dept": ["ops", "eng"]}),
        (MAIL, {"email": "alice@EXAMPLE.com", "email_verified": "true"}),
        (OPS_HOST, {"cognito:groups": ["ops"]}),
    ],
)
def test_each_requirement_can_also_be_met(policy: Policy, rule: RuleConfig, overrides: dict[str, Any]) -> None:
    assert policy.decide(rule, principal(**overrides)).decision is Decision.ALLOW


def test_headers_to_remove_are_always_the_spoofed_headers() -> None:
    renderer = RecordingRenderer()
    policy = make_policy(renderer)
    p = principal()
    verdicts = [
        policy.decide(ADMIN, p),
        policy.decide(PUBLIC, None),
        policy.decide(DEFAULT, None),
        policy.decide(API, None),
        policy.decide(API, BearerRefused("bad")),
        policy.decide(ADMIN, principal(**{"cognito:groups": None})),
        policy.rule_for("GET", "app.example", "/a/%2e%2e/b"),
        policy.anonymous,
    ]
    decisions = {v.decision for v in verdicts if isinstance(v, Verdict)}
    assert decisions == set(Decision)
    for verdict in verdicts:
        assert isinstance(verdict, Verdict)
        assert verdict.headers_to_remove is policy.spoofed
        if verdict.decision is not Decision.ALLOW or verdict.principal is None:
            assert verdict.headers_to_set == ()
    assert renderer.rendered == [p]  # only an ALLOW with a principal is rendered
