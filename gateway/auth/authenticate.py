"""Authentication: a request in, a principal out. The only step of the request path with I/O.

A session is loaded from its store, ended when idle or past its lifetime, refreshed shortly
before its access token expires, and turned into a principal; a Bearer token (on rules that
take one) is verified. An unchanged session yields the very same Principal object on every
request, so the decision and the header rendering behind it are dict lookups.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import web

from ..errors import ProviderError, SessionError, TokenError
from ..oidc.profile import ProviderProfile
from ..oidc.provider import Provider
from ..session import cookies
from ..session.ends import EndedSessions
from ..session.model import SessionState
from ..session.store import SessionStore
from ..session.user_index import UserIndex
from ..ttl_cache import TtlCache
from .bearer import BearerVerifier, bearer_token
from .principal import Authentication, BearerRefused, Principal, is_machine
from .refresh import RefreshOutcome, Refresher

log = logging.getLogger("gateway.auth")
# The session a request was authenticated with (after refresh): what a WebSocket stays bound to.
SESSION = web.RequestKey("session_state", SessionState)


class UserInfo:
    """The provider's userInfo claims, fetched once per access token and kept until it expires."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._cache: TtlCache[dict[str, Any]] = TtlCache()

    async def claims(self, access_token: str, sub: Any, expires_at: float) -> dict[str, Any] | None:
        """None when the provider could not say: the caller then sends token claims only, and asks again later."""
        key = hashlib.sha256(access_token.encode()).digest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            client = (await self.provider.load()).client
            info = await client.userinfo(access_token, expected_sub=sub)
        except ProviderError as exc:
            log.warning("userInfo enrichment failed, sending token claims only: %s", exc)
            return None
        self._cache.put(key, info, expires_at)
        return info


class Authenticator:
    def __init__(
        self,
        store: SessionStore,
        refresher: Refresher,
        bearer: BearerVerifier,
        profile: ProviderProfile,
        *,
        before_expiry: float,
        idle_timeout: float | None,
        ends: EndedSessions,
        index: UserIndex | None = None,
        userinfo: UserInfo | None = None,
    ) -> None:
        self.store = store
        self.ends = ends
        self.index = index  # with Redis: who has which sessions, for `sessions list|revoke`
        self.refresher = refresher
        self.bearer = bearer
        self.profile = profile
        self.before_expiry = before_expiry
        self.idle_timeout = idle_timeout
        self.userinfo = userinfo
        # Derived from a stored state, which the store hands out unchanged while the session is:
        # entries go when the store's cache drops the state.
        self._principals: WeakKeyDictionary[SessionState, Principal] = WeakKeyDictionary()
        self._bearers: TtlCache[Principal] = TtlCache()

    async def authenticate(self, request: web.BaseRequest, bearer_allowed: bool) -> Authentication:
        token = bearer_token(request) if bearer_allowed else None
        if token is not None:
            return await self._bearer_principal(token)
        return await self.session_principal(request)

    async def _bearer_principal(self, token: str) -> Principal | BearerRefused:
        if not token.isascii():  # a JWT is base64url and dots; a raw non-UTF-8 byte reads as a lone surrogate
            return BearerRefused("malformed token")
        key = hashlib.sha256(token.encode()).digest()
        principal = self._bearers.get(key)
        if principal is None:
            try:
                claims = await self.bearer.verify(token)
            except TokenError as exc:
                return BearerRefused(exc.reason)
            principal, complete = await self._principal(claims, token, float(claims["exp"]), from_bearer=True)
            if complete:
                self._bearers.put(key, principal, principal.access_expires_at)
        return principal

    async def session_principal(self, request: web.BaseRequest) -> Principal | None:
        """The session's identity, after the idle and lifetime rules, refreshed first if it is about to expire."""
        state = await self.store.load(request)  # SessionError: the store is down, a 503
        if state is None:
            return None
        if self.ends.ended(state):  # signed out (anywhere) or revoked: every copy is done
            cookies.queue(request, await self.store.clear(request))
            return None
        now = time.time()
        updated = state
        if self.idle_timeout:
            if state.seen_at is None or now - state.seen_at > self.idle_timeout:
                cookies.queue(request, await self.store.clear(request))
                return None
            if now - state.seen_at > min(60.0, self.idle_timeout / 10):  # rewritten now and then, not on every request
                updated = state.seen(now)
        signed_in = state.signed_in
        if signed_in.refresh_token and signed_in.expires_within(self.before_expiry, now):
            result = await self.refresher.refresh(signed_in, signed_in.refresh_token)
            if result.outcome is RefreshOutcome.REFRESHED and result.signed_in is not None:
                updated = updated.with_tokens(result.signed_in)
            elif result.outcome is RefreshOutcome.INVALID:
                # Neither cleared nor recorded as ended: with several workers and rotating refresh tokens,
                # this may be the loser of a race whose winner is setting fresh cookies (of this same
                # session id) on a parallel response. Every copy still holding these tokens is refused
                # anyway, by the provider or by the refresher's memory of this answer.
                return None
        if updated is not state:
            await self.save(request, state, updated)
        if updated.signed_in.expires_within(0):  # expired, and the provider could not refresh it just now
            return None
        request[SESSION] = updated
        principal = self._principals.get(updated)
        if principal is None:
            signed_in = updated.signed_in
            principal, complete = await self._principal(signed_in.claims, signed_in.access_token, signed_in.access_expires_at)
            if complete:
                self._principals[updated] = principal
        return principal

    async def save(self, request: web.BaseRequest, old: SessionState, new: SessionState) -> None:
        """Store a session this request changed (touched or refreshed); a refresh goes into the user index too.

        On a WebSocket's request the queued cookies never reach the browser: the Redis store's write
        does, the cookie store's next request picks the result up from the refresher.
        """
        try:
            cookies.queue(request, await self.store.save(request, new))
        except SessionError as exc:  # serve this request with the new tokens; the next one retries
            log.error("could not save the refreshed session: %s", exc)
        if self.index is not None and new.signed_in is not old.signed_in:
            await self.index.record(new)

    async def _principal(
        self, claims: dict[str, Any], access_token: str, expires_at: float, from_bearer: bool = False
    ) -> tuple[Principal, bool]:
        """The principal, and whether it is complete (False: userInfo could not be had; not to be reused)."""
        if from_bearer and is_machine(claims):
            # An app client, never a user: no name derived from `sub`, and no userInfo (Cognito
            # refuses it for client_credentials tokens: asking would fail on every request).
            return Principal(claims, access_token, expires_at, from_bearer=True, machine=True), True
        if "cognito:username" not in claims:
            name = self.profile.username(claims)
            if name:
                claims = {**claims, "cognito:username": name}
        complete = True
        if self.userinfo is not None:
            info = await self.userinfo.claims(access_token, claims.get("sub"), expires_at)
            complete = info is not None
            claims = {**(info or {}), **claims}
        return Principal(claims, access_token, expires_at, from_bearer), complete
