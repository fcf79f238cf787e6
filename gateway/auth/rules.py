"""Per-path rules: which rule applies to a request, and whether an identity satisfies it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..config import RuleConfig


def compile_path(pattern: str) -> Callable[[str], bool]:
    """`/exact`, globs (`*` within a segment, `**` across segments), or `regex:…` (searched, anchor it yourself)."""
    if pattern.startswith("regex:"):
        return re.compile(pattern[len("regex:") :]).search  # type: ignore[return-value]
    if "*" not in pattern:
        # Most frameworks serve /admin and /admin/ alike: an exact rule covers both spellings.
        spellings = {pattern, pattern.rstrip("/") or "/", pattern.rstrip("/") + "/"}
        return spellings.__contains__
    regex = ""
    rest = pattern
    if rest.endswith("/**"):
        rest, tail = rest[:-3], "(?:/.*)?"  # /admin/** covers /admin itself too
    else:
        tail = ""
    for part in re.split(r"(\*\*|\*)", rest):
        regex += ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
    return re.compile(f"^{regex}{tail}$").match  # type: ignore[return-value]


def matched_methods(methods: tuple[str, ...] | None) -> frozenset[str] | None:
    """A rule for GET covers HEAD: servers answer HEAD with their GET handler (RFC 9110 §9.3.2)."""
    if methods is None:
        return None
    return frozenset(methods) | ({"HEAD"} if "GET" in methods else set())


@dataclass(frozen=True)
class CompiledRule:
    config: RuleConfig
    path_matches: Callable[[str], bool]
    methods: frozenset[str] | None

    def matches(self, method: str, host: str, path: str) -> bool:
        rule = self.config
        if self.methods is not None and method not in self.methods:
            return False
        if rule.host is not None and rule.host != host:
            return False
        return bool(self.path_matches(path))


class Rules:
    def __init__(self, rules: tuple[RuleConfig, ...], default: RuleConfig) -> None:
        self.compiled = tuple(CompiledRule(rule, compile_path(rule.path or ""), matched_methods(rule.methods)) for rule in rules)
        self.default = default

    def rule_for(self, method: str, host: str, path: str) -> RuleConfig:
        """First matching rule, else the default. `path` is already normalized (see paths.rule_path)."""
        for rule in self.compiled:
            if rule.matches(method, host, path):
                return rule.config
        return self.default


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).split()


def permits(rule: RuleConfig, claims: dict[str, Any]) -> bool:
    """Authorization of an authenticated identity: every requirement the rule states must hold."""
    if rule.groups and not set(rule.groups) & set(_as_list(claims.get("cognito:groups") or claims.get("groups"))):
        return False
    # Like aws-jwt-verify's `scope` option: at least one of the listed scopes.
    if rule.scopes and not set(rule.scopes) & set(_as_list(claims.get("scope"))):
        return False
    for name, allowed in rule.claims:
        value = claims.get(name)
        present = [_claim_text(v) for v in value] if isinstance(value, list) else [_claim_text(value)]
        if not set(allowed) & set(present):
            return False
    if rule.email_domains:
        verified = claims.get("email_verified") in (True, "true")
        if not verified or email_domain(claims.get("email")) not in rule.email_domains:
            return False
    return True


# One local part, one @, and a plain DNS name: `a@evil.com@example.com`, quoted or encoded local
# parts and odd characters in the domain never pass (the class of oauth2-proxy's email-domain advisories, see docs/security.md).
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$&'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)$")


def email_domain(email: Any) -> str | None:
    """The lower-cased domain of a plain address, or None for anything unusual."""
    match = _EMAIL.fullmatch(email) if isinstance(email, str) else None  # fullmatch: `$` allows a final newline
    return match.group(1).lower() if match else None


def _claim_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
