"""A gateway reachable beyond loopback never runs with a session secret published in this repository."""

from __future__ import annotations

import secrets

import re
import subprocess
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.published_secrets import is_published_secret

ROOT = Path(__file__).resolve().parents[2]
DEMO_FALLBACK = "demo-only-session-secret-change-me-0123456789"
# Literal secrets as this repository writes them: `${SESSION_SECRET:-…}` fallbacks in configs, and
# `…SESSION_SECRET = "…"` / `SECRET = "…"` constants of 32+ characters in code.
_LITERALS = (
    re.compile(r"\$\{SESSION_SECRET:-([^}]{32,})\}"),
    re.compile(r"\bSECRET\s*=\s*\"([^\"]{32,})\""),
    re.compile(r"\bSECRET\s*=\s*\"(.)\"\s*\*\s*(\d+)"),
)


def _config(listen: str, secret: str) -> dict:
    return {
        "listen": listen,
        "public_url": "https://app.example.com",
        "upstreams": [{"path": "/", "url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "http://127.0.0.1:9000/us-east-1_LocalPool", "client_id": "c"},
        "session": {"secrets": [secret]},
    }


def _repository_literals() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found: set[str] = set()
    for name in files:
        if not name.endswith((".py", ".yaml", ".yml", ".md", ".env", "Dockerfile")) or "node_modules" in name:
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for pattern in _LITERALS:
            for match in pattern.finditer(text):
                found.add(match.group(1) * int(match.group(2)) if pattern.groups == 2 else match.group(1))
    return found


def test_every_secret_written_in_the_repository_is_known_as_published() -> None:
    literals = _repository_literals()
    assert DEMO_FALLBACK in literals  # the scan finds what it is meant to find
    assert [s for s in literals if not is_published_secret(s)] == []


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080", "app.internal:8080"])
def test_a_published_secret_on_a_reachable_listener_is_refused_naming_the_key(listen: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config(listen, DEMO_FALLBACK))
    assert [p for p in error.value.problems if p.startswith("session.secrets[0]: is published")]


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:8080"])
def test_loopback_listeners_may_use_the_demo_secret(listen: str) -> None:
    assert parse_config(_config(listen, DEMO_FALLBACK)).session.secrets == (DEMO_FALLBACK,)


def test_own_secrets_pass_and_placeholders_do_not() -> None:
    assert parse_config(_config("0.0.0.0:8080", secrets.token_urlsafe(32))).listen_port == 8080
    assert is_published_secret("please-change-me-before-production-000")


def test_the_shipped_demo_config_cannot_serve_beyond_loopback_with_its_fallback() -> None:
    from gateway.config import load_config

    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "config" / "demo.yaml", env={"GATEWAY_LISTEN": "0.0.0.0:8080"})
    assert any("session.secrets[0]" in p for p in error.value.problems)
    assert load_config(ROOT / "config" / "demo.yaml", env={}).listen_host == "127.0.0.1"
