"""The Authenticator with fakes at its I/O seam: the session store, the refresher, the Bearer
verifier and userInfo. No provider, no network, no sleeping.

Sessions hold JWT-shaped but unsigned tokens: the session model reads their payloads without
verifying (they were verified when they arrived). Times are relative to the real clock with
wide margins, so nothing waits. The end-to-end flows are tests/integration/test_sign_in.py and
tests/integration/test_refresh.py.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.auth.authenticate import Authenticator, UserInfo
from gateway.auth.principal import BearerRefused, Principal
from gateway.auth.refresh import RefreshOutcome, RefreshResult
from gateway.errors import ProviderError, SessionError, TokenError
from gateway.oidc.profile import COGNITO, GENERIC_OIDC, ProviderProfile
from gateway.session import cookies
from gateway.session.ends import EndedSessions
from gateway.session.model import SessionState, SignedIn
from gateway.session.store import SetCookie

COOKIE = "_gw_session"
BEFORE_EXPIRY = 60.0


def fake_jwt(**claims: Any) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{payload}.sig"


def signed_in(
    expires_in: float = 3600,
    refresh_token: str | None = "rt-1",
    generation: int = 0,
    id_claims: dict[str, Any] | None = None,
    access_claims: dict[str, Any] | None = None,
) -> SignedIn:
    now = time.time()
    id_payload = {"sub": "u1", "cognito:username": "alice", "email": "alice@example.com", "token_use": "id", "gen": generation}
    access_payload = {"sub": "u1", "username": "alice", "scope": "openid email", "cognito:groups": ["admins"], "gen": generation}
    return SignedIn(
        id_token=fake_jwt(**(id_payload if id_claims is None else id_claims)),
        access_token=fake_jwt(**(access_payload if access_claims is None else access_claims)),
        refresh_token=refresh_token,
        access_expires_at=now + expires_in,
        created_at=now - 1000,
    )


def session(tokens: SignedIn | None = None, seen_ago: float | None = 0.0) -> SessionState:
    tokens = tokens or signed_in()
    return SessionState(tokens, tokens.created_at, None if seen_ago is None else time.time() - seen_ago)


class FakeStore:
    """A session store in memory: one session, every call recorded."""

    cookie_name = COOKIE

    def __init__(self, state: SessionState | None = None) -> None:
        self.state = state
        self.loads = 0
        self.saved: list[SessionState] = []
        self.cleared = 0
        self.load_error: SessionError | None = None
        self.save_error: SessionError | None = None

    async def load(self, request: web.BaseRequest) -> SessionState | None:
        self.loads += 1
        if self.load_error is not None:
            raise self.load_error
        return self.state

    async def save(self, request: web.BaseRequest, state: SessionState) -> list[SetCookie]:
        if self.save_error is not None:
            raise self.save_error
        self.saved.append(state)
        self.state = state
        return [SetCookie(COOKIE, f"sealed-{len(self.saved)}", max_age=3600)]

    async def clear(self, request: web.BaseRequest) -> list[SetCookie]:
        self.cleared += 1
        self.state = None
        return [SetCookie(COOKIE, None)]


class FakeRefresher:
    def __init__(self, result: RefreshResult | None = None) -> None:
        self.result = result or RefreshResult(RefreshOutcome.UNAVAILABLE)
        self.calls: list[tuple[SignedIn, str]] = []
        self.handed_on: list[SignedIn] = []

    async def refresh(self, signed_in: SignedIn, refresh_token: str) -> RefreshResult:
        self.calls.append((signed_in, refresh_token))
        return self.result


    def hand_on(self, older: SignedIn, result: RefreshResult) -> None:
        self.handed_on.append(older)


class FakeBearer:
    """Token -> claims; any other token fails verification."""

    def __init__(self, tokens: dict[str, dict[str, Any]] | None = None) -> None:
        self.tokens = tokens or {}
        self.calls: list[str] = []

    async def verify(self, token: str) -> dict[str, Any]:
        self.calls.append(token)
        if token not in self.tokens:
            raise TokenError("invalid signature")
        return self.tokens[token]


class FakeUserInfo:
    """Answers in turn (None: the provider could not say); every call recorded."""

    def __init__(self, *answers: dict[str, Any] | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, Any, float]] = []

    async def claims(self, access_token: str, sub: Any, expires_at: float) -> dict[str, Any] | None:
        self.calls.append((access_token, sub, expires_at))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def authenticator(
    store: FakeStore,
    refresher: FakeRefresher | None = None,
    bearer: FakeBearer | None = None,
    profile: ProviderProfile = COGNITO,
    idle_timeout: float | None = None,
    userinfo: FakeUserInfo | None = None,
    ends: EndedSessions | None = None,
) -> Authenticator:
    return Authenticator(
        store,  # type: ignore[arg-type]
        refresher or FakeRefresher(),  # type: ignore[arg-type]
        bearer or FakeBearer(),  # type: ignore[arg-type]
        profile,
        before_expiry=BEFORE_EXPIRY,
        idle_timeout=idle_timeout,
        ends=ends if ends is not None else EndedSessions(12 * 3600),
        userinfo=userinfo,  # type: ignore[arg-type]
    )


def request(authorization: str | None = None) -> web.Request:
    return make_mocked_request("GET", "/", headers={"Authorization": authorization} if authorization else {})


async def set_cookies(req: web.Request) -> list[str]:
    """The Set-Cookie lines the response to `req` will carry (what the app's on_prepare adds)."""
    response = web.StreamResponse()
    await cookies.on_prepare(req, response)
    return response.headers.getall("Set-Cookie", [])


# --- sessions ----------------------------------------------------------------------------


async def test_no_session_is_nobody() -> None:
    store = FakeStore()
    req = request()
    assert await authenticator(store).authenticate(req, bearer_allowed=False) is None
    assert store.loads == 1 and store.saved == [] and store.cleared == 0
    assert await set_cookies(req) == []


async def test_a_live_session_is_a_principal_with_its_id_token_claims() -> None:
    tokens = signed_in()
    p = await authenticator(FakeStore(session(tokens))).authenticate(request(), bearer_allowed=False)
    assert isinstance(p, Principal)
    assert p.from_bearer is False
    assert p.access_token == tokens.access_token and p.access_expires_at == tokens.access_expires_at
    assert p.claims["sub"] == "u1" and p.claims["email"] == "alice@example.com" and p.claims["token_use"] == "id"
    assert p.claims["cognito:username"] == "alice"
    # scope and groups come from the access token
    assert p.claims["scope"] == "openid email" and p.claims["cognito:groups"] == ["admins"]


async def test_the_same_stored_state_gives_the_same_principal() -> None:
    auth = authenticator(FakeStore(session()))
    first = await auth.authenticate(request(), bearer_allowed=False)
    second = await auth.authenticate(request(), bearer_allowed=False)
    assert first is not None and second is first


async def test_another_stored_state_gives_another_principal() -> None:
    store = FakeStore(session())
    auth = authenticator(store)
    first = await auth.authenticate(request(), bearer_allowed=False)
    store.state = session(signed_in(id_claims={"sub": "u2", "cognito:username": "bob"}))
    second = await auth.authenticate(request(), bearer_allowed=False)
    assert isinstance(first, Principal) and isinstance(second, Principal)
    assert second is not first and second.claims["cognito:username"] == "bob"


async def test_cognito_username_is_kept_from_the_id_token() -> None:
    tokens = signed_in(id_claims={"sub": "u1", "cognito:username": "alice", "preferred_username": "other"})
    p = await authenticator(FakeStore(session(tokens)), profile=GENERIC_OIDC).authenticate(request(), False)
    assert isinstance(p, Principal) and p.claims["cognito:username"] == "alice"


@pytest.mark.parametrize(
    ("id_claims", "name"),
    [
        ({"sub": "u1", "preferred_username": "bob"}, "bob"),
        ({"sub": "u1"}, "u1"),
    ],
)
async def test_generic_oidc_names_the_user_by_preferred_username_or_sub(id_claims: dict[str, Any], name: str) -> None:
    tokens = signed_in(id_claims=id_claims, access_claims={"sub": "u1"})
    p = await authenticator(FakeStore(session(tokens)), profile=GENERIC_OIDC).authenticate(request(), False)
    assert isinstance(p, Principal) and p.claims["cognito:username"] == name


async def test_store_errors_on_load_propagate() -> None:
    store = FakeStore(session())
    store.load_error = SessionError("redis down")
    with pytest.raises(SessionError):
        await authenticator(store).authenticate(request(), bearer_allowed=False)


# --- idle timeout and touching -----------------------------------------------------------


@pytest.mark.parametrize("seen_ago", [601.0, 10_000.0, None])
async def test_an_idle_session_is_ended(seen_ago: float | None) -> None:
    store = FakeStore(session(signed_in(expires_in=5), seen_ago=seen_ago))  # due for refresh too: not refreshed
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, signed_in(generation=1)))
    req = request()
    assert await authenticator(store, refresher, idle_timeout=600).authenticate(req, bearer_allowed=False) is None
    assert store.cleared == 1 and store.saved == []
    assert refresher.calls == []
    [line] = await set_cookies(req)
    assert line.startswith(f"{COOKIE}=") and "Max-Age=0" in line and "1970" in line


async def test_without_idle_timeout_an_old_session_is_neither_ended_nor_touched() -> None:
    store = FakeStore(session(seen_ago=1_000_000))
    assert await authenticator(store, idle_timeout=None).authenticate(request(), False) is not None
    assert store.cleared == 0 and store.saved == []


@pytest.mark.parametrize(
    ("idle_timeout", "seen_ago"),
    [
        (3600.0, 120.0),  # touched once a minute at most...
        (300.0, 45.0),  # ...or every tenth of the idle timeout, if that is sooner
    ],
)
async def test_a_session_seen_a_while_ago_is_touched(idle_timeout: float, seen_ago: float) -> None:
    state = session(seen_ago=seen_ago)
    store = FakeStore(state)
    req = request()
    before = time.time()
    p = await authenticator(store, idle_timeout=idle_timeout).authenticate(req, bearer_allowed=False)
    assert isinstance(p, Principal)
    [saved] = store.saved
    assert saved.seen_at is not None and before <= saved.seen_at <= time.time()
    assert saved.signed_in is state.signed_in and saved.started_at == state.started_at
    assert await set_cookies(req) == [SetCookie(COOKIE, "sealed-1", max_age=3600).header_value()]


@pytest.mark.parametrize(("idle_timeout", "seen_ago"), [(3600.0, 10.0), (3600.0, 55.0), (300.0, 20.0)])
async def test_a_recently_seen_session_is_not_rewritten(idle_timeout: float, seen_ago: float) -> None:
    store = FakeStore(session(seen_ago=seen_ago))
    req = request()
    assert await authenticator(store, idle_timeout=idle_timeout).authenticate(req, bearer_allowed=False) is not None
    assert store.saved == [] and store.cleared == 0
    assert await set_cookies(req) == []


# --- refresh -----------------------------------------------------------------------------


async def test_a_session_about_to_expire_is_refreshed_and_saved() -> None:
    old = signed_in(expires_in=30)
    new = signed_in(expires_in=3600, generation=1, id_claims={"sub": "u1", "cognito:username": "alice", "gen": 1})
    state = session(old)
    store = FakeStore(state)
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, new))
    req = request()
    p = await authenticator(store, refresher).authenticate(req, bearer_allowed=False)
    assert refresher.calls == [(old, "rt-1")]
    [saved] = store.saved
    assert saved.signed_in is new and saved.started_at == state.started_at and saved.seen_at == state.seen_at
    assert isinstance(p, Principal)
    assert p.access_token == new.access_token and p.access_expires_at == new.access_expires_at
    assert p.claims["gen"] == 1
    assert await set_cookies(req) == [SetCookie(COOKIE, "sealed-1", max_age=3600).header_value()]


async def test_a_touch_and_a_refresh_save_once() -> None:
    state = session(signed_in(expires_in=30), seen_ago=120)
    store = FakeStore(state)
    new = signed_in(generation=1)
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, new))
    assert await authenticator(store, refresher, idle_timeout=3600).authenticate(request(), False) is not None
    [saved] = store.saved
    assert saved.signed_in is new
    assert saved.seen_at is not None and saved.seen_at > time.time() - 5
    assert saved.started_at == state.started_at


async def test_a_session_not_yet_due_is_not_refreshed() -> None:
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, signed_in(generation=1)))
    store = FakeStore(session(signed_in(expires_in=BEFORE_EXPIRY + 30)))
    assert await authenticator(store, refresher).authenticate(request(), False) is not None
    assert refresher.calls == [] and store.saved == []


async def test_an_invalid_refresh_signs_out_without_clearing() -> None:
    store = FakeStore(session(signed_in(expires_in=30), seen_ago=120))  # a touch was due as well
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.INVALID))
    req = request()
    assert await authenticator(store, refresher, idle_timeout=3600).authenticate(req, False) is None
    assert len(refresher.calls) == 1
    assert store.cleared == 0 and store.saved == []
    assert await set_cookies(req) == []


async def test_an_invalid_refresh_is_not_recorded_as_an_ended_session() -> None:
    """It may be the losing side of a race on a rotated refresh token whose winner continues the session."""
    ends = EndedSessions(12 * 3600)
    state = session(signed_in(expires_in=30))
    await authenticator(FakeStore(state), FakeRefresher(RefreshResult(RefreshOutcome.INVALID)), ends=ends).authenticate(request(), False)
    assert not ends.ended(state)


async def test_an_ended_session_is_nobody_and_its_cookie_is_cleared() -> None:
    ends = EndedSessions(12 * 3600)
    state = session()
    await ends.end_session(state)
    store = FakeStore(state)
    req = request()
    assert await authenticator(store, ends=ends).authenticate(req, False) is None
    assert store.cleared == 1
    assert await set_cookies(req) == [SetCookie(COOKIE, None).header_value()]


async def test_a_revoked_user_ends_sessions_begun_before_but_not_after() -> None:
    ends = EndedSessions(12 * 3600)
    before = session()
    await ends.end_user("u1", now=before.started_at + 1)
    assert await authenticator(FakeStore(before), ends=ends).authenticate(request(), False) is None
    tokens = signed_in()
    after = SessionState(tokens, before.started_at + 2, time.time())  # signed in again after the revocation
    assert isinstance(await authenticator(FakeStore(after), ends=ends).authenticate(request(), False), Principal)


async def test_an_unavailable_provider_keeps_a_still_valid_token() -> None:
    old = signed_in(expires_in=30)
    store = FakeStore(session(old))
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.UNAVAILABLE))
    p = await authenticator(store, refresher).authenticate(request(), False)
    assert len(refresher.calls) == 1
    assert isinstance(p, Principal) and p.access_token == old.access_token
    assert store.saved == [] and store.cleared == 0


async def test_an_unavailable_provider_and_an_expired_token_is_nobody() -> None:
    store = FakeStore(session(signed_in(expires_in=-5)))
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.UNAVAILABLE))
    assert await authenticator(store, refresher).authenticate(request(), False) is None
    assert len(refresher.calls) == 1 and store.cleared == 0


async def test_without_a_refresh_token_there_is_no_refresh() -> None:
    refresher = FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, signed_in(generation=1)))
    due = FakeStore(session(signed_in(expires_in=30, refresh_token=None)))
    assert await authenticator(due, refresher).authenticate(request(), False) is not None
    expired = FakeStore(session(signed_in(expires_in=-5, refresh_token=None)))
    assert await authenticator(expired, refresher).authenticate(request(), False) is None
    assert refresher.calls == [] and due.saved == [] and expired.saved == []


async def test_a_failed_save_still_serves_the_refreshed_tokens(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(session(signed_in(expires_in=30)))
    store.save_error = SessionError("redis down")
    new = signed_in(generation=1)
    req = request()
    with caplog.at_level(logging.ERROR, logger="gateway.auth"):
        p = await authenticator(store, FakeRefresher(RefreshResult(RefreshOutcome.REFRESHED, new))).authenticate(req, False)
    assert isinstance(p, Principal) and p.access_token == new.access_token
    assert "redis down" in caplog.text
    assert await set_cookies(req) == []


# --- Bearer ------------------------------------------------------------------------------

BEARER = "eyJ.bearer.token"


def bearer_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "svc", "username": "robot", "scope": "api/read", "exp": int(time.time()) + 3600, "token_use": "access", **extra}


async def test_bearer_not_allowed_ignores_authorization() -> None:
    bearer = FakeBearer({BEARER: bearer_claims()})
    nobody = await authenticator(FakeStore(), bearer=bearer).authenticate(request(f"Bearer {BEARER}"), bearer_allowed=False)
    assert nobody is None
    p = await authenticator(FakeStore(session()), bearer=bearer).authenticate(request(f"Bearer {BEARER}"), bearer_allowed=False)
    assert isinstance(p, Principal) and p.from_bearer is False and p.claims["sub"] == "u1"
    assert bearer.calls == []


async def test_a_valid_bearer_token_is_a_principal() -> None:
    claims = bearer_claims()
    bearer = FakeBearer({BEARER: claims})
    store = FakeStore(session())  # a session as well: the token is who asks
    p = await authenticator(store, bearer=bearer).authenticate(request(f"Bearer {BEARER}"), bearer_allowed=True)
    assert isinstance(p, Principal)
    assert p.from_bearer is True and p.access_token == BEARER
    assert p.access_expires_at == float(claims["exp"])
    assert p.claims["sub"] == "svc" and p.claims["scope"] == "api/read"
    assert p.claims["cognito:username"] == "robot"  # Cognito's access token says `username`
    assert store.loads == 0


async def test_a_bearer_tokens_own_cognito_username_is_kept() -> None:
    claims = bearer_claims(**{"cognito:username": "robot-1"})
    p = await authenticator(FakeStore(), bearer=FakeBearer({BEARER: claims})).authenticate(request(f"Bearer {BEARER}"), True)
    assert isinstance(p, Principal) and p.claims["cognito:username"] == "robot-1"


async def test_a_bearer_token_without_a_username_gets_none_on_cognito() -> None:
    claims = {k: v for k, v in bearer_claims().items() if k != "username"}  # client_credentials
    p = await authenticator(FakeStore(), bearer=FakeBearer({BEARER: claims})).authenticate(request(f"Bearer {BEARER}"), True)
    assert isinstance(p, Principal) and "cognito:username" not in p.claims


async def test_a_bearer_token_on_a_generic_provider_is_named_by_sub() -> None:
    claims = {k: v for k, v in bearer_claims().items() if k != "username"}
    auth = authenticator(FakeStore(), bearer=FakeBearer({BEARER: claims}), profile=GENERIC_OIDC)
    p = await auth.authenticate(request(f"Bearer {BEARER}"), True)
    assert isinstance(p, Principal) and p.claims["cognito:username"] == "svc"


async def test_a_bearer_token_is_verified_once() -> None:
    bearer = FakeBearer({BEARER: bearer_claims()})
    auth = authenticator(FakeStore(), bearer=bearer)
    first = await auth.authenticate(request(f"Bearer {BEARER}"), True)
    second = await auth.authenticate(request(f"bearer  {BEARER} "), True)
    assert bearer.calls == [BEARER]
    assert isinstance(first, Principal) and second is first


async def test_a_refused_bearer_token() -> None:
    bearer = FakeBearer()
    auth = authenticator(FakeStore(session()), bearer=bearer)
    assert await auth.authenticate(request("Bearer forged.token.x"), True) == BearerRefused("invalid signature")
    assert await auth.authenticate(request("Bearer forged.token.x"), True) == BearerRefused("invalid signature")
    assert bearer.calls == ["forged.token.x"] * 2  # a refusal is not cached as a principal


async def test_a_non_ascii_bearer_token_is_refused_unverified() -> None:
    bearer = FakeBearer({"tök": bearer_claims()})
    result = await authenticator(FakeStore(), bearer=bearer).authenticate(request("Bearer tök"), True)
    assert isinstance(result, BearerRefused) and result.reason
    assert bearer.calls == []


async def test_another_scheme_on_a_bearer_rule_falls_back_to_the_session() -> None:
    bearer = FakeBearer()
    p = await authenticator(FakeStore(session()), bearer=bearer).authenticate(request("Basic dXNlcjpwYXNz"), True)
    assert isinstance(p, Principal) and p.from_bearer is False
    assert bearer.calls == []


# --- userInfo ----------------------------------------------------------------------------

INFO = {"sub": "u1", "email": "info@example.com", "phone_number": "+15550100", "name": "Alice Info"}


async def test_userinfo_claims_are_merged_under_the_token_claims() -> None:
    tokens = signed_in()
    info = FakeUserInfo(INFO)
    p = await authenticator(FakeStore(session(tokens)), userinfo=info).authenticate(request(), False)
    assert isinstance(p, Principal)
    assert p.claims["email"] == "alice@example.com"  # the token's
    assert p.claims["phone_number"] == "+15550100" and p.claims["name"] == "Alice Info"
    assert info.calls == [(tokens.access_token, "u1", tokens.access_expires_at)]


async def test_userinfo_success_is_kept_with_the_principal() -> None:
    info = FakeUserInfo(INFO)
    auth = authenticator(FakeStore(session()), userinfo=info)
    first = await auth.authenticate(request(), False)
    second = await auth.authenticate(request(), False)
    assert first is not None and second is first
    assert len(info.calls) == 1


async def test_userinfo_failure_serves_token_claims_and_asks_again() -> None:
    info = FakeUserInfo(None, INFO)
    auth = authenticator(FakeStore(session()), userinfo=info)
    first = await auth.authenticate(request(), False)
    assert isinstance(first, Principal)
    assert "phone_number" not in first.claims and first.claims["email"] == "alice@example.com"
    second = await auth.authenticate(request(), False)
    assert len(info.calls) == 2
    assert isinstance(second, Principal) and second is not first and second.claims["phone_number"] == "+15550100"
    third = await auth.authenticate(request(), False)
    assert third is second and len(info.calls) == 2


async def test_userinfo_failure_on_a_bearer_token_is_not_cached() -> None:
    bearer = FakeBearer({BEARER: bearer_claims()})
    info = FakeUserInfo(None, INFO)
    auth = authenticator(FakeStore(), bearer=bearer, userinfo=info)
    first = await auth.authenticate(request(f"Bearer {BEARER}"), True)
    second = await auth.authenticate(request(f"Bearer {BEARER}"), True)
    third = await auth.authenticate(request(f"Bearer {BEARER}"), True)
    assert isinstance(first, Principal) and "phone_number" not in first.claims
    assert isinstance(second, Principal) and second.claims["phone_number"] == "+15550100"
    assert third is second
    assert bearer.calls == [BEARER, BEARER] and len(info.calls) == 2


# --- UserInfo (the real one, over a fake provider) ----------------------------------------


class FakeUserInfoClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.down = False

    async def userinfo(self, access_token: str, expected_sub: Any = None) -> dict[str, Any]:
        self.calls.append((access_token, expected_sub))
        if self.down:
            raise ProviderError("userInfo endpoint unreachable")
        return {"sub": expected_sub, "phone_number": "+1"}


def provider_with(client: FakeUserInfoClient) -> Any:
    loaded = SimpleNamespace(client=client)

    async def load() -> Any:
        return loaded

    return SimpleNamespace(load=load)


async def test_userinfo_is_fetched_once_per_access_token() -> None:
    client = FakeUserInfoClient()
    info = UserInfo(provider_with(client))
    until = time.time() + 3600
    assert await info.claims("at-1", "u1", until) == {"sub": "u1", "phone_number": "+1"}
    assert await info.claims("at-1", "u1", until) == {"sub": "u1", "phone_number": "+1"}
    await info.claims("at-2", "u1", until)
    assert client.calls == [("at-1", "u1"), ("at-2", "u1")]


async def test_userinfo_failure_is_none_and_not_kept() -> None:
    client = FakeUserInfoClient()
    client.down = True
    info = UserInfo(provider_with(client))
    until = time.time() + 3600
    assert await info.claims("at-1", "u1", until) is None
    client.down = False
    assert await info.claims("at-1", "u1", until) == {"sub": "u1", "phone_number": "+1"}
    assert len(client.calls) == 2
