"""Refresh once across every gateway instance that shares one Redis (store: redis).

The first instance to take the lock calls the provider and publishes the sealed result for a
minute; the others wait for it instead of calling the provider with the same refresh token.

Every command names one key (the lock and the result are separate keys, never used together in one
command), so this runs unchanged on a Redis Cluster; with Sentinel a failover mid-refresh is a
Redis error like any other: UNAVAILABLE, and the request keeps its current tokens.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Awaitable, Callable

from ..session.crypto import SecretBox
from ..session.model import SignedIn
from ..session.redis_client import REDIS_ERRORS, RedisClient
from .refresh import RECENT_TTL, RefreshOutcome, RefreshResult

POLL_INTERVAL = 0.05
# Delete the lock only if it is still ours: it may have expired and been taken by another instance.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisSharedRefresh:
    def __init__(self, client: RedisClient, box: SecretBox, wait: float) -> None:
        self.client = client
        self.box = box
        self.wait = wait  # longest a refresh may take: the lock's lifetime and the others' patience

    async def run(self, key: str, compute: Callable[[], Awaitable[RefreshResult]]) -> RefreshResult:
        result_key, lock_key = f"gw:refresh:result:{key}", f"gw:refresh:lock:{key}"
        deadline = time.monotonic() + self.wait
        try:
            while True:
                found = await self._read(result_key)
                if found is not None:
                    return found
                owner = secrets.token_hex(8)
                if await self.client.set(lock_key, owner, nx=True, px=int(self.wait * 1000)):
                    try:
                        # Another instance may have published and released between our read and our lock.
                        found = await self._read(result_key)
                        return found if found is not None else await self._compute_and_publish(result_key, compute)
                    finally:
                        await self.client.eval(_RELEASE, 1, lock_key, owner)
                if time.monotonic() > deadline:
                    return RefreshResult(RefreshOutcome.UNAVAILABLE)
                await asyncio.sleep(POLL_INTERVAL)
        except REDIS_ERRORS:
            return RefreshResult(RefreshOutcome.UNAVAILABLE)

    async def _compute_and_publish(self, result_key: str, compute: Callable[[], Awaitable[RefreshResult]]) -> RefreshResult:
        result = await compute()
        if result.outcome is not RefreshOutcome.UNAVAILABLE:  # a provider outage is not news to share: others may retry
            payload = {"outcome": result.outcome.value, "session": result.signed_in.to_dict() if result.signed_in else None}
            sealed = self.box.seal(json.dumps(payload).encode(), result_key.encode())
            await self.client.set(result_key, sealed, ex=int(RECENT_TTL))
        return result

    async def _read(self, result_key: str) -> RefreshResult | None:
        sealed = await self.client.get(result_key)
        text = sealed.decode() if isinstance(sealed, bytes) else sealed
        opened = self.box.open(text, result_key.encode()) if text else None
        if opened is None:
            return None
        payload = json.loads(opened)
        signed_in = SignedIn.from_dict(payload["session"]) if payload.get("session") else None
        return RefreshResult(RefreshOutcome(payload["outcome"]), signed_in)
