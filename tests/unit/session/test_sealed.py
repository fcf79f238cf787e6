"""Sealing and opening a session state, as both stores do."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from gateway.session.crypto import SecretBox
from gateway.session.model import SessionState, SignedIn
from gateway.session.sealed import SealedSessions

BOX = SecretBox((secrets.token_urlsafe(32),), "session")


def state(started: float | None = None) -> SessionState:
    now = time.time() if started is None else started
    return SessionState.new(SignedIn("id", "at", "rt", now + 3600, now))


def test_a_sealed_state_opens_once_and_then_comes_from_the_cache() -> None:
    sessions = SealedSessions(BOX, 3600)
    sealed = sessions.seal(state(), "ctx")
    first = sessions.open(sealed, "ctx")
    assert first is not None and first.signed_in.access_token == "at"
    assert sessions.open(sealed, "ctx") is first


def test_a_value_opens_only_for_the_context_it_was_sealed_for() -> None:
    sessions = SealedSessions(BOX, 3600)
    sealed = sessions.seal(state(), "_gw_session")
    assert sessions.open(sealed, "gw:session:other") is None
    assert sessions.open(sealed[:-2] + "AA", "_gw_session") is None


def test_past_max_lifetime_is_no_session_even_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = SealedSessions(BOX, 60)
    sealed = sessions.seal(state(), "ctx")
    assert sessions.open(sealed, "ctx") is not None
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert sessions.open(sealed, "ctx") is None
    assert sessions.seconds_left(state(real_time())) < 0


def test_a_sessions_id_is_sealed_with_it_and_kept_through_refreshes() -> None:
    sessions = SealedSessions(BOX, 3600)
    original = state()
    opened = sessions.open(sessions.seal(original.with_tokens(SignedIn("id2", "at2", "rt", time.time() + 3600, time.time())), "ctx"), "ctx")
    assert opened is not None and opened.sid == original.sid and len(original.sid) >= 16
    assert state().sid != original.sid  # each sign-in its own


def test_a_session_sealed_before_ids_existed_gets_one_every_copy_shares() -> None:
    sessions = SealedSessions(BOX, 3600)
    now = int(time.time())
    legacy = {"created": now, "session": {"id": "id-token", "at": "at", "rt": None, "exp": now + 3600, "iat": now}}
    sealed = BOX.seal(json.dumps(legacy).encode(), b"ctx")
    first, again = sessions.open(sealed, "ctx"), SealedSessions(BOX, 3600).open(sealed, "ctx")
    assert first is not None and again is not None and first.sid == again.sid
    planted = {**legacy, "session": {**legacy["session"], "sid": "no"}}  # not of the shape we write: derived instead
    odd = sessions.open(BOX.seal(json.dumps(planted).encode(), b"ctx"), "ctx")
    assert odd is not None and odd.sid == first.sid


def test_the_sign_in_time_keeps_its_milliseconds() -> None:
    """A revocation and a new sign-in in the same second must be told apart (ends.py: begun before)."""
    sessions = SealedSessions(BOX, 3600)
    original = state(started=time.time() - 0.5)
    opened = sessions.open(sessions.seal(original, "ctx"), "ctx")
    assert opened is not None and abs(opened.started_at - original.started_at) < 0.002


def test_a_legacy_sessions_id_survives_a_refresh_of_its_tokens() -> None:
    """Copies taken before and after a refresh of a session sealed without an id are one session."""

    def token(**claims: object) -> str:
        return "e30." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + ".x"

    now = time.time()
    before = SessionState(SignedIn(token(sub="u", origin_jti="o-1", jti="a"), "at", "rt", now + 60, now), now, now)
    after = SessionState(SignedIn(token(sub="u", origin_jti="o-1", jti="b"), "at2", "rt", now + 60, now), now, now)
    assert before.sid == after.sid
    oidc_before = SessionState(SignedIn(token(sub="u", auth_time=5, jti="a"), "at", "rt", now + 60, now), now, now)
    oidc_after = SessionState(SignedIn(token(sub="u", auth_time=5, jti="b"), "at", "rt", now + 60, now), now, now)
    assert oidc_before.sid == oidc_after.sid != before.sid
