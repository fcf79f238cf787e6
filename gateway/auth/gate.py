"""The request path before the upstream: rule -> authenticate -> decide, and the refusals.

Shared by the proxy and by forward-auth (/oauth2/auth), so nginx, Caddy and Traefik get
exactly the answers a proxied request would.
"""

from __future__ import annotations

from aiohttp import web

from ..ops.notes import NOTES
from ..responses import error_response
from .authenticate import Authenticator
from .decide import Decision, Policy, Verdict
from .login import unauthenticated


class Gate:
    def __init__(self, policy: Policy, authenticator: Authenticator | None, endpoints_prefix: str) -> None:
        self.policy = policy
        self.authenticator = authenticator  # None with sign-in off: everyone is anonymous and allowed
        self.endpoints_prefix = endpoints_prefix

    async def verdict(self, request: web.BaseRequest, method: str, host: str, target: str) -> Verdict:
        """`target` is the raw request target (path and query, percent-encoded) being asked about."""
        if self.authenticator is None:
            verdict = self.policy.anonymous
        else:
            rule = self.policy.rule_for(method, host, target)
            verdict = rule if isinstance(rule, Verdict) else self.policy.decide(rule, await self.authenticator.authenticate(request, rule.bearer))
        request[NOTES].verdict = verdict  # for the access log and metrics
        return verdict

    def refusal(self, request: web.BaseRequest, verdict: Verdict) -> web.Response:
        """The response for anything but ALLOW, for a request the gateway would proxy."""
        if verdict.decision is Decision.SIGN_IN:
            return unauthenticated(request, self.endpoints_prefix)
        if verdict.decision is Decision.DENY:
            challenge = 'Bearer realm="gateway"' + (', error="invalid_token"' if verdict.error == "invalid_token" else "")
            return error_response(request, 401, verdict.error, verdict.reason, headers={"WWW-Authenticate": challenge}, json_only=True)
        if verdict.decision is Decision.FORBIDDEN:
            return error_response(request, 403, verdict.error, verdict.reason)
        return error_response(request, 400, verdict.error, f"This path is refused: {verdict.reason}.")
