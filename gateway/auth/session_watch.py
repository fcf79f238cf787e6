"""A long-lived connection bound to the session that opened it (WebSockets).

An HTTP request is checked when it arrives; a WebSocket arrives once and may stay open for days.
The watch holds it to the same rules as a stream of requests would be: it ends when the session is
ended anywhere (sign-out, revocation: EndedSessions tells it at once), when the session passes
max_lifetime, and when its access token is due and cannot be refreshed. A due token is refreshed
exactly as for HTTP (the same single-flight refresher), so a socket outlives its access token as
long as the session could be refreshed.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ..session.model import SessionState, SignedIn
from .authenticate import Authenticator
from .refresh import RefreshOutcome

RETRY_UNAVAILABLE = 5.0  # seconds between refresh attempts while the provider cannot be reached


class SessionWatch:
    def __init__(self, authenticator: Authenticator, max_lifetime: float) -> None:
        self.authenticator = authenticator
        self.max_lifetime = max_lifetime

    async def over(self, request: web.BaseRequest, state: SessionState) -> str:
        """Returns, with the reason, once this session may no longer be used."""
        ends = self.authenticator.ends
        changed = asyncio.Event()
        stop = ends.watch(state, changed.set)
        # Every generation of tokens the browser may still hold: each is handed the latest refresh.
        held = [state.signed_in]
        not_before = 0.0  # no refresh before this: a token that lives less than before_expiry is due at once
        try:
            while True:
                if ends.ended(state):
                    return "session ended"
                now = time.time()
                lifetime_end = state.started_at + self.max_lifetime
                if now >= lifetime_end:
                    return "session expired"
                due = max(self._due(state), not_before)
                if now >= due:
                    refreshed = await self._refresh(request, state, held)
                    if isinstance(refreshed, str):
                        return refreshed
                    if refreshed is not state:
                        state = refreshed
                        held.append(state.signed_in)
                        # At the earliest halfway through the new token's life: never a loop of refreshes.
                        not_before = now + max(RETRY_UNAVAILABLE, (state.signed_in.access_expires_at - now) / 2)
                        continue
                    due = now + RETRY_UNAVAILABLE  # the provider is down: the token is still good, ask again soon
                try:
                    async with asyncio.timeout(max(0.0, min(lifetime_end, due) - now)):
                        await changed.wait()
                except TimeoutError:
                    pass
                changed.clear()
        finally:
            stop()

    def _due(self, state: SessionState) -> float:
        """When the access token must be refreshed (or, without a refresh token, when the session is over)."""
        signed_in = state.signed_in
        if signed_in.refresh_token:
            return signed_in.access_expires_at - self.authenticator.before_expiry
        return signed_in.access_expires_at

    async def _refresh(self, request: web.BaseRequest, state: SessionState, held: list[SignedIn]) -> SessionState | str:
        """The refreshed state; `state` itself to try again later; or why the session is over."""
        signed_in = state.signed_in
        if not signed_in.refresh_token:
            return "session expired"
        authenticator = self.authenticator
        result = await authenticator.refresher.refresh(signed_in, signed_in.refresh_token)
        if result.outcome is RefreshOutcome.INVALID:
            return "session ended"  # not recorded as ended: see Authenticator.session_principal
        if result.outcome is RefreshOutcome.REFRESHED and result.signed_in is not None:
            for older in held:
                authenticator.refresher.hand_on(older, result)
            fresh = state.with_tokens(result.signed_in)
            await authenticator.save(request, state, fresh)
            return fresh
        if signed_in.expires_within(0):
            return "session expired"  # as for HTTP: an expired token the provider cannot refresh now is no session
        return state
