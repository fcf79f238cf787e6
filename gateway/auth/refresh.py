"""Transparent token refresh, single-flight per refresh token.

The classic weak spot of auth proxies: a page fires 30 XHRs the moment the access token
expires; 30 refreshes follow, and with rotating (single-use) refresh tokens 29 of them fail with
invalid_grant and log the user out. Here concurrent requests of one session share one call,
and requests that still carry the old cookie shortly after reuse its result. With the Redis
store a lock in Redis extends this across processes and instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable, Protocol

from ..errors import ProviderError, TokenError
from ..oidc.client import GrantError
from ..oidc.profile import ProviderProfile
from ..oidc.provider import Provider
from ..ops import metrics
from ..session.model import SignedIn
from ..ttl_cache import TtlCache
from .tokens import verify_tokens

log = logging.getLogger("gateway.refresh")

RECENT_TTL = 60.0  # seconds a result serves requests still carrying the old cookie
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class RefreshOutcome(Enum):
    REFRESHED = "refreshed"  # new tokens, verified
    INVALID = "invalid"  # the provider refused the refresh token, or its answer failed verification: sign in again
    UNAVAILABLE = "unavailable"  # the provider could not be reached: keep the tokens, retry after a back-off


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    signed_in: SignedIn | None = None  # set exactly when REFRESHED


class SharedRefresh(Protocol):
    """Runs `compute` once across every gateway instance for one refresh-token key."""

    async def run(self, key: str, compute: Callable[[], Awaitable[RefreshResult]]) -> RefreshResult: ...


def token_key(refresh_token: str, access_token: str = "") -> str:
    """One key per token generation: the refresh token and the access token it replaces.

    Requests still carrying that generation share its refresh and, for a while, reuse its result.
    A request carrying the result's own tokens, once those are due in turn, starts the next
    refresh instead of being handed the same (by then expired) tokens back: without rotation the
    refresh token alone would name every generation of a session.
    """
    return hashlib.sha256(f"{refresh_token}\0{access_token}".encode()).hexdigest()


class Refresher:
    def __init__(self, provider: Provider, profile: ProviderProfile, timeout: float, shared: SharedRefresh | None = None) -> None:
        self.provider = provider
        self.profile = profile
        self.timeout = timeout
        self.shared = shared
        self.counts: Counter[str] = Counter()  # by outcome, for metrics
        self._inflight: dict[str, asyncio.Task[RefreshResult]] = {}
        self._recent: TtlCache[RefreshResult] = TtlCache(clock=time.monotonic)
        # key -> (retry not before, failures so far); forgotten a while after the last back-off ends
        self._failures: TtlCache[tuple[float, int]] = TtlCache(clock=time.monotonic)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        metrics.REFRESHES.labels(outcome).inc()

    def hand_on(self, older: SignedIn, result: RefreshResult) -> None:
        """Give `result` to requests still carrying `older`'s tokens, until the result's own tokens expire.

        For refreshes whose new tokens cannot reach the browser (a WebSocket's watch): its next
        request, with whichever older cookie it holds, gets them instead of spending a refresh token
        the provider may have rotated away.
        """
        if result.signed_in is not None and older.refresh_token:
            kept_for = result.signed_in.access_expires_at - time.time()
            self._recent.put(token_key(older.refresh_token, older.access_token), result, time.monotonic() + kept_for)

    async def refresh(self, signed_in: SignedIn, refresh_token: str) -> RefreshResult:
        """`refresh_token` is the session's (a session without one cannot be refreshed)."""
        key = token_key(refresh_token, signed_in.access_token)
        recent = self._recent.get(key)
        if recent is not None:
            self._count("reused")
            return recent
        retry_at, _ = self._failures.get(key) or (0.0, 0)
        if time.monotonic() < retry_at:
            self._count("backing_off")
            return RefreshResult(RefreshOutcome.UNAVAILABLE)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._refresh_once(key, signed_in, refresh_token))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        else:
            self._count("joined")
        return await asyncio.shield(task)  # one caller giving up must not cancel the others' refresh

    async def _refresh_once(self, key: str, signed_in: SignedIn, refresh_token: str) -> RefreshResult:
        def compute() -> Awaitable[RefreshResult]:
            return self._call_provider(signed_in, refresh_token)

        result = await (self.shared.run(key, compute) if self.shared else compute())
        self._count(result.outcome.value)
        now = time.monotonic()
        if result.outcome is RefreshOutcome.UNAVAILABLE:
            failures = (self._failures.get(key) or (0.0, 0))[1]
            retry_at = now + BACKOFF[min(failures, len(BACKOFF) - 1)]
            self._failures.put(key, (retry_at, failures + 1), retry_at + BACKOFF[-1])
        else:
            self._failures.discard(key)
            self._recent.put(key, result, now + RECENT_TTL)
        return result

    async def _call_provider(self, signed_in: SignedIn, refresh_token: str) -> RefreshResult:
        try:
            loaded = await self.provider.load()
            tokens = await loaded.client.refresh(refresh_token, timeout=self.timeout)
            fresh = await verify_tokens(loaded, tokens, self.profile, nonce=None, previous=signed_in)
        except GrantError as exc:
            log.info("refresh refused (%s): signing the user out", exc.error)
            return RefreshResult(RefreshOutcome.INVALID)
        except TokenError as exc:
            log.warning("refreshed tokens failed verification (%s): signing the user out", exc.reason)
            return RefreshResult(RefreshOutcome.INVALID)
        except ProviderError as exc:
            log.warning("refresh failed, keeping current tokens: %s", exc)
            return RefreshResult(RefreshOutcome.UNAVAILABLE)
        return RefreshResult(RefreshOutcome.REFRESHED, fresh)
