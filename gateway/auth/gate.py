"""The decision for one request: which rule, who is asking, and whether they may.

Shared by the proxy's middleware and by forward-auth (/oauth2/auth), so nginx, Caddy and
Traefik get exactly the answers a proxied request would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from aiohttp import web
from aiohttp_session import Session, get_session

from ..config import Config, RuleConfig
from ..errors import TokenError
from ..session.model import SignedIn, finite_number
from .bearer import BearerVerifier, bearer_token
from .identity import Principal
from .paths import AmbiguousPath, rule_path, split_target
from .refresh import RefreshOutcome, Refresher
from .rules import Rules, permits

SEEN = "seen"  # session key: last activity, for idle_timeout


class Decision(Enum):
    ALLOW = "allow"
    SIGN_IN = "sign_in"  # browsers are sent to sign in, API clients get 401
    DENY = "deny"  # 401 JSON whatever the client
    FORBIDDEN = "forbidden"  # signed in, but the rule's groups/scopes/claims/domains say no
    BAD_PATH = "bad_path"  # an ambiguous raw path (see paths.py)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    principal: Principal | None = None
    error: str = ""  # machine code for 401/400 bodies
    reason: str = ""  # one human sentence


class Gate:
    def __init__(self, config: Config, refresher: Refresher, bearer: BearerVerifier) -> None:
        self.rules = Rules(config.rules, config.default_rule)
        self.refresher = refresher
        self.bearer = bearer
        self.before_expiry = config.refresh.before_expiry
        self.idle_timeout = config.session.idle_timeout

    async def decide(self, request: web.Request, method: str, host: str, target: str) -> Verdict:
        """`target` is the raw request target (path and query, percent-encoded) being asked about."""
        try:
            path = rule_path(split_target(target)[0])
        except AmbiguousPath as exc:
            return Verdict(Decision.BAD_PATH, error="ambiguous_path", reason=exc.reason)
        rule = self.rules.rule_for(method, host, path)
        token = bearer_token(request) if rule.bearer else None
        if token is not None:
            try:
                claims = await self.bearer.verify(token)
            except TokenError as exc:
                return Verdict(Decision.DENY, error="invalid_token", reason=exc.reason)
            principal: Principal | None = Principal(claims, token, float(claims["exp"]), from_bearer=True)
        else:
            principal = await self.session_principal(request)
        return self._judge(rule, principal)

    def _judge(self, rule: RuleConfig, principal: Principal | None) -> Verdict:
        if rule.allow_anyone:
            return Verdict(Decision.ALLOW, principal)
        if principal is None:
            if rule.unauthenticated == "deny":
                return Verdict(Decision.DENY, error="missing_token" if rule.bearer else "unauthenticated", reason="Sign-in required.")
            return Verdict(Decision.SIGN_IN)
        if not permits(rule, principal.claims):
            return Verdict(Decision.FORBIDDEN, principal, error="forbidden", reason="You are signed in but not allowed here.")
        return Verdict(Decision.ALLOW, principal)

    async def session_principal(self, request: web.Request) -> Principal | None:
        """The session's identity, refreshed first if its access token is about to expire."""
        session = await get_session(request)
        signed_in = None if session.empty else SignedIn.from_dict(dict(session))
        if signed_in is None or (self.idle_timeout and _idle_expired(session, self.idle_timeout)):
            if not session.empty:
                session.invalidate()
            return None
        if self.idle_timeout:
            _touch(session, self.idle_timeout)
        if signed_in.refresh_token and signed_in.expires_within(self.before_expiry):
            result = await self.refresher.refresh(signed_in, signed_in.refresh_token)
            if result.outcome is RefreshOutcome.REFRESHED and result.signed_in is not None:
                signed_in = result.signed_in
                session.update(signed_in.to_dict())  # goes out on this response (middleware.save_on_prepare)
            elif result.outcome is RefreshOutcome.INVALID:
                # Not invalidated: with several workers and rotating refresh tokens, this may be the
                # loser of a race whose winner is setting fresh cookies on a parallel response; a
                # deletion here could overwrite them. Signing in again replaces the session anyway.
                return None
        if signed_in.expires_within(0):  # expired, and the provider could not refresh it just now
            return None
        return Principal(signed_in.claims, signed_in.access_token, signed_in.access_expires_at)


def _last_seen(session: Session) -> float | None:
    """Last activity; None when the sealed value is not a finite number (then the session counts as idle)."""
    return finite_number(session.get(SEEN, session.created))


def _idle_expired(session: Session, idle_timeout: float) -> bool:
    seen = _last_seen(session)
    return seen is None or time.time() - seen > idle_timeout


def _touch(session: Session, idle_timeout: float) -> None:
    """Record activity, rewriting the session now and then rather than on every request."""
    now = time.time()
    seen = _last_seen(session)
    if seen is None or now - seen > min(60.0, idle_timeout / 10):
        session[SEEN] = int(now)
