"""Ended sessions in memory: what a record ends, for how long, and who is told."""

from __future__ import annotations

import base64
import json
import secrets
import time

from gateway.session.ends import Ended, EndedSessions
from gateway.session.model import SessionState, SignedIn

LIFETIME = 3600.0


def state(sub: str = "u1", started_ago: float = 10.0) -> SessionState:
    now = time.time()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub}).encode()).decode().rstrip("=")
    tokens = SignedIn(f"eyJhbGciOiJub25lIn0.{payload}.x", "at", "rt", now + 3600, now - started_ago)
    return SessionState(tokens, now - started_ago, now, secrets.token_urlsafe(16))


async def test_nothing_is_ended_at_first() -> None:
    assert not EndedSessions(LIFETIME).ended(state())


async def test_an_ended_session_is_ended_in_every_copy_and_no_other() -> None:
    ends = EndedSessions(LIFETIME)
    mine, other = state(), state()
    await ends.end_session(mine)
    assert ends.ended(SessionState(mine.signed_in, mine.started_at, None, mine.sid))
    assert not ends.ended(other)


async def test_a_user_end_covers_sessions_begun_before_it_only() -> None:
    ends = EndedSessions(LIFETIME)
    await ends.end_user("u1")
    assert ends.ended(state("u1", started_ago=5))
    assert not ends.ended(state("u2", started_ago=5))
    later = state("u1", started_ago=-5)  # began after the revocation: a new sign-in
    assert not ends.ended(later)


async def test_records_older_than_any_session_are_ignored_and_pruned() -> None:
    ends = EndedSessions(LIFETIME)
    ends.apply(Ended("s", "old", time.time() - LIFETIME - 1))
    assert len(ends) == 0
    ends.apply(Ended("s", "soon-old", time.time() - LIFETIME + 0.01))
    ends._next_prune = 0  # sweep at the next record
    time.sleep(0.02)
    ends.apply(Ended("s", "new", time.time()))
    assert len(ends) == 1


async def test_a_record_heard_twice_notifies_once() -> None:
    ends = EndedSessions(LIFETIME)
    watched = state()
    calls: list[int] = []
    stop = ends.watch(watched, lambda: calls.append(1))
    record = Ended("s", watched.sid, time.time())
    ends.apply(record)
    ends.apply(record)  # our own record coming back through pub/sub
    assert calls == [1]
    stop()
    ends.apply(Ended("s", watched.sid, time.time() + 1))
    assert calls == [1]


async def test_watchers_hear_of_their_user_being_revoked() -> None:
    ends = EndedSessions(LIFETIME)
    watched = state("u7")
    calls: list[str] = []
    ends.watch(watched, lambda: calls.append("u7"))
    ends.watch(state("u8"), lambda: calls.append("u8"))
    await ends.end_user("u7")
    assert calls == ["u7"] and ends.ended(watched)


def publishing() -> tuple[EndedSessions, list[Ended]]:
    """Ended sessions whose publisher writes down what it is given."""
    published: list[Ended] = []

    class Publisher:
        async def publish(self, record: Ended) -> None:
            published.append(record)

    ends = EndedSessions(LIFETIME)
    ends.publisher = Publisher()
    return ends, published


async def test_records_go_to_the_publisher() -> None:
    ends, published = publishing()
    await ends.end_user("u1", now=123.0 + time.time())
    assert [(r.kind, r.name) for r in published] == [("u", "u1")]


def test_records_parse_back() -> None:
    assert Ended.parse("s:abc", 1.0) == Ended("s", "abc", 1.0)
    assert Ended.parse("u:sub-1", 2.0) == Ended("u", "sub-1", 2.0)
    assert Ended.parse("x:abc", 1.0) is None and Ended.parse("s:", 1.0) is None and Ended.parse("garbage", 1.0) is None


async def test_a_record_already_known_is_not_published_again() -> None:
    """Replaying a signed-out cookie at /oauth2/sign_out must not flood the fleet (or a log)."""
    ends, published = publishing()
    session = state()
    await ends.end_session(session)
    for _ in range(3):
        await ends.end_session(session, now=time.time() - 1)
    assert len(published) == 1


def test_records_travel_as_messages_and_garbage_does_not() -> None:
    record = Ended("u", "sub-1", 1700000000.125)
    assert Ended.from_message(record.message()) == record
    assert Ended.from_message(record.message().encode() + b"\n") == record
    for junk in (b"", b"nan s:x", b"inf u:y", b"1 q:z", b"not-a-number s:x", b"1", b"\xff\xfe s:x"):
        assert Ended.from_message(junk) is None
