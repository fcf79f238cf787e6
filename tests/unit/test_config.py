"""Every class of config error names its key; valid files resolve with defaults."""

import secrets
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config, parse_duration, parse_size

UP = {"upstreams": [{"url": "http://app:8000"}]}
SECRET = "x" * 32
PROVIDER = {"issuer": "http://127.0.0.1:9000/us-east-1_Pool", "client_id": "abc"}


def problems(data, env=None):
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env or {})
    return info.value.problems


def test_minimal_config_resolves_with_defaults():
    config = parse_config(UP, env={})
    assert config.listen_host == "0.0.0.0" and config.listen_port == 8080
    assert config.upstreams[0].path == "/" and config.upstreams[0].read_timeout == 60
    assert config.provider is None and not config.auth_enabled
    assert config.session.cookie_name == "_gw_session" and config.session.max_lifetime == 12 * 3600


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("5m", 300), ("12h", 43200), ("1d", 86400), ("250ms", 0.25), (7, 7), ("1.5s", 1.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, size", [("64KB", 65536), ("10MiB", 10 * 1024**2), ("1g", 1024**3), (512, 512)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, "upstreams: is required: at least one {path, url}"),
        ({"upstreams": [{"url": "ftp://x"}]}, "upstreams[0].url: not an http(s) URL: 'ftp://x'"),
        ({"upstreams": [{"path": "api", "url": "http://a"}]}, "upstreams[0].path: must start with / (got 'api')"),
        ({"upstreams": [{}]}, "upstreams[0].url: is required"),
        ({"upstreams": "http://a"}, "upstreams: must be a list"),
        ({**UP, "listen": "nowhere"}, "listen: must be HOST:PORT, e.g. 0.0.0.0:8080 (got 'nowhere')"),
        ({**UP, "colour": "blue"}, "colour: unknown key"),
        ({"upstreams": [{"url": "http://a", "timeout": 3}]}, "upstreams[0].timeout: unknown key"),
        ({"upstreams": [{"url": "http://a", "read_timeout": "soon"}]}, "upstreams[0].read_timeout: not a duration like 90s, 5m or 12h: 'soon'"),
        ({"upstreams": [{"url": "http://a", "read_timeout": 0}]}, "upstreams[0].read_timeout: must be greater than zero"),
        ({"upstreams": [{"url": "http://a", "max_body_size": "lots"}]}, "upstreams[0].max_body_size: not a size like 64KB or 10MB: 'lots'"),
        ({**UP, "trusted_proxies": ["10.0.0.0/8", "nope"]}, "trusted_proxies: not an IP address or CIDR: 'nope'"),
        ({**UP, "session": {"store": "memcached"}}, "session.store: must be one of cookie, redis (got 'memcached')"),
        ({**UP, "session": {"secrets": ["short"]}}, "session.secrets: each secret must be at least 32 characters (try: openssl rand -base64 32)"),
        ({**UP, "session": {"redis_url": "http://r"}}, "session.redis_url: not a redis:// URL: 'http://r'"),
        ({**UP, "limits": {"max_header_size": "big"}}, "limits.max_header_size: not a size like 64KB or 10MB: 'big'"),
        ({**UP, "identity": {"alb_compatible": "yes"}}, "identity.alb_compatible: must be true or false"),
        ({**UP, "identity": {"headers": {"Bad Header": "sub"}}}, "identity.headers: not a header name: 'Bad Header'"),
        ({**UP, "rules": [{"path": "regex:("}]}, "rules[0].path: bad regular expression: missing ), unterminated subpattern at position 0"),
        ({**UP, "rules": [{"path": "admin"}]}, "rules[0].path: must start with / or regex: (got 'admin')"),
        ({**UP, "rules": [{"path": "/a", "allow": "everyone"}]}, "rules[0].allow: must be one of anyone (got 'everyone')"),
        ({**UP, "rules": [{"path": "/a", "unauthenticated": "maybe"}]}, "rules[0].unauthenticated: must be one of authenticate, deny (got 'maybe')"),
        ({**UP, "rules": [{"path": "/a"}]}, "provider: is required: rules[0] need sign-in"),
        ({**UP, "default": {"path": "/x"}}, "default.path: the default rule matches every path; remove path"),
        ({**UP, "provider": {"client_id": "a"}}, "provider: set exactly one of provider.cognito or provider.issuer"),
        ({**UP, "provider": {"issuer": "http://i"}}, "provider.client_id: is required"),
        ({**UP, "provider": {**PROVIDER, "algorithms": ["HS256"]}}, "provider.algorithms: only asymmetric algorithms are allowed"),
        ({**UP, "provider": {**PROVIDER, "scopes": ["email"]}}, "provider.scopes: must include openid"),
        ({**UP, "provider": PROVIDER}, "session.secrets: is required: at least one secret of 32+ characters"),
        ({**UP, "provider": PROVIDER, "session": {"secrets": [SECRET]}}, "public_url: is required with a provider"),
        (
            {**UP, "provider": {"cognito": {"region": "eu-west-1", "user_pool_id": "us-east-1_Abc", "domain": "https://a.example"}, "client_id": "a"}},
            "provider.cognito.user_pool_id: is in region us-east-1, not eu-west-1",
        ),
        (
            {**UP, "provider": {"cognito": {"region": "eu-west-1", "user_pool_id": "pool", "domain": "https://a.example"}, "client_id": "a"}},
            "provider.cognito.user_pool_id: not a user pool id like eu-west-1_AbCdEf123: 'pool'",
        ),
        ({**UP, "provider": {"cognito": {"region": "eu-west-1"}, "client_id": "a"}}, "provider.cognito.user_pool_id: is required"),
    ],
)
def test_each_problem_names_its_key(data, expected):
    assert any(line.startswith(expected) for line in problems(data)), problems(data)


def test_all_problems_are_reported_at_once():
    found = problems({"listen": "x", "upstreams": [{"url": "ftp://x", "bogus": 1}], "extra": 1})
    assert len(found) == 4


def test_environment_interpolation():
    data = {
        "listen": "${HOST:-127.0.0.1}:${PORT}",
        "upstreams": [{"url": "${APP_URL}"}],
        "provider": {**PROVIDER, "client_secret": "${SECRET:-}"},
        "public_url": "https://app.example",
        "session": {"secrets": ["${SESSION_SECRET}"]},
    }
    config = parse_config(data, env={"PORT": "9999", "APP_URL": "http://app:1", "SESSION_SECRET": SECRET})
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9999)
    assert config.upstreams[0].url == "http://app:1"
    assert config.provider.client_secret is None  # empty default means "not set": a public client
    assert config.session.secrets == (SECRET,)


def test_unset_environment_variable_names_key_and_variable():
    assert "upstreams[0].url: environment variable APP_URL is not set" in problems({"upstreams": [{"url": "${APP_URL}"}]})


def test_file_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.problems[0].startswith(f"{bad}:") and "not valid YAML" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert "cannot read" in info.value.problems[0]


def test_shipped_configs_are_valid():
    for path in Path(__file__).resolve().parents[2].glob("config/*.yaml"):
        if path.name.startswith("idp"):
            continue  # the local Cognito's own config format
        # An operator's own secret: the repository's are refused beyond loopback (test_published_secrets.py).
        load_config(path, env={"SESSION_SECRET": secrets.token_urlsafe(32), "COGNITO_CLIENT_SECRET": "s"})


@pytest.mark.parametrize(
    "provider, kind",
    [
        ({"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"}, "cognito"),
        ({"issuer": "http://127.0.0.1:9000/us-east-1_LocalPool"}, "cognito"),  # the local Cognito
        ({"issuer": "https://accounts.example.com"}, "oidc"),
        ({"issuer": "https://login.example.com/realms/staff"}, "oidc"),
        ({"issuer": "https://accounts.example.com", "kind": "cognito"}, "cognito"),  # an explicit kind wins
        ({"issuer": "http://127.0.0.1:9000/us-east-1_LocalPool", "kind": "oidc"}, "oidc"),
    ],
)
def test_provider_kind_is_detected_from_the_issuer_unless_set(provider, kind):
    config = parse_config({**UP, "listen": "127.0.0.1:8080", "public_url": "http://localhost:8080", "provider": {"client_id": "c", **provider}, "session": {"secrets": [SECRET]}})
    assert config.provider.kind == kind


def test_an_upstream_url_with_credentials_is_refused() -> None:
    """Never sent upstream, and the URL is written in access lines and metric labels."""
    with pytest.raises(ConfigError) as raised:
        parse_config({"upstreams": [{"path": "/", "url": "http://svc:S3cret@app:8000"}]})
    assert raised.value.problems == ["upstreams[0].url: must not hold user:password@; the gateway does not send them"]


def test_operations_keys() -> None:
    config = parse_config({"upstreams": [{"path": "/", "url": "http://app"}], "metrics_listen": "127.0.0.1:9100",
                           "logging": {"format": "json"}, "drain_delay": "2s"})  # fmt: skip
    assert config.metrics_listen == ("127.0.0.1", 9100) and config.logging.format.value == "json" and config.drain_delay == 2
    with pytest.raises(ConfigError) as raised:
        parse_config({"upstreams": [{"path": "/", "url": "http://app"}], "metrics_listen": "0.0.0.0:8080", "logging": {"format": "xml"}})
    assert raised.value.problems == [
        "logging.format: must be one of text, json (got 'xml')",
        "metrics_listen: must be another port than listen: metrics are never served to the public",
    ]


def test_aws_credentials() -> None:
    signed_in = {**UP, "listen": "127.0.0.1:8080", "public_url": "http://127.0.0.1:8080", "provider": PROVIDER, "session": {"secrets": [SECRET]}}
    pool = "eu-west-1:0a1b2c3d-1111-2222-3333-444455556666"
    parsed = parse_config({**signed_in, "aws_credentials": {"identity_pool_id": pool}}, env={}).aws_credentials
    assert parsed is not None and (parsed.region, parsed.endpoint) == ("eu-west-1", "https://cognito-identity.eu-west-1.amazonaws.com/")
    local = {"identity_pool_id": pool, "region": "us-east-1", "endpoint": "http://127.0.0.1:9000"}
    assert parse_config({**signed_in, "aws_credentials": local}, env={}).aws_credentials.endpoint == "http://127.0.0.1:9000/"
    assert parse_config(signed_in, env={}).aws_credentials is None
    assert problems({**signed_in, "aws_credentials": {"identity_pool_id": "eu-west-1_Pool", "region": "Mars", "endpoint": "ftp://x", "roles": 1}}) == [
        "aws_credentials.identity_pool_id: not an identity pool id like us-east-1:0a1b2c3d-1111-2222-3333-444455556666: 'eu-west-1_Pool'",
        "aws_credentials.region: not an AWS region like eu-west-1: 'Mars'",
        "aws_credentials.endpoint: not an http(s) URL: 'ftp://x'",
        "aws_credentials.roles: unknown key",
    ]
    assert problems({**signed_in, "aws_credentials": {}}) == ["aws_credentials.identity_pool_id: is required"]
    assert problems({**UP, "aws_credentials": {"identity_pool_id": pool}}) == ["aws_credentials: needs a provider: the credentials are for the signed-in user"]
