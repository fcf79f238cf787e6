"""Ended sessions shared by a fleet through Redis: a sorted set for the record, pub/sub for the news.

Every record goes into one sorted set (`gw:ended`, member `s:<sid>` or `u:<sub>`, score the time it
ended) and is published on the channel of the same name. Each instance subscribes, then reads the
whole set (so nothing published while it was starting is missed), and from then on applies what it
hears: a request checks memory only, never Redis. When the subscription drops, the instance
subscribes and reads the set again; meanwhile it keeps what it knew (the records already applied
still hold; new ones from elsewhere arrive when Redis is back), and records it made while Redis was
unreachable are written as soon as it is back, before the set is read.

One key and one channel: valid unchanged on a Redis Cluster (PUBLISH reaches every node's
subscribers) and behind Sentinel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from ..ops import metrics
from .ends import Ended, EndedSessions
from .redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("gateway.session")
KEY = CHANNEL = "gw:ended"
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)
MAX_PENDING = 100_000  # records made while Redis was down, kept to write when it is back


class RedisEnds:
    """The fleet's half of EndedSessions: `publish` for records made here, `follow` for everyone's."""

    def __init__(self, client: RedisClient, ends: EndedSessions) -> None:
        self.client = client
        self.ends = ends
        self.synced = asyncio.Event()  # set while subscribed and loaded (tests and /readyz-style checks)
        self.loaded_once = False  # /readyz: not ready before the fleet's records are known here
        self.pending: list[Ended] = []  # made here while Redis was unreachable

    async def publish(self, record: Ended) -> None:
        try:
            await write(self.client, record, self.ends.max_lifetime)
        except REDIS_ERRORS as exc:
            # Recorded here already; the others learn it once Redis is back (written before the reload).
            if len(self.pending) < MAX_PENDING:
                self.pending.append(record)
            metrics.SESSION_STORE_ERRORS.inc()
            log.error("could not share an ended session with the fleet yet: redis unreachable: %s", exc.__class__.__name__)

    async def follow(self) -> None:
        """Background task: subscribe, load, apply; again after each disconnection."""
        attempt = 0
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never dies: a follower that stopped would leave this instance deaf
                self.synced.clear()
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                expected = isinstance(exc, REDIS_ERRORS)
                log.warning(
                    "ended-session updates from redis interrupted (%s); resubscribing in %ss", exc.__class__.__name__, delay,
                    exc_info=None if expected else exc,
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0

    async def _follow_once(self) -> None:
        if isinstance(self.client, RedisCluster):
            await self.client.initialize()  # a cluster's pub/sub needs the slot map, which a first command would load
        pubsub: Any = self.client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            while self.pending:
                await write(self.client, self.pending[0], self.ends.max_lifetime)
                self.pending.pop(0)
            for record in await read_all(self.client, self.ends.max_lifetime):
                self.ends.apply(record)
            self.synced.set()
            self.loaded_once = True
            task = asyncio.current_task()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                if task is not None and task.cancelling():
                    # redis-py's read with a timeout can swallow a cancellation: the app is stopping.
                    raise asyncio.CancelledError
                if message is None:
                    await pubsub.ping()  # a silent channel and a dead connection look alike: ask
                    continue
                data = message.get("data")
                heard = Ended.from_message(data) if isinstance(data, (bytes, str)) else None
                if heard is not None:
                    self.ends.apply(heard)
        finally:
            self.synced.clear()
            await pubsub.aclose()


async def write(client: RedisClient, record: Ended, max_lifetime: float) -> None:
    """Add a record to the fleet's set and announce it. Used by the gateway and by `sessions revoke`."""
    await client.zadd(KEY, {record.member: record.at})
    # Whole set lives as long as its newest record is of use; older members are swept now and then.
    await client.expire(KEY, int(max_lifetime) + 60)
    await client.publish(CHANNEL, record.message())
    if int(record.at) % 16 == 0:
        await client.zremrangebyscore(KEY, "-inf", time.time() - max_lifetime)


async def read_all(client: RedisClient, max_lifetime: float) -> list[Ended]:
    members: list[Any] = await client.zrangebyscore(KEY, time.time() - max_lifetime, "+inf", withscores=True)
    records = []
    for member, score in members:
        record = Ended.parse(member.decode() if isinstance(member, bytes) else str(member), float(score))
        if record is not None:
            records.append(record)
    return records
