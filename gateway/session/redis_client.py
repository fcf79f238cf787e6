"""The Redis client for `session.store: redis`, whichever way the Redis is run.

- one server: `redis_url`;
- Sentinel (HA): `redis_sentinels` are asked for the master named by `redis_url`'s host; after a
  failover redis-py's sentinel pool finds the new master on its next connection;
- Cluster: `redis_url` is any node (a seed, e.g. ElastiCache's configuration endpoint); keys are
  routed to their slot's node.

Sessions, the refresh lock and published refresh results all go through the one client built here,
so every instance of a fleet sees the same three things. Each command the gateway sends names one
key (the lock's release script too), so all of them are valid on a cluster; only the batched session
read needs a cluster-aware form: `many_get`.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence, TypeAlias, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException

from ..config import SessionConfig, sentinel_master

RedisClient: TypeAlias = "redis.Redis | RedisCluster"
# Seconds. A Redis that does not answer within this is down for the request (503), not a hang.
TIMEOUT = 2.0
# What "Redis is down" looks like. RedisClusterException is not a RedisError: a slot no node serves
# (SlotNotCoveredError) or a cross-slot command would otherwise escape as a 500.
REDIS_ERRORS = (redis.RedisError, RedisClusterException, OSError)


class SentinelMaster(redis.Redis):
    """The master's client; closing it closes the connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await cast(SentinelConnectionPool, self.connection_pool).sentinel_manager.aclose()


def connect(session: SessionConfig) -> RedisClient:
    """A client for the Redis the config names (no I/O yet: connections open on first use)."""
    if session.redis_sentinels:
        options = parse_url(session.redis_url)  # credentials and database; the host is the master's name
        # Each sentinel is asked once: the next one in the list is the retry. With redis-py's default
        # retries, a master lookup with the sentinels down took 3-4 s (measured) instead of failing at once.
        once = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT, "retry": Retry(NoBackoff(), 0)}
        sentinel = Sentinel(list(session.redis_sentinels), sentinel_kwargs=once, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)  # type: ignore[no-untyped-call]
        master = sentinel.master_for(
            sentinel_master(session.redis_url), redis_class=SentinelMaster, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
            username=options.get("username"), password=options.get("password"), db=options.get("db", 0),
        )  # fmt: skip
        return cast(SentinelMaster, master)
    if session.redis_cluster:
        return RedisCluster.from_url(session.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    return redis.from_url(session.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


def many_get(client: RedisClient) -> Callable[[Sequence[str]], Awaitable[list[bytes | str | None]]]:
    """MGET for one server; on a cluster, one MGET per hash slot, pipelined per node.

    A cluster refuses an MGET whose keys hash to different slots, and session keys are spread over
    all 16,384 slots on purpose (a hash tag would put every session on one node). So the batch is
    split by slot and each node gets its share in one pipelined round trip, all nodes at once: the
    same round trips as one MGET per node.
    """
    if isinstance(client, RedisCluster):
        return client.mget_nonatomic
    return client.mget


async def unreachable(client: RedisClient) -> str | None:
    """For /readyz: None when Redis answers a PING, else a short reason.

    A cluster is asked on every primary: with one down its slots are unserved, and by default the
    whole cluster refuses commands until a replica takes over.
    """
    try:
        if isinstance(client, RedisCluster):
            await client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await client.ping()
        return None
    except REDIS_ERRORS as exc:
        return f"redis unreachable: {exc.__class__.__name__}"
