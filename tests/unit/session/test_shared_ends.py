"""Ended sessions shared through a real Redis: published, heard, loaded at start and after a drop."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.session.ends import Ended, EndedSessions
from gateway.session.model import SessionState, SignedIn
from gateway.session.shared_ends import CHANNEL, KEY, RedisEnds, read_all

from tests.fixtures.redis import RedisServer

LIFETIME = 3600.0


def state() -> SessionState:
    now = time.time()
    return SessionState(SignedIn("id", "at", "rt", now + 3600, now - 5), now - 5, now, secrets.token_urlsafe(16))


class Instance:
    def __init__(self, url: str) -> None:
        self.client = redis.from_url(url)
        self.ends = EndedSessions(LIFETIME)
        self.shared = self.ends.publisher = RedisEnds(self.client, self.ends)
        self.task = asyncio.create_task(self.shared.follow())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()


@pytest.fixture
async def instances(redis_server: RedisServer) -> AsyncIterator[list[Instance]]:
    made = [Instance(redis_server.url), Instance(redis_server.url)]
    await asyncio.gather(*(asyncio.wait_for(i.shared.synced.wait(), 5) for i in made))
    yield made
    for instance in made:
        await instance.close()


async def eventually(check: object, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def test_a_session_ended_on_one_instance_is_ended_on_the_other_within_a_second(instances: list[Instance]) -> None:
    first, second = instances
    session = state()
    await first.ends.end_session(session)
    assert first.ends.ended(session)
    await eventually(lambda: second.ends.ended(session))


async def test_an_instance_starting_later_loads_what_was_ended_before(redis_server: RedisServer, instances: list[Instance]) -> None:
    session = state()
    await instances[0].ends.end_session(session)
    late = Instance(redis_server.url)
    try:
        await asyncio.wait_for(late.shared.synced.wait(), 5)
        assert late.ends.ended(session)
    finally:
        await late.close()


async def test_after_its_subscription_drops_an_instance_catches_up(redis_server: RedisServer, instances: list[Instance]) -> None:
    first, second = instances
    await redis_server.client.client_kill_filter(_type="pubsub")
    session = state()
    await first.ends.end_session(session)  # published while the other may not be listening
    await eventually(lambda: second.ends.ended(session), within=5.0)
    await eventually(second.shared.synced.is_set, within=5.0)


async def test_garbage_on_the_channel_is_ignored(redis_server: RedisServer, instances: list[Instance]) -> None:
    for junk in ("", "nan s:x", "inf u:y", "1 q:z", "not-a-number s:x", "1"):
        await redis_server.client.publish(CHANNEL, junk)
    session = state()
    await instances[0].ends.end_session(session)
    await eventually(lambda: instances[1].ends.ended(session))
    assert len(instances[1].ends) == 1


async def test_the_set_keeps_only_what_can_still_matter(redis_server: RedisServer) -> None:
    await redis_server.client.zadd(KEY, {"s:old": time.time() - LIFETIME - 10, "s:new": time.time()})
    assert [r.name for r in await read_all(redis_server.client, LIFETIME)] == ["new"]
    assert 0 < await redis_server.client.ttl(KEY) or await redis_server.client.ttl(KEY) == -1


async def test_redis_down_keeps_the_local_record(caplog: pytest.LogCaptureFixture) -> None:
    client = redis.from_url("redis://127.0.0.1:1/0")
    ends = EndedSessions(LIFETIME)
    ends.publisher = RedisEnds(client, ends)
    session = state()
    await ends.end(Ended("s", session.sid, time.time()))
    assert ends.ended(session)
    assert "could not share an ended session" in caplog.text
    await client.aclose()


async def test_records_made_while_redis_was_down_reach_the_fleet_when_it_is_back(redis_server: RedisServer, instances: list[Instance]) -> None:
    first, second = instances
    await redis_server.client.config_set("requirepass", "paused")  # the instances' commands now fail, as if Redis were down
    try:
        await redis_server.client.client_kill_filter(_type="normal", skipme=True)
        await redis_server.client.client_kill_filter(_type="pubsub")
        session = state()
        await first.ends.end_session(session)
        assert first.ends.ended(session) and first.shared.pending
    finally:
        await redis_server.client.config_set("requirepass", "")
    await eventually(lambda: second.ends.ended(session), within=8.0)
    assert first.shared.pending == []


async def test_on_a_redis_cluster_too(redis_cluster) -> None:
    from redis.asyncio.cluster import RedisCluster

    instances = []
    for _ in range(2):
        ends = EndedSessions(LIFETIME)
        client = RedisCluster.from_url(redis_cluster.url)
        shared = ends.publisher = RedisEnds(client, ends)
        instances.append((ends, shared, client, asyncio.create_task(shared.follow())))
    try:
        await asyncio.gather(*(asyncio.wait_for(shared.synced.wait(), 5) for _, shared, _, _ in instances))
        session = state()
        await instances[0][0].end_session(session)
        await eventually(lambda: instances[1][0].ended(session))
    finally:
        for _, _, client, task in instances:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()
