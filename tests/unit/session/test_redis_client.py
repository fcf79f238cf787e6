"""session/redis_client.py: the client per Redis topology, the cluster-safe batched read, readiness;
and the config keys that choose the topology (one line per problem, naming the key)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from gateway.config import SessionConfig, parse_config
from gateway.errors import ConfigError
from gateway.session.redis_client import SentinelMaster, connect, many_get, unreachable
from tests.fixtures.redis import ClusterSet, RedisServer, SentinelSet
from tests.fixtures.servers import free_port

UP = {"upstreams": [{"path": "/", "url": "http://127.0.0.1:8000"}]}


def session(**keys: Any) -> SessionConfig:
    return parse_config({**UP, "session": {"store": "redis", **keys}}, env={}).session


def problems(**keys: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        session(**keys)
    return raised.value.problems


def test_sentinel_keys_parse() -> None:
    parsed = session(redis_sentinels=["10.0.0.1:26380", "sentinel-2", "[::1]:5000"], redis_url="redis://:pw@MyMaster/2")
    assert parsed.redis_sentinels == (("10.0.0.1", 26380), ("sentinel-2", 26379), ("::1", 5000))
    assert not parsed.redis_cluster


@pytest.mark.parametrize(
    "keys, problem",
    [
        ({"redis_sentinels": []}, "session.redis_sentinels: must list at least one sentinel as host:port"),
        ({"redis_sentinels": ["a:70000"]}, "session.redis_sentinels: not host:port: 'a:70000'"),
        ({"redis_sentinels": ["a b"]}, "session.redis_sentinels: not host:port: 'a b'"),
        ({"redis_sentinels": ["::1"]}, "session.redis_sentinels: not host:port: '::1'"),
        ({"redis_sentinels": ["s:26379"]}, "session.redis_url: is required with redis_sentinels: redis://[[USER]:PASSWORD@]MASTER_NAME[/DB], "
                                           "the host being the name the sentinels know the master by"),
        ({"redis_sentinels": ["s"], "redis_url": "redis://m:6379/0"}, "session.redis_url: with redis_sentinels, must be redis://"),
        ({"redis_sentinels": ["s"], "redis_url": "rediss://m/0"}, "session.redis_url: with redis_sentinels, must be redis://"),
        ({"redis_sentinels": ["s"], "redis_url": "redis://m/x"}, "session.redis_url: with redis_sentinels, must be redis://"),
        ({"redis_sentinels": ["s"], "redis_url": "http://m"}, "session.redis_url: not a redis:// URL: 'http://m'"),
        ({"redis_sentinels": ["s"], "redis_url": "redis://m", "redis_cluster": True}, "session.redis_cluster: Sentinel or Cluster, not both"),
        ({"redis_cluster": True, "redis_url": "redis://node:6379/3"}, "session.redis_url: a Redis Cluster has only database 0"),
        ({"redis_cluster": True, "redis_url": "unix:///run/redis.sock"}, "session.redis_url: with redis_cluster, must be redis://"),
        ({"redis_cluster": "yes"}, "session.redis_cluster: must be true or false"),
    ],
)  # fmt: skip
def test_topology_problems_are_one_line_each_naming_the_key(keys: dict[str, Any], problem: str) -> None:
    found = problems(**keys)
    assert len(found) == 1 and found[0].startswith(problem), found


async def test_connect_builds_the_client_the_config_names() -> None:
    single = connect(session(redis_url="redis://127.0.0.1:6390/3"))
    sentinel = connect(session(redis_sentinels=["127.0.0.1:26390"], redis_url="redis://user:p%40ss@MyMaster/4"))
    cluster = connect(session(redis_cluster=True, redis_url="redis://127.0.0.1:7000"))
    try:
        assert type(single) is redis.Redis and single.connection_pool.connection_kwargs["db"] == 3
        assert isinstance(sentinel, SentinelMaster)
        pool: Any = sentinel.connection_pool
        assert pool.service_name == "MyMaster", "the master's name keeps its case"
        assert {k: pool.connection_kwargs[k] for k in ("username", "password", "db")} == {"username": "user", "password": "p@ss", "db": 4}
        assert [
            (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in pool.sentinel_manager.sentinels
        ] == [("127.0.0.1", 26390)]
        assert isinstance(cluster, RedisCluster)
    finally:
        for client in (single, sentinel, cluster):
            await client.aclose()


async def test_many_get_reads_keys_of_every_slot_in_one_call(redis_cluster: ClusterSet) -> None:
    client = connect(session(redis_cluster=True, redis_url=redis_cluster.url))
    try:
        keys = [f"gw:session:{secrets.token_hex(8)}" for _ in range(30)]
        assert len({key_slot(key.encode()) for key in keys}) > 1
        for key in keys[::2]:
            await client.set(key, key)
        with pytest.raises(RedisClusterException):
            await client.mget(keys)  # a plain MGET across slots: what the store must not send
        assert await many_get(client)(keys) == [key.encode() if i % 2 == 0 else None for i, key in enumerate(keys)]
    finally:
        await client.aclose()


async def test_many_get_on_one_server_is_mget(redis_server: RedisServer) -> None:
    client = connect(session(redis_url=redis_server.url))
    try:
        await client.set("a", "1")
        assert await many_get(client)(["a", "b"]) == [b"1", None]
    finally:
        await client.aclose()


async def test_unreachable_in_every_mode(redis_server: RedisServer, redis_cluster: ClusterSet, redis_sentinel: SentinelSet) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    up = [
        connect(session(redis_url=redis_server.url)),
        connect(session(redis_cluster=True, redis_url=redis_cluster.url)),
        connect(session(**{k: v for k, v in redis_sentinel.session_config().items() if k != "store"})),
    ]
    down = [
        connect(session(redis_url=f"redis://{nobody}/0")),
        connect(session(redis_cluster=True, redis_url=f"redis://{nobody}")),  # not a RedisError: must not escape
        connect(session(redis_sentinels=[nobody], redis_url="redis://gwmaster/0")),
        connect(session(redis_sentinels=[f"127.0.0.1:{redis_sentinel.sentinel_port}"], redis_url="redis://nosuchmaster/0")),
    ]
    try:
        assert [await unreachable(client) for client in up] == [None, None, None]
        reasons = [await unreachable(client) for client in down]
        assert reasons == [
            "redis unreachable: ConnectionError",
            "redis unreachable: RedisClusterException",
            "redis unreachable: MasterNotFoundError",
            "redis unreachable: MasterNotFoundError",
        ]
    finally:
        for client in up + down:
            await client.aclose()
