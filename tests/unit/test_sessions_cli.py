"""`sessions list|revoke` (gateway/sessions_cli.py): the lines printed, the arguments, the exit codes, and
what revoke does when the provider cannot revoke, against a real Redis. The fleet, the local Cognito
and the command as a subprocess: tests/integration/test_sessions_cli.py."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path

import pytest
import redis.asyncio as redis
import yaml

from gateway.__main__ import main
from gateway.config import Config, parse_config
from gateway.session.crypto import SecretBox
from gateway.session.model import SessionState, SignedIn
from gateway.session.user_index import IndexedSession, UserIndex
from gateway.sessions_cli import (
    NEEDS_REDIS,
    PARTLY,
    Listed,
    Revocations,
    list_lines,
    list_sessions,
    redis_named,
    revoke_sessions,
    revoke_summary,
    session_line,
    utc,
)

from tests.fixtures.redis import RedisServer

SECRET = secrets.token_urlsafe(32)
SUB = "2f1b3c4d-0000-4000-8000-0123456789ab"
T0 = 1_714_554_723.0  # 2024-05-01T09:12:03Z


def entry(sid: str = "Qm9vA1b2C3d4E5f6", refresh_token: str | None = "rt-secret-value", username: str = "alice") -> IndexedSession:
    return IndexedSession(sid, SUB, username, T0, T0 + 12 * 3600, T0 + 3000, refresh_token)


def config(session: dict[str, object] | None = None, provider: dict[str, object] | None = None) -> Config:
    return parse_config({
        "public_url": "http://127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": provider or {"issuer": "http://127.0.0.1:1/pool", "client_id": "gw-public", "timeout": "1s"},
        "session": {"secrets": [SECRET], **(session or {})},
    }, env={})  # fmt: skip


def test_a_session_line_shows_times_in_utc_a_prefix_of_the_id_and_never_a_token():
    line = session_line(Listed(entry(), ended=False))
    assert line == (
        "session Qm9vA1b2  started 2024-05-01T09:12:03Z  refreshed 2024-05-01T10:02:03Z  expires 2024-05-01T21:12:03Z"
        "  user alice  refresh token: yes  active"
    )
    assert "rt-secret-value" not in line and "Qm9vA1b2C3" not in line
    assert session_line(Listed(entry(refresh_token=None, username=""), ended=True)).endswith("user -  refresh token: no  ended")
    assert utc(0) == "1970-01-01T00:00:00Z"


def test_list_ends_with_a_summary_naming_the_user_and_the_sub():
    lines = list_lines("alice", SUB, [Listed(entry(), False), Listed(entry("Zz9vA1b2C3d4E5f6"), True)])
    assert len(lines) == 3 and lines[-1] == f"alice (sub {SUB}): 2 sessions (1 ended)"
    assert list_lines("alice", SUB, [Listed(entry(), False)])[-1] == f"alice (sub {SUB}): 1 session"
    assert list_lines("alice", "alice", []) == ["alice: no sessions"]
    assert list_lines(SUB, SUB, []) == [f"{SUB}: no sessions"]  # given as a sub: not named twice


def test_revoke_summaries():
    who = f"alice (sub {SUB})"
    assert revoke_summary("alice", SUB, 3, Revocations(revoked=3)) == (
        f"{who}: 3 sessions ended on every instance; 3 refresh tokens revoked at the provider"
    )
    assert revoke_summary("alice", SUB, 1, Revocations(revoked=1)) == (
        f"{who}: 1 session ended on every instance; 1 refresh token revoked at the provider"
    )
    partly = Revocations(revoked=1, failed=2, reasons=["refresh token revocation answered 503"] * 2)
    assert revoke_summary("alice", SUB, 3, partly) == (
        f"{who}: 3 sessions ended on every instance; 1 refresh token revoked at the provider,"
        " 2 not (refresh token revocation answered 503): run again to retry"
    )
    assert revoke_summary("alice", SUB, 2, Revocations(without_token=2)) == f"{who}: 2 sessions ended on every instance (2 without a refresh token)"
    assert revoke_summary("alice", SUB, 2, Revocations(failed=2, unsupported=True)) == (
        f"{who}: 2 sessions ended on every instance; the provider has no revocation endpoint: 2 refresh tokens stay valid there until they expire"
    )
    assert revoke_summary("carol", "carol", 0, Revocations()) == (
        "carol: no indexed sessions; any session of carol begun before now is ended on every instance"
    )


def test_redis_is_named_without_its_password():
    assert redis_named(config({"store": "redis", "redis_url": f"redis://:{SECRET}@cache:6379/0"}).session) == "redis://***@cache:6379/0"
    sentinels = config({"store": "redis", "redis_url": "redis://mymaster/0", "redis_sentinels": ["10.0.0.1:26379", "10.0.0.2:26379"]})
    assert redis_named(sentinels.session) == "redis://mymaster/0 via 10.0.0.1:26379, 10.0.0.2:26379"


def write(tmp_path: Path, session: dict[str, object]) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "public_url": "http://127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "http://127.0.0.1:1/pool", "client_id": "gw-public"}, "session": {"secrets": [SECRET], **session},
    }))  # fmt: skip
    return str(path)


def test_without_redis_both_actions_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = write(tmp_path, {"store": "cookie"})
    for action in ("list", "revoke"):
        assert main(["sessions", action, "--config", path, "--user", "alice"]) == 2
        out, err = capsys.readouterr()
        assert (out, err) == ("", NEEDS_REDIS + "\n")


def test_gateway_config_is_honoured_and_user_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("GATEWAY_CONFIG", write(tmp_path, {}))
    assert main(["sessions", "list", "--user", "alice"]) == 2  # the file was read: no Redis in it
    assert "needs one" in capsys.readouterr().err
    assert main(["sessions", "revoke", "--user", ""]) == 2
    assert capsys.readouterr().err == "sessions: --user is empty: give a username or a sub\n"
    with pytest.raises(SystemExit) as exited:
        main(["sessions", "revoke"])
    assert exited.value.code == 2 and "--user" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sessions", "forget", "--user", "alice"])
    monkeypatch.delenv("GATEWAY_CONFIG")
    with pytest.raises(SystemExit, match="GATEWAY_CONFIG"):
        main(["sessions", "list", "--user", "alice"])


def test_a_bad_config_is_one_line_per_problem_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"listen": "nowhere", "upstreams": [{"url": "ftp://x"}]}))
    assert main(["sessions", "list", "--config", str(path), "--user", "alice"]) == 1
    assert capsys.readouterr().err.count("\n") >= 2


def state(sub: str, username: str, refresh_token: str | None, started_ago: float = 5.0) -> SessionState:
    now = time.time()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub, "cognito:username": username}).encode()).decode().rstrip("=")
    tokens = SignedIn(f"e30.{payload}.x", "at", refresh_token, now + 3600, now - started_ago)
    return SessionState(tokens, now - started_ago, now, secrets.token_urlsafe(16))


async def test_provider_down_ends_the_sessions_keeps_the_tokens_to_retry_and_exits_3(redis_server: RedisServer):
    settings = config({"store": "redis", "redis_url": redis_server.url})
    client = redis.from_url(redis_server.url)
    index = UserIndex(client, SecretBox((SECRET,), "index"), settings.session.max_lifetime)
    token = secrets.token_urlsafe(32)
    await index.record(state(SUB, "alice", token))
    await index.record(state(SUB, "alice", None))
    lines, code = await revoke_sessions(settings, client, "alice")
    assert code == PARTLY and len(lines) == 1 and token not in lines[0]
    assert lines[0].startswith(f"alice (sub {SUB}): 2 sessions ended on every instance; 0 refresh tokens revoked at the provider, 1 not (provider unreachable")
    assert lines[0].endswith(": run again to retry (1 without a refresh token)"), lines[0]
    assert await redis_server.client.zscore("gw:ended", "u:" + SUB) is not None
    # The session without a token is done with; the other stays in the index (as ended) for the next run.
    kept = await index.sessions(SUB)
    assert [entry.refresh_token for entry in kept] == [token]
    listed = await list_sessions(settings, client, "alice")
    assert listed[0].endswith("refresh token: yes  ended") and listed[-1] == f"alice (sub {SUB}): 1 session (1 ended)"
    await client.aclose()


async def test_a_session_ended_by_sign_out_is_listed_as_ended(redis_server: RedisServer):
    settings = config({"store": "cookie", "redis_url": redis_server.url})
    client = redis.from_url(redis_server.url)
    index = UserIndex(client, SecretBox((SECRET,), "index"), settings.session.max_lifetime)
    signed_out, live = state(SUB, "alice", "rt-1"), state(SUB, "alice", "rt-2", started_ago=1)
    await index.record(signed_out)
    await index.record(live)
    await client.zadd("gw:ended", {"s:" + signed_out.sid: time.time()})
    lines = await list_sessions(settings, client, "alice")
    assert [line.rsplit("  ", 1)[1] for line in lines[:2]] == ["ended", "active"]
    assert lines[0].startswith("session " + signed_out.sid[:8])
    await client.aclose()
