"""Which sessions a user has, in a real Redis: recorded sealed, found by username or sub, forgotten."""

from __future__ import annotations

import base64
import json
import secrets
import time

import redis.asyncio as redis

from gateway.session.crypto import SecretBox
from gateway.session.model import SessionState, SignedIn
from gateway.session.user_index import UserIndex, user_key

from tests.fixtures.redis import RedisServer

BOX = SecretBox((secrets.token_urlsafe(32),), "index")


def state(sub: str = "sub-1", username: str = "alice", started_ago: float = 5.0, refresh_token: str = "rt-1") -> SessionState:
    now = time.time()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub, "cognito:username": username}).encode()).decode().rstrip("=")
    tokens = SignedIn(f"e30.{payload}.x", "at", refresh_token, now + 3600, now - started_ago)
    return SessionState(tokens, now - started_ago, now, secrets.token_urlsafe(16))


async def test_sessions_are_found_by_username_or_sub_oldest_first(redis_server: RedisServer) -> None:
    client = redis.from_url(redis_server.url)
    index = UserIndex(client, BOX, 3600)
    older, newer = state(started_ago=50, refresh_token="rt-old"), state(started_ago=5)
    await index.record(newer)
    await index.record(older)
    await index.record(state(sub="sub-2", username="bob"))
    assert await index.sub_of("alice") == "sub-1" and await index.sub_of("sub-1") == "sub-1"
    found = await index.sessions("sub-1")
    assert [e.sid for e in found] == [older.sid, newer.sid]
    assert found[0].refresh_token == "rt-old" and found[0].username == "alice"
    raw = json.dumps({k.decode(): v.decode() for k, v in (await redis_server.client.hgetall(user_key("sub-1"))).items()})
    assert "rt-old" not in raw and "alice" not in raw  # sealed: a Redis dump shows neither tokens nor names
    assert 0 < await redis_server.client.ttl(user_key("sub-1")) <= 3601
    await client.aclose()


async def test_a_signed_out_session_leaves_the_index_and_forget_removes_all(redis_server: RedisServer) -> None:
    client = redis.from_url(redis_server.url)
    index = UserIndex(client, BOX, 3600)
    first, second = state(), state()
    await index.record(first)
    await index.record(second)
    await index.forget_session(first)
    assert [e.sid for e in await index.sessions("sub-1")] == [second.sid]
    await index.forget("sub-1")
    assert await index.sessions("sub-1") == []
    await client.aclose()


async def test_entries_sealed_with_another_secret_or_expired_are_skipped(redis_server: RedisServer) -> None:
    client = redis.from_url(redis_server.url)
    await UserIndex(client, SecretBox((secrets.token_urlsafe(32),), "index"), 3600).record(state())
    short = UserIndex(client, BOX, 1)
    await short.record(state(started_ago=10))  # its max_lifetime is long past
    assert await UserIndex(client, BOX, 3600).sessions("sub-1") == []
    await client.aclose()


async def test_redis_down_is_logged_not_raised_when_recording(caplog: object) -> None:
    client = redis.from_url("redis://127.0.0.1:1/0")
    await UserIndex(client, BOX, 3600).record(state())
    await client.aclose()


async def test_a_name_chosen_by_another_user_cannot_redirect_a_revocation(redis_server: RedisServer) -> None:
    """OIDC's preferred_username is the user's choice: only Cognito's username (unique in the pool) names a user."""
    client = redis.from_url(redis_server.url)
    index = UserIndex(client, BOX, 3600)
    await index.record(state(sub="alice-sub", username="alice"))
    now = time.time()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "mallory-sub", "preferred_username": "alice"}).encode()).decode().rstrip("=")
    mallory = SessionState(SignedIn(f"e30.{payload}.x", "at", "rt", now + 3600, now), now, now, secrets.token_urlsafe(16))
    await index.record(mallory)
    assert await index.sub_of("alice") == "alice-sub"
    await index.record(state(sub="x", username="alice-sub"))  # a Cognito username equal to someone's sub
    assert await index.sub_of("alice-sub") == "alice-sub"  # indexed as a sub: taken as one
    await client.aclose()
