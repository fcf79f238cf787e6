"""Fuzzing rule configs and rule decisions.

- parse_config with hostile rule sections (and other sections): only ConfigError escapes;
- a config it accepts compiles into Rules that answer any method/host/path without an exception;
- permits() with any claims: no exception; every requirement a rule states holds when it says yes;
  email_domains never passes an email with 0 or 2+ `@`, or an unverified one.

`derandomize=True` (no example database): the same examples every run — see test_fuzz_sessions.py.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.auth.paths import AmbiguousPath, rule_path
from gateway.auth.rules import Rules, email_domain, permits
from gateway.config import RuleConfig, parse_config
from gateway.errors import ConfigError

FAST = settings(derandomize=True, deadline=None, max_examples=600, suppress_health_check=[HealthCheck.too_slow])

BASE = {
    "listen": "127.0.0.1:8080",
    "public_url": "http://127.0.0.1:8080",
    "upstreams": [{"path": "/", "url": "http://127.0.0.1:9"}],
    "provider": {"issuer": "http://127.0.0.1:9000/us-east-1_Fuzz", "client_id": "gw"},
    "session": {"secrets": ["fuzz-config-secret-0123456789abcdef"]},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["anyone", "deny", "authenticate", "GET", "get post", "/admin", "/admin/**", "regex:^/a", "regex:(", "${X}", "${X:-/d}"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
RULE_KEYS = ["path", "methods", "host", "allow", "unauthenticated", "bearer", "groups", "scopes", "claims", "email_domains"]
regex_paths = st.text(alphabet="ab/.^$()[]|?\\-", max_size=10).map("regex:{}".format)  # no unbounded quantifiers: no backtracking blow-ups
glob_paths = st.lists(st.sampled_from(["admin", "*", "**", "a", "", ".", "%2e", "é", "{x}", "[a]"]), max_size=4).map(lambda p: "/" + "/".join(p))
rule_values = {
    "path": st.one_of(regex_paths, glob_paths, values, st.sampled_from(["regex:a{4294967296}", "regex:" + "(" * 1000 + ")" * 1000])),
    "methods": st.one_of(values, st.lists(st.sampled_from(["GET", "post", "HEAD", "*", "", "PUT"]), max_size=3)),
    "host": st.one_of(values, st.sampled_from(["admin.local", "ADMIN.local.", "", "a:80"])),
    "allow": st.one_of(values, st.just("anyone")),
    "unauthenticated": st.one_of(values, st.sampled_from(["deny", "authenticate"])),
    "bearer": values,
    "groups": values,
    "scopes": values,
    "claims": st.one_of(values, st.dictionaries(st.text(max_size=6), values, max_size=3)),
    "email_domains": values,
}
rule_sections = st.one_of(
    st.fixed_dictionaries({}, optional=rule_values),
    st.dictionaries(st.sampled_from(RULE_KEYS) | st.text(max_size=6) | st.integers(), values, max_size=5),
    values,
)


@FAST
@given(
    rules=st.one_of(st.lists(rule_sections, max_size=5), values),
    default=st.one_of(st.none(), rule_sections),
    extra=st.fixed_dictionaries(
        {},
        optional={
            "endpoints_prefix": values,
            "trusted_proxies": values,
            "allowed_origins": values,
            "identity": st.one_of(values, st.fixed_dictionaries({}, optional={"headers": values, "strip_headers": values})),
            "session": st.fixed_dictionaries({"secrets": st.just(["fuzz-config-secret-0123456789abcdef"])}, optional={"cookie_name": values, "store": values}),
        },
    ),
)
def test_hostile_rule_configs_raise_only_config_error(rules, default, extra):
    data = {**BASE, **extra, "rules": rules}
    if default is not None:
        data["default"] = default
    try:
        config = parse_config(data, env={"X": "/x"})
    except ConfigError as error:
        assert error.problems and all(isinstance(problem, str) for problem in error.problems)
        return
    compiled = Rules(config.rules, config.default_rule)
    for method in ("GET", "HEAD", "POST", "get"):
        for host in ("", "admin.local", "127.0.0.1"):
            for raw in ("/", "/admin", "/admin/x", "/a/b/c", "/%C3%A9", "/a.b"):
                rule = compiled.rule_for(method, host, rule_path(raw))
                assert rule is config.default_rule or rule in config.rules
                permits(rule, {"cognito:groups": ["admins"], "scope": "openid", "email": "a@b.c", "email_verified": True})


# Found by fuzzing: each escaped parse_config as something other than a ConfigError
# (OverflowError, RecursionError), or was accepted and crashed create_app (NaN, infinity).
REFUSED_VALUES = [
    pytest.param({"shutdown_grace": 10**400}, "shutdown_grace", id="duration-int-too-large-for-float"),
    pytest.param({"limits": {"header_timeout": 10**400}}, "limits.header_timeout", id="positive-duration-int-too-large"),
    pytest.param({"rules": [{"path": "regex:a{4294967296}", "allow": "anyone"}]}, "rules[0].path", id="regex-repeat-too-large"),
    pytest.param({"rules": [{"path": "regex:" + "(" * 1000 + ")" * 1000, "allow": "anyone"}]}, "rules[0].path", id="regex-nesting"),
    pytest.param({"session": {**BASE["session"], "max_lifetime": float("nan")}}, "session.max_lifetime", id="max-lifetime-nan"),
    pytest.param({"session": {**BASE["session"], "max_lifetime": float("inf")}}, "session.max_lifetime", id="max-lifetime-inf"),
    pytest.param({"limits": {"header_timeout": float("nan")}}, "limits.header_timeout", id="header-timeout-nan"),
    pytest.param({"refresh": {"before_expiry": float("inf")}}, "refresh.before_expiry", id="before-expiry-inf"),
    pytest.param({"shutdown_grace": "9" * 400 + "d"}, "shutdown_grace", id="string-beyond-a-float"),
]


@pytest.mark.parametrize("extra, key", REFUSED_VALUES)
def test_oversized_and_non_finite_values_are_one_line_naming_the_key(extra, key):
    with pytest.raises(ConfigError) as refused:
        parse_config({**BASE, **extra}, env={})
    assert len(refused.value.problems) == 1 and refused.value.problems[0].startswith(key + ":"), refused.value.problems
    assert len(refused.value.problems[0]) < 200


# --- rule decisions -----------------------------------------------------------------------------

EMAIL_PIECES = ["alice", "a.b", "@", "@@", "example.com", "EXAMPLE.COM", "evil.com", ".", "-", "\n", " ", '"', "%40", "\uff20", "é", "xn--e", "+tag"]
emails = st.one_of(
    st.lists(st.sampled_from(EMAIL_PIECES), max_size=6).map("".join),
    st.text(max_size=30),
    st.builds("{}@{}".format, st.text(max_size=8), st.sampled_from(["example.com", "Example.COM", "example.com.", "sub.example.com"])),
    st.integers(),
    st.none(),
    st.lists(st.just("a@example.com"), max_size=2),
)
claim_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10), st.sampled_from(["admins", "openid", "gold", "true"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=6,
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "email": emails,
        "email_verified": st.sampled_from([True, False, "true", "false", "True", 1, None, []]),
        "cognito:groups": claim_values,
        "groups": claim_values,
        "scope": claim_values,
        "custom:tier": claim_values,
    },
)
rules = st.builds(
    RuleConfig,
    path=st.just("/x"),
    groups=st.lists(st.sampled_from(["admins", "", "a b", "1"]), max_size=2).map(tuple),
    scopes=st.lists(st.sampled_from(["openid", "api/read", ""]), max_size=2).map(tuple),
    claims=st.lists(st.tuples(st.sampled_from(["custom:tier", "email_verified", "sub"]), st.lists(st.sampled_from(["gold", "true", "1", "", "None"]), min_size=1, max_size=2).map(tuple)), max_size=2).map(tuple),
    email_domains=st.lists(st.sampled_from(["example.com", "evil.com", "sub.example.com", "example.com."]), max_size=2).map(tuple),
)


@FAST
@example(RuleConfig(path="/x", email_domains=("example.com",)), {"email": "a@evil.com@example.com", "email_verified": True})
@example(RuleConfig(path="/x", email_domains=("example.com",)), {"email": "a@example.com\n", "email_verified": True})
@example(RuleConfig(path="/x", email_domains=("example.com",)), {"email": "a%40evil.com@example.com", "email_verified": "True"})
@given(rules, claims)
def test_permits_never_raises_and_every_requirement_holds(rule, claims):
    allowed = permits(rule, claims)
    if not allowed:
        return
    if rule.email_domains:
        email = claims.get("email")
        assert isinstance(email, str) and email.count("@") == 1, email
        assert claims.get("email_verified") in (True, "true")
        assert not any(ch in email for ch in "\n\r \"\x00") and email.isascii()
        assert email.rsplit("@", 1)[1].lower() in rule.email_domains
    if rule.groups:
        raw = claims.get("cognito:groups") or claims.get("groups")
        assert raw is not None and raw != []


@FAST
@given(emails)
def test_email_domain_is_none_unless_one_plain_at(email):
    domain = email_domain(email)
    if domain is not None:
        assert isinstance(email, str) and email.count("@") == 1
        assert email.lower().endswith("@" + domain) and all(ch in string.ascii_lowercase + string.digits + ".-" for ch in domain)


@FAST
@given(st.text(max_size=30), st.sampled_from(["GET", "HEAD", "POST", "DELETE"]), st.sampled_from(["", "admin.local", "other"]))
def test_rule_for_any_decoded_path(raw, method, host):
    config = parse_config({**BASE, "rules": [
        {"path": "/public/**", "allow": "anyone"},
        {"path": "/admin", "groups": ["admins"], "methods": ["GET"], "host": "admin.local"},
        {"path": "regex:^/api/v[0-9]+/", "bearer": True, "unauthenticated": "deny"},
        {"path": "/a/*/c"},
    ]}, env={})
    compiled = Rules(config.rules, config.default_rule)
    try:
        path = rule_path("/" + raw)
    except AmbiguousPath:
        return
    rule = compiled.rule_for(method, host, path)
    if rule.allow_anyone:  # only /public and what is below it is open
        assert path == "/public" or path.startswith("/public/")
