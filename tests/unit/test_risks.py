"""Risky but valid settings: each warning fires on what it is about and stays silent on safe values."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.risks import is_anchored, risks, secret_bits, secret_weakness

STRONG = secrets.token_urlsafe(32)  # 43 characters of 256 random bits, as openssl rand -base64 32


def config(**overrides: Any) -> Any:
    data = {
        "listen": "127.0.0.1:8080",
        "public_url": "https://app.example.com",
        "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "https://op.example.com", "client_id": "c"},
        "session": {"secrets": [STRONG]},
        **overrides,
    }
    return parse_config(data, env={})


def lines(**overrides: Any) -> list[str]:
    return [risk.line() for risk in risks(config(**overrides))]


def test_a_careful_config_has_no_warning() -> None:
    assert lines(trusted_proxies=["10.0.0.0/8", "fc00::/7", "192.0.2.7"], rules=[{"path": "regex:^/v[0-9]+/", "scopes": ["api/read"]}]) == []


@pytest.mark.parametrize(
    ("public_url", "warned"),
    [
        ("http://app.example.com", True),
        ("http://10.1.2.3:8080", True),
        ("https://app.example.com", False),
        ("http://localhost:8080", False),
        ("http://127.0.0.1:8080", False),
        ("http://[::1]:8080", False),
        ("http://dev.localhost", False),
    ],
)
def test_plain_http_outside_localhost(public_url: str, warned: bool) -> None:
    found = [line for line in lines(public_url=public_url) if line.startswith("warning: public_url:")]
    assert bool(found) == warned
    if warned:
        assert "session cookie crosses the network in clear text" in found[0]


def test_short_secrets_are_named_by_index_all_of_them() -> None:
    short = secrets.token_urlsafe(24)  # 32 characters: accepted by the config, below a random 43
    found = lines(session={"secrets": [STRONG, short]})
    assert found == ["warning: session.secrets[1]: is 32 characters; a random secret of 43+ (openssl rand -base64 32) "
                     "is safe against offline guessing by anyone holding a cookie, a shorter or chosen one may not be"]  # fmt: skip
    assert not any(STRONG in line or short in line for line in found)  # the warning never shows the secret


@pytest.mark.parametrize("secret", ["ab" * 30, "changeme" * 6, "0" * 64, "Xk9!pQ2#" * 6])
def test_long_secrets_of_few_characters_or_runs_are_weak(secret: str) -> None:
    weakness = secret_weakness(secret)
    assert weakness is not None and weakness.startswith("repeats characters or runs of characters")


def test_random_secrets_are_not_flagged() -> None:
    for _ in range(200):
        assert secret_weakness(secrets.token_urlsafe(32)) is None
        assert secret_weakness(secrets.token_hex(32)) is None
    assert secret_bits("abcd") == 8.0 and secret_bits("aaaa") == 0.0


@pytest.mark.parametrize(
    ("network", "warned"),
    [
        ("0.0.0.0/0", True),
        ("::/0", True),
        ("0.0.0.0/1", True),
        ("8.0.0.0/6", True),
        ("2000::/3", True),
        ("10.0.0.0/8", False),
        ("172.16.0.0/12", False),
        ("fc00::/7", False),
        ("203.0.113.0/24", False),
        ("104.16.0.0/13", False),  # a CDN's range: wide, but listing a provider's ranges is legitimate
    ],
)
def test_trusted_proxies_covering_everything(network: str, warned: bool) -> None:
    found = lines(trusted_proxies=["127.0.0.1", network])
    assert [line.split(":")[1] for line in found] == ([" trusted_proxies[1]"] if warned else [])
    if network.endswith("/0"):
        assert f"{network} trusts every address" in found[0]


@pytest.mark.parametrize(
    ("regex", "anchored"),
    [
        ("^/v[0-9]+/", True),
        ("\\A/api", True),
        ("(?i)^/admin", True),
        ("^/a|^/b", True),
        ("^(/a|/b)", True),
        ("^/[|]x|^/y", True),
        ("/admin", False),
        (".*/admin", False),
        ("^/a|/b", False),  # the second alternative matches anywhere
        ("(^/a)|/b", False),
        ("\\^/a", False),
    ],
)
def test_regex_anchoring(regex: str, anchored: bool) -> None:
    assert is_anchored(regex) is anchored


def test_unanchored_regex_rules_are_named_by_index() -> None:
    found = lines(rules=[{"path": "/healthz", "allow": "anyone"}, {"path": "regex:/public", "allow": "anyone"}])
    assert len(found) == 1 and found[0].startswith("warning: rules[1].path: 'regex:/public' is not anchored with ^")


def test_default_allow_anyone_with_a_provider() -> None:
    assert [line.split(":")[1] for line in lines(default={"allow": "anyone"})] == [" default"]
    without_provider = config(provider=None, default={"allow": "anyone"})
    assert risks(without_provider) == []  # no sign-in at all: nothing is left open by mistake
