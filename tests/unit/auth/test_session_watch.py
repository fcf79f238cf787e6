"""The watch that binds a WebSocket to its session, with the authenticator's fakes at the I/O seam."""

from __future__ import annotations

import asyncio
import time

from gateway.auth.refresh import RefreshOutcome, RefreshResult
from gateway.auth.session_watch import SessionWatch
from gateway.session.ends import EndedSessions
from gateway.session.model import SessionState

from tests.unit.auth.test_authenticate import FakeRefresher, FakeStore, authenticator, request, session, signed_in


def watch(state: SessionState, refresher: FakeRefresher | None = None, max_lifetime: float = 3600) -> tuple[SessionWatch, FakeStore, EndedSessions]:
    ends = EndedSessions(max_lifetime)
    store = FakeStore(state)
    return SessionWatch(authenticator(store, refresher, ends=ends), max_lifetime), store, ends


async def test_a_session_ended_while_watched_is_over_at_once() -> None:
    state = session()
    watcher, _, ends = watch(state)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await asyncio.sleep(0.01)
    assert not over.done()
    await ends.end_session(state)
    assert await asyncio.wait_for(over, 1) == "session ended"


async def test_a_user_revoked_while_watched_is_over() -> None:
    state = session()
    watcher, _, ends = watch(state)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await asyncio.sleep(0.01)
    await ends.end_user("u1")
    assert await asyncio.wait_for(over, 1) == "session ended"


async def test_another_users_revocation_does_not_end_it() -> None:
    state = session()
    watcher, _, ends = watch(state)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await ends.end_user("someone-else")
    await asyncio.sleep(0.05)
    assert not over.done()
    over.cancel()


async def test_past_max_lifetime_it_is_over() -> None:
    tokens = signed_in()
    state = SessionState(tokens, time.time() - 3600 + 0.2, time.time())
    watcher, _, _ = watch(state)
    started = time.monotonic()
    assert await asyncio.wait_for(watcher.over(request(), state), 2) == "session expired"
    assert time.monotonic() - started >= 0.1


async def test_a_due_token_is_refreshed_and_saved_then_watched_again() -> None:
    state = session(signed_in(expires_in=30))  # due: within before_expiry (60 s)
    fresh = signed_in(expires_in=3600, generation=1)
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, fresh))
    watcher, store, ends = watch(state, refresher)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await asyncio.sleep(0.05)
    assert not over.done() and len(refresher.calls) == 1
    assert store.saved and store.saved[-1].signed_in is fresh and store.saved[-1].sid == state.sid
    assert refresher.handed_on == [state.signed_in]  # the browser's cookie gets the new tokens later
    await ends.end_session(state)  # the refreshed session is the same session
    assert await asyncio.wait_for(over, 1) == "session ended"


async def test_a_refused_refresh_is_the_end_of_the_socket() -> None:
    state = session(signed_in(expires_in=30))
    watcher, _, _ = watch(state, FakeRefresher(RefreshResult(RefreshOutcome.INVALID)))
    assert await asyncio.wait_for(watcher.over(request(), state), 1) == "session ended"


async def test_an_unreachable_provider_keeps_a_valid_token_and_ends_an_expired_one() -> None:
    valid = session(signed_in(expires_in=30))
    watcher, _, _ = watch(valid, FakeRefresher(RefreshResult(RefreshOutcome.UNAVAILABLE)))
    over = asyncio.ensure_future(watcher.over(request(), valid))
    await asyncio.sleep(0.05)
    assert not over.done()
    over.cancel()
    expired = session(signed_in(expires_in=-1))
    watcher, _, _ = watch(expired, FakeRefresher(RefreshResult(RefreshOutcome.UNAVAILABLE)))
    assert await asyncio.wait_for(watcher.over(request(), expired), 1) == "session expired"


async def test_without_a_refresh_token_it_is_over_when_the_token_expires() -> None:
    state = session(signed_in(expires_in=0.2, refresh_token=None))
    watcher, _, _ = watch(state)
    assert await asyncio.wait_for(watcher.over(request(), state), 2) == "session expired"


async def test_watching_stops_when_the_socket_closes() -> None:
    state = session()
    watcher, _, ends = watch(state)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await asyncio.sleep(0.01)
    over.cancel()
    await asyncio.gather(over, return_exceptions=True)
    assert ends._watchers == {}


async def test_tokens_shorter_than_before_expiry_are_not_refreshed_in_a_loop() -> None:
    """A provider issuing 30 s tokens with before_expiry 60 s: each new token is due at once."""
    state = session(signed_in(expires_in=30))
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, signed_in(expires_in=30, generation=1)))
    watcher, _, _ = watch(state, refresher)
    over = asyncio.ensure_future(watcher.over(request(), state))
    await asyncio.sleep(0.3)
    assert not over.done() and len(refresher.calls) == 1  # the next one halfway through the new token's life
    over.cancel()
