"""Path normalization, rule matching and authorization as pure functions."""

import pytest

from gateway.auth.paths import AmbiguousPath, rule_path
from gateway.auth.rules import Rules, compile_path, permits
from gateway.config import RuleConfig

BYPASSES = [
    "/public/../admin",
    "/public/./../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/%61dmin",
    "/adm%69n",
    "/admin%2Fsettings",
    "/public%2f..%2fadmin",
    "/public%5C..%5Cadmin",
    "/public\\..\\admin",
    "//admin",
    "/public//admin",
    "/admin;x",
    "/admin;jsessionid=1",
    "/public/%252e%252e/admin",
    "/admin%00.html",
    "/admin%0a",
    "/%C0%AE%C0%AE/admin",
    "/admin/.",
    "/admin/..",
    "admin",
]

KEPT = [
    ("/", "/"),
    ("/admin/settings", "/admin/settings"),
    ("/caf%C3%A9/menu", "/café/menu"),
    ("/files/a%20b.txt", "/files/a b.txt"),
    ("/a.b/c-d_e~f", "/a.b/c-d_e~f"),
    ("/search/%3Fq", "/search/?q"),
]


@pytest.mark.parametrize("raw", BYPASSES)
def test_ambiguous_paths_are_refused(raw):
    with pytest.raises(AmbiguousPath):
        rule_path(raw)


@pytest.mark.parametrize("raw, decoded", KEPT)
def test_plain_paths_are_decoded_for_matching(raw, decoded):
    assert rule_path(raw) == decoded


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("/healthz", "/healthz", True),
        ("/healthz", "/healthz/", True),
        ("/healthz", "/healthz//", False),
        ("/admin/", "/admin", True),
        ("/api/*", "/api/users", True),
        ("/api/*", "/api/users/1", False),
        ("/api/*", "/api", False),
        ("/admin/**", "/admin", True),
        ("/admin/**", "/admin/", True),
        ("/admin/**", "/admin/a/b/c", True),
        ("/admin/**", "/administrator", False),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/*.css", "/a/site.css", True),
        ("/a/*.css", "/a/b/site.css", False),
        ("/a.b", "/aXb", False),
        ("regex:^/v[0-9]+/", "/v2/items", True),
        ("regex:^/v[0-9]+/", "/x/v2/items", False),
    ],
)
def test_path_patterns(pattern, path, matches):
    assert bool(compile_path(pattern)(path)) is matches


def test_first_match_wins_with_methods_and_hosts():
    rules = Rules(
        (
            RuleConfig(path="/api/**", methods=("GET",), allow_anyone=True),
            RuleConfig(path="/api/**", host="admin.example", groups=("admins",)),
            RuleConfig(path="/api/**", unauthenticated="deny"),
        ),
        RuleConfig(path=None),
    )
    assert rules.rule_for("GET", "x", "/api/a").allow_anyone
    assert rules.rule_for("POST", "admin.example", "/api/a").groups == ("admins",)
    assert rules.rule_for("POST", "x", "/api/a").unauthenticated == "deny"
    assert rules.rule_for("GET", "x", "/other").path is None


ALICE = {"cognito:groups": ["admins", "staff"], "scope": "openid api/read", "email": "alice@Example.com", "email_verified": True, "custom:department": "engineering", "tier": ["gold", "beta"]}


@pytest.mark.parametrize(
    "rule, allowed",
    [
        (RuleConfig(path="/"), True),
        (RuleConfig(path="/", groups=("admins", "other")), True),
        (RuleConfig(path="/", groups=("finance",)), False),
        (RuleConfig(path="/", scopes=("api/read",)), True),
        (RuleConfig(path="/", scopes=("api/write",)), False),
        (RuleConfig(path="/", claims=(("custom:department", ("engineering", "finance")),)), True),
        (RuleConfig(path="/", claims=(("custom:department", ("finance",)),)), False),
        (RuleConfig(path="/", claims=(("tier", ("beta",)),)), True),
        (RuleConfig(path="/", claims=(("missing", ("x",)),)), False),
        (RuleConfig(path="/", claims=(("email_verified", ("true",)),)), True),
        (RuleConfig(path="/", email_domains=("example.com",)), True),
        (RuleConfig(path="/", email_domains=("example.org",)), False),
        (RuleConfig(path="/", groups=("admins",), email_domains=("example.org",)), False),
    ],
)
def test_permits(rule, allowed):
    assert permits(rule, ALICE) is allowed


def test_unverified_email_never_satisfies_a_domain_rule():
    assert not permits(RuleConfig(path="/", email_domains=("example.com",)), {**ALICE, "email_verified": "false"})
