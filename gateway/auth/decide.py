"""The decision: (method, host, path, principal) -> Verdict. Pure: no I/O, no request object.

Shaped after pomerium's evaluator Result{Allow, Deny, Headers, HeadersToRemove}: the verdict
carries everything the upstream gets, so the proxy and /oauth2/auth only apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..config import RuleConfig, Unauthenticated
from ..short_cache import cache_short
from .identity import HeaderRenderer, Headers, SpoofedHeaders
from .paths import AmbiguousPath, rule_path, split_target
from .principal import Authentication, BearerRefused, Principal
from .rules import Rules, permits


class Decision(Enum):
    ALLOW = "allow"
    SIGN_IN = "sign_in"  # browsers are sent to sign in, API clients get 401
    DENY = "deny"  # 401 JSON whatever the client
    FORBIDDEN = "forbidden"  # signed in, but the rule's groups/scopes/claims/domains say no
    BAD_PATH = "bad_path"  # an ambiguous raw path (see paths.py)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    headers_to_remove: SpoofedHeaders
    principal: Principal | None = None
    headers_to_set: Headers = ()
    error: str = ""  # machine code for 401/400 bodies
    reason: str = ""  # one human sentence
    rule: str = ""  # the rule's path ("default" for the default rule), for logs and metrics


@cache_short(maxsize=4096, max_len=512)  # the same paths come again and again
def _rule_path(target: str) -> str | AmbiguousPath:
    """The path rules match, or why it is refused (a value, so that refusals are cached too)."""
    try:
        return rule_path(split_target(target)[0])
    except AmbiguousPath as exc:
        return exc.with_traceback(None)  # kept in the cache: without the frames it was raised in


class Policy:
    """The rules, and what the upstream is told about the principal they let through."""

    def __init__(self, rules: Rules, spoofed: SpoofedHeaders, renderer: HeaderRenderer | None) -> None:
        self.rules = rules
        self.spoofed = spoofed
        self.renderer = renderer  # None with sign-in off: nobody to describe
        self.anonymous = Verdict(Decision.ALLOW, spoofed)
        self._anonymous_by_rule: dict[int, Verdict] = {}  # id(rule): rules live as long as the policy

    def rule_for(self, method: str, host: str, target: str) -> RuleConfig | Verdict:
        """The rule for a raw request target (path and query, percent-encoded); a BAD_PATH verdict if ambiguous."""
        path = _rule_path(target)
        if isinstance(path, AmbiguousPath):
            return self._verdict(Decision.BAD_PATH, error="ambiguous_path", reason=path.reason)
        return self.rules.rule_for(method, host, path)

    def decide(self, rule: RuleConfig, authentication: Authentication) -> Verdict:
        label = rule.path or "default"
        if isinstance(authentication, BearerRefused):
            return self._verdict(Decision.DENY, error="invalid_token", reason=authentication.reason, rule=label)
        principal = authentication
        if rule.allow_anyone:
            return self._allow(rule, principal)
        if principal is None:
            if rule.unauthenticated is Unauthenticated.DENY:
                error = "missing_token" if rule.bearer else "unauthenticated"
                return self._verdict(Decision.DENY, error=error, reason="Sign-in required.", rule=label)
            return self._verdict(Decision.SIGN_IN, rule=label)
        if not permits(rule, principal.claims):
            return self._verdict(Decision.FORBIDDEN, error="forbidden", reason="You are signed in but not allowed here.", rule=label)
        return self._allow(rule, principal)

    def _allow(self, rule: RuleConfig, principal: Principal | None) -> Verdict:
        if principal is None or self.renderer is None:
            verdict = self._anonymous_by_rule.get(id(rule))
            if verdict is None:
                verdict = self._anonymous_by_rule[id(rule)] = Verdict(Decision.ALLOW, self.spoofed, rule=rule.path or "default")
            return verdict
        return Verdict(Decision.ALLOW, self.spoofed, principal, self.renderer.render(principal), rule=rule.path or "default")

    def _verdict(self, decision: Decision, error: str = "", reason: str = "", rule: str = "") -> Verdict:
        return Verdict(decision, self.spoofed, error=error, reason=reason, rule=rule)
