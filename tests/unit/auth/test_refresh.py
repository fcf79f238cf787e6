"""The refresher with fakes at its I/O seam: no provider, no network, no sleeping.

`Refresher(provider, profile, timeout, shared)` only talks to `provider.load()`, the loaded
provider's `client.refresh(...)` and `verifier.verify(...)` (through verify_tokens), an optional
SharedRefresh, and `time.monotonic` for its caches and back-off. Each of those is a fake here
(the style of oauth2-proxy's stored_session_test.go, which injects the refresh function): the
token endpoint answers when a test opens its gate, and the clock moves when a test moves it.
The end-to-end behaviour against the local Cognito is tests/integration/test_refresh.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time as real_time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import pytest

from gateway.auth import refresh as refresh_module
from gateway.auth.refresh import BACKOFF, RECENT_TTL, Refresher, RefreshOutcome, RefreshResult, token_key
from gateway.errors import ProviderError, TokenError
from gateway.oidc.client import GrantError, TokenSet
from gateway.oidc.profile import COGNITO
from gateway.session.model import SignedIn

TIMEOUT = 3.5
REFRESH_TOKEN = "rt-1"


def fake_jwt(**claims: Any) -> str:
    """Shaped like a JWT (verify_tokens reads the previous id token's `sub` without verifying it)."""
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"e30.{payload}.sig"


def session(generation: int = 0, sub: str = "u1") -> SignedIn:
    return SignedIn(
        id_token=fake_jwt(sub=sub, gen=generation, use="id"),
        access_token=fake_jwt(sub=sub, gen=generation, use="access"),
        refresh_token=REFRESH_TOKEN,
        access_expires_at=1_000.0 + generation,
        created_at=500.0,
    )


class FakeClock:
    """`time.monotonic` as the refresher sees it; everything else (the event loop too) keeps real time."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:  # time.time etc., should the module use them
        return getattr(real_time, name)


class FakeVerifier:
    """Claims straight from the token's payload; a payload with `"bad": true` fails verification."""

    async def verify(self, token: str, token_use: str, nonce: str | None = None) -> dict[str, Any]:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        if claims.get("bad"):
            raise TokenError("invalid signature")
        return claims


Answer = Callable[[int], TokenSet]  # call number -> tokens, or raise


@dataclass
class FakeClient:
    """The token endpoint: counts calls; each call waits for `gate` (open unless a test closes it)."""

    answer: Answer
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def refresh(self, refresh_token: str, timeout: float | None = None) -> TokenSet:
        self.calls.append((refresh_token, timeout))
        number = len(self.calls)
        await self.gate.wait()
        return self.answer(number)


@dataclass
class FakeLoaded:
    client: FakeClient
    verifier: FakeVerifier


class FakeProvider:
    def __init__(self, loaded: FakeLoaded) -> None:
        self.loaded = loaded
        self.down = False  # load() fails as Provider.load does while the provider cannot be reached

    async def load(self) -> FakeLoaded:
        if self.down:
            raise ProviderError("identity provider not reachable")
        return self.loaded


def new_tokens(number: int, sub: str = "u1", **extra: Any) -> TokenSet:
    """What the provider answers to call `number`: generation `number`, refresh token not rotated."""
    return TokenSet(
        access_token=fake_jwt(sub=sub, gen=number, use="access", exp=2_000 + number, **extra),
        expires_in=3600,
        id_token=fake_jwt(sub=sub, gen=number, use="id", **extra),
    )


def refused(number: int) -> TokenSet:
    raise GrantError("invalid_grant", 400)


def unreachable(number: int) -> TokenSet:
    raise ProviderError("provider unreachable: ClientConnectorError")


def timed_out(number: int) -> TokenSet:
    raise ProviderError("provider unreachable: TimeoutError")  # what OidcClient makes of asyncio.TimeoutError


@dataclass
class Rig:
    refresher: Refresher
    provider: FakeProvider
    client: FakeClient
    clock: FakeClock

    @property
    def calls(self) -> int:
        return len(self.client.calls)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    # Only the refresher's module sees the fake: patching time.monotonic itself would move the event loop's clock.
    monkeypatch.setattr(refresh_module, "time", fake)
    return fake


@pytest.fixture
def make(clock: FakeClock) -> Callable[..., Rig]:
    def make(answer: Answer = new_tokens, shared: Any = None) -> Rig:
        client = FakeClient(answer)
        provider = FakeProvider(FakeLoaded(client, FakeVerifier()))
        refresher = Refresher(provider, COGNITO, TIMEOUT, shared)  # type: ignore[arg-type]
        return Rig(refresher, provider, client, clock)

    return make


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run (no wall-clock waiting) until `condition` holds."""
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# --- single flight ------------------------------------------------------------------------------


async def test_30_concurrent_refreshes_of_one_session_make_one_call_and_share_its_result(make) -> None:
    rig = make()
    rig.client.gate.clear()
    old = session()
    callers = [asyncio.create_task(rig.refresher.refresh(old, REFRESH_TOKEN)) for _ in range(30)]
    await until(lambda: rig.calls == 1 and rig.refresher.counts["joined"] == 29)
    rig.client.gate.set()
    results = await asyncio.gather(*callers)

    assert rig.client.calls == [(REFRESH_TOKEN, TIMEOUT)], "one call, with the configured timeout"
    assert all(r is results[0] for r in results), "every caller gets the one result"
    fresh = results[0].signed_in
    assert results[0].outcome is RefreshOutcome.REFRESHED and fresh is not None
    assert fresh.access_token == new_tokens(1).access_token and fresh.access_expires_at == 2_001
    assert fresh.refresh_token == REFRESH_TOKEN and fresh.created_at == old.created_at, "kept from the session"
    assert rig.refresher.counts == {"refreshed": 1, "joined": 29}


async def test_different_sessions_are_not_merged(make) -> None:
    rig = make()
    rig.client.gate.clear()
    a, b = session(), session(sub="u2")
    rig.client.answer = lambda n: new_tokens(n, sub="u1" if rig.client.calls[n - 1][0] == "rt-a" else "u2")
    first = asyncio.create_task(rig.refresher.refresh(a, "rt-a"))
    second = asyncio.create_task(rig.refresher.refresh(b, "rt-b"))
    await until(lambda: rig.calls == 2)
    rig.client.gate.set()
    assert [r.outcome for r in await asyncio.gather(first, second)] == [RefreshOutcome.REFRESHED] * 2


# --- reuse of a recent result -------------------------------------------------------------------


async def test_old_tokens_reuse_the_result_for_recent_ttl_then_refresh_again(make) -> None:
    rig = make()
    old = session()
    first = await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert first.outcome is RefreshOutcome.REFRESHED and rig.calls == 1

    rig.clock.advance(RECENT_TTL - 0.25)  # a request that left with the old cookie arrives late
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is first
    assert rig.calls == 1 and rig.refresher.counts["reused"] == 1

    rig.clock.advance(0.25)  # RECENT_TTL after the result: it is no longer handed out
    again = await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert rig.calls == 2 and again is not first
    assert again.signed_in is not None and again.signed_in.access_token == new_tokens(2).access_token


async def test_the_results_own_tokens_start_the_next_refresh(make) -> None:
    """token_key names a generation (refresh + access token): without rotation the refresh token alone is the same."""
    rig = make()
    first = await rig.refresher.refresh(session(), REFRESH_TOKEN)
    assert first.signed_in is not None and first.signed_in.refresh_token == REFRESH_TOKEN

    rig.clock.advance(1.0)  # well within RECENT_TTL: the old generation would still be reused
    second = await rig.refresher.refresh(first.signed_in, first.signed_in.refresh_token)
    assert rig.calls == 2, "not handed its own (expiring) tokens back"
    assert second.signed_in is not None and second.signed_in.access_token == new_tokens(2).access_token
    assert token_key(REFRESH_TOKEN, "a") != token_key(REFRESH_TOKEN, "b") != token_key(REFRESH_TOKEN)


# --- back-off while the provider is unavailable --------------------------------------------------


async def test_unavailable_backs_off_along_backoff_and_calls_nothing_meanwhile(make) -> None:
    rig = make(unreachable)
    old = session()
    assert (await rig.refresher.refresh(old, REFRESH_TOKEN)).outcome is RefreshOutcome.UNAVAILABLE
    assert rig.calls == 1
    expected_calls = 1
    delays = [*BACKOFF, BACKOFF[-1], BACKOFF[-1]]  # then it stays at the last step
    for delay in delays:
        rig.clock.advance(delay - 0.25)  # binary fractions: the clock lands exactly on the deadline
        result = await rig.refresher.refresh(old, REFRESH_TOKEN)
        assert result.outcome is RefreshOutcome.UNAVAILABLE and result.signed_in is None
        assert rig.calls == expected_calls, f"called the provider {delay - 0.25}s into a {delay}s back-off"
        rig.clock.advance(0.25)
        assert (await rig.refresher.refresh(old, REFRESH_TOKEN)).outcome is RefreshOutcome.UNAVAILABLE
        expected_calls += 1
        assert rig.calls == expected_calls, f"no new attempt once the {delay}s back-off ended"
    assert rig.refresher.counts == {"unavailable": len(delays) + 1, "backing_off": len(delays)}


async def test_back_off_is_per_session(make) -> None:
    rig = make(unreachable)
    await rig.refresher.refresh(session(), REFRESH_TOKEN)
    await rig.refresher.refresh(session(sub="u2"), "rt-other")
    assert rig.calls == 2, "another session's outage attempt is its own"


async def test_a_success_ends_the_back_off(make, monkeypatch: pytest.MonkeyPatch) -> None:
    # A success is kept as a recent result for RECENT_TTL, longer than any back-off entry lives; a
    # short RECENT_TTL lets the next failure of the same generation show where its back-off starts.
    monkeypatch.setattr(refresh_module, "RECENT_TTL", 0.5)
    outage = True
    rig = make(lambda n: unreachable(n) if outage else new_tokens(n))
    old = session()
    for delay in (0.0, *BACKOFF[:3]):  # four failures: the next delay would be BACKOFF[4]
        rig.clock.advance(delay)
        assert (await rig.refresher.refresh(old, REFRESH_TOKEN)).outcome is RefreshOutcome.UNAVAILABLE
    assert rig.calls == 4

    outage = False
    rig.clock.advance(BACKOFF[3])
    assert (await rig.refresher.refresh(old, REFRESH_TOKEN)).outcome is RefreshOutcome.REFRESHED

    outage = True
    rig.clock.advance(0.5)  # the success is no longer reused
    assert (await rig.refresher.refresh(old, REFRESH_TOKEN)).outcome is RefreshOutcome.UNAVAILABLE
    assert rig.calls == 6
    rig.clock.advance(BACKOFF[0])
    await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert rig.calls == 7, "the failure count started over: the first back-off step, not the fifth"


# --- INVALID vs UNAVAILABLE ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(refused, id="grant-refused"),
        pytest.param(lambda n: new_tokens(n, bad=True), id="token-fails-verification"),
        pytest.param(lambda n: new_tokens(n, sub="someone-else"), id="token-about-another-user"),
    ],
)
async def test_refused_or_unverifiable_answers_are_invalid_and_reused(make, answer: Answer) -> None:
    rig = make(answer)
    old = session()
    result = await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert result == RefreshResult(RefreshOutcome.INVALID)

    rig.clock.advance(RECENT_TTL - 1)  # the session's other requests: signed out too, without asking again
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is result
    assert rig.calls == 1
    assert rig.refresher.counts == {"invalid": 1, "reused": 1}


@pytest.mark.parametrize("answer", [pytest.param(unreachable, id="unreachable"), pytest.param(timed_out, id="timeout")])
async def test_an_unreachable_provider_is_unavailable_and_not_kept_as_a_result(make, answer: Answer) -> None:
    rig = make(answer)
    old = session()
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) == RefreshResult(RefreshOutcome.UNAVAILABLE)

    rig.clock.advance(BACKOFF[0])  # well within RECENT_TTL: a kept result would answer without a call
    rig.client.answer = new_tokens
    result = await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert rig.calls == 2 and result.outcome is RefreshOutcome.REFRESHED
    assert "reused" not in rig.refresher.counts


async def test_a_provider_that_cannot_load_is_unavailable(make) -> None:
    rig = make()
    rig.provider.down = True
    assert (await rig.refresher.refresh(session(), REFRESH_TOKEN)).outcome is RefreshOutcome.UNAVAILABLE
    assert rig.calls == 0


# --- cancellation -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 1], ids=["the-caller-that-started-it", "a-caller-that-joined"])
async def test_a_cancelled_caller_does_not_cancel_the_refresh_of_the_others(make, which: int) -> None:
    rig = make()
    rig.client.gate.clear()
    old = session()
    callers = [asyncio.create_task(rig.refresher.refresh(old, REFRESH_TOKEN)) for _ in range(3)]
    await until(lambda: rig.calls == 1 and rig.refresher.counts["joined"] == 2)

    callers[which].cancel()  # that client went away, or its request timed out
    with pytest.raises(asyncio.CancelledError):
        await callers[which]
    rig.client.gate.set()
    others = await asyncio.gather(*(c for i, c in enumerate(callers) if i != which))

    assert [r.outcome for r in others] == [RefreshOutcome.REFRESHED] * 2
    assert rig.calls == 1
    # The refresh completed and was published: a late request gets it without a call.
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is others[0]
    assert rig.calls == 1


# --- the shared (cross-instance) hook ------------------------------------------------------------


class FakeShared:
    """A SharedRefresh: records its keys; computes, or answers with another instance's published result."""

    def __init__(self, published: RefreshResult | None = None) -> None:
        self.keys: list[str] = []
        self.published = published

    async def run(self, key: str, compute: Callable[[], Awaitable[RefreshResult]]) -> RefreshResult:
        self.keys.append(key)
        if self.published is not None:
            return self.published
        return await compute()


async def test_the_shared_hook_runs_the_refresh_under_the_generations_key(make) -> None:
    shared = FakeShared()
    rig = make(shared=shared)
    rig.client.gate.clear()
    old = session()
    callers = [asyncio.create_task(rig.refresher.refresh(old, REFRESH_TOKEN)) for _ in range(5)]
    await until(lambda: rig.calls == 1)
    rig.client.gate.set()
    results = await asyncio.gather(*callers)

    assert shared.keys == [token_key(REFRESH_TOKEN, old.access_token)], "once per instance, not per request"
    assert rig.calls == 1 and all(r.outcome is RefreshOutcome.REFRESHED for r in results)


async def test_a_result_another_instance_published_is_used_without_calling_the_provider(make) -> None:
    theirs = RefreshResult(RefreshOutcome.REFRESHED, session(generation=7))
    shared = FakeShared(published=theirs)
    rig = make(shared=shared)
    old = session()
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is theirs
    assert rig.calls == 0
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is theirs
    assert len(shared.keys) == 1, "kept locally as a recent result too"
    assert rig.refresher.counts == {"refreshed": 1, "reused": 1}


# --- counts ----------------------------------------------------------------------------------


async def test_counts_by_outcome(make) -> None:
    rig = make(refused)
    await rig.refresher.refresh(session(0), REFRESH_TOKEN)  # invalid
    await rig.refresher.refresh(session(0), REFRESH_TOKEN)  # reused
    rig.client.answer = unreachable
    await rig.refresher.refresh(session(1), REFRESH_TOKEN)  # unavailable
    await rig.refresher.refresh(session(1), REFRESH_TOKEN)  # backing_off
    rig.client.answer = new_tokens
    rig.client.gate.clear()
    joined = [asyncio.create_task(rig.refresher.refresh(session(2), REFRESH_TOKEN)) for _ in range(2)]
    await until(lambda: rig.calls == 3)
    rig.client.gate.set()
    await asyncio.gather(*joined)  # refreshed, joined
    assert rig.refresher.counts == {"invalid": 1, "reused": 1, "unavailable": 1, "backing_off": 1, "refreshed": 1, "joined": 1}


async def test_a_result_the_browser_cannot_see_is_kept_until_its_tokens_expire(make) -> None:
    """A WebSocket's watch refreshes where no cookie can be set: the browser's old cookie gets that result later."""
    expires = real_time.time() + 3600

    def answer(number: int) -> TokenSet:
        return TokenSet(fake_jwt(sub="u1", gen=number, use="access", exp=expires), 3600, fake_jwt(sub="u1", gen=number, use="id"))

    rig = make(answer)
    old = session()
    first = await rig.refresher.refresh(old, REFRESH_TOKEN)
    assert first.outcome is RefreshOutcome.REFRESHED and first.signed_in is not None
    rig.refresher.hand_on(old, first)
    rig.clock.advance(RECENT_TTL * 30)  # half an hour on, the browser's next request with its old cookie
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is first
    second = await rig.refresher.refresh(first.signed_in, REFRESH_TOKEN)  # the socket's next refresh
    rig.refresher.hand_on(old, second)  # handed on to every generation the browser may hold
    assert await rig.refresher.refresh(old, REFRESH_TOKEN) is second
    assert rig.calls == 2
