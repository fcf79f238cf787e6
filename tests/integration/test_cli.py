"""The command line as an operator uses it: check, and start-up failures on bad config."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = secrets.token_urlsafe(32)  # made here: a secret written in the repository is refused beyond loopback


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_check_prints_cognito_endpoints_and_masks_secrets(tmp_path):
    path = write(tmp_path, {
        "public_url": "https://app.example.com", "upstreams": [{"url": "http://app:8000"}],
        "provider": {"cognito": {"region": "eu-west-1", "user_pool_id": "eu-west-1_AbCdEf123", "domain": "https://auth.example.com"},
                     "client_id": "1example23456789", "client_secret": "very-secret-value"},
        "session": {"secrets": [SECRET]},
    })  # fmt: skip
    result = gateway("check", "--config", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123" in out
    assert "authorize: https://auth.example.com/oauth2/authorize" in out and "logout: https://auth.example.com/logout" in out
    assert "very-secret-value" not in out and SECRET not in out and "***" in out


async def test_check_resolves_an_issuer_by_discovery(idp, tmp_path):
    path = write(tmp_path, {
        "public_url": "http://localhost:8080", "upstreams": [{"url": "http://app:8000"}],
        "provider": {"issuer": idp.issuer, "client_id": "test-public"}, "session": {"secrets": [SECRET]},
    })  # fmt: skip
    import asyncio

    result = await asyncio.to_thread(gateway, "check", "--config", path)
    assert result.returncode == 0, result.stderr
    assert f"token: {idp.url}/oauth2/token" in result.stdout and f"signup: {idp.url}/signup" in result.stdout


def test_bad_config_fails_with_one_line_per_problem(tmp_path):
    path = write(tmp_path, {"listen": "nowhere", "upstreams": [{"url": "ftp://x", "bogus": 1}]})
    for command in ("check", "run"):
        result = gateway(command, "--config", path)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "listen: must be HOST:PORT, e.g. 0.0.0.0:8080 (got 'nowhere')",
            "upstreams[0].url: not an http(s) URL: 'ftp://x'",
            "upstreams[0].bogus: unknown key",
        ]


def test_missing_config_is_a_clear_error(tmp_path):
    result = gateway("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_check_and_run_refuse_the_demo_secret_on_a_reachable_listener():
    """The shipped demo config (also in the Docker image) cannot serve the world with its published fallback secret."""
    demo = str(ROOT / "config" / "demo.yaml")
    reachable = {"GATEWAY_LISTEN": "0.0.0.0:18080", "SESSION_SECRET": ""}
    for command in ("check", "run"):
        result = gateway(command, "--config", demo, env=reachable)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "session.secrets[0]: is published in the cognito-gateway repository" in result.stderr
    assert gateway("check", "--config", demo, env={"GATEWAY_LISTEN": "127.0.0.1:18080", "SESSION_SECRET": ""}).returncode == 0


def test_check_warns_about_risky_settings_and_still_passes(tmp_path):
    short = secrets.token_urlsafe(24)  # 32 characters: accepted, but below a random 43
    path = write(tmp_path, {
        "public_url": "http://app.example.com", "upstreams": [{"url": "http://app:8000"}], "trusted_proxies": ["0.0.0.0/0"],
        "provider": {"issuer": f"http://127.0.0.1:{free_port()}", "client_id": "c"}, "session": {"secrets": [short]},
        "rules": [{"path": "regex:/public/", "allow": "anyone"}],
    })  # fmt: skip
    result = gateway("check", "--config", path)
    assert result.returncode == 0, result.stderr
    warnings = [line.split(":", 2)[1].strip() for line in result.stderr.splitlines()]
    assert warnings == ["public_url", "session.secrets[0]", "trusted_proxies[0]", "rules[0].path"], result.stderr
    assert all(line.startswith("warning: ") for line in result.stderr.splitlines()) and short not in result.stderr
    assert result.stdout.splitlines()[-1] == f"{path}: OK (4 warnings)"


def test_doctor_refuses_a_bad_config_like_check(tmp_path):
    path = write(tmp_path, {"upstreams": [{"url": "http://app:8000"}], "provider": {"issuer": "https://op.example.com"}})
    result = gateway("doctor", "--config", path)
    assert result.returncode == 1 and "provider.client_id: is required" in result.stderr and result.stdout == ""
