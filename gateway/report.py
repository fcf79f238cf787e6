"""What `check` prints: the resolved config with secrets masked."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from enum import Enum
from typing import Any

import aiohttp
import yaml

from .config import Config, ProviderConfig, RuleConfig
from .errors import ProviderError
from .oidc.endpoints import resolve_endpoints

_SECRET_KEYS = {"client_secret", "secrets"}


def _plain(value: Any, key: str = "") -> Any:
    if key in _SECRET_KEYS and value:
        return "***" if isinstance(value, str) else ["***"] * len(value)
    if key == "redis_url" and "@" in str(value):
        return re.sub(r"//[^@/]*@", "//***@", str(value))  # redis://:password@host
    if key == "headers" and isinstance(value, tuple):
        return dict(value)
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    if isinstance(value, Enum):  # ProviderKind, SessionStore, ...: yaml.safe_dump represents only plain str
        return value.value
    return value


def describe_config(config: Config) -> str:
    """The resolved config as YAML: defaults filled in, durations in seconds, secrets as ***."""
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=None, width=120).rstrip()


async def describe_endpoints(provider: ProviderConfig) -> str:
    """The provider's endpoints as the gateway will use them (an issuer is asked for discovery)."""
    async with aiohttp.ClientSession() as http:
        try:
            endpoints = await resolve_endpoints(http, provider)
        except ProviderError as exc:
            return f"provider endpoints: not resolved now ({exc}); the gateway retries at start"
    lines = ["provider endpoints:"]
    lines += [f"  {f.name}: {getattr(endpoints, f.name)}" for f in dataclasses.fields(endpoints) if getattr(endpoints, f.name)]
    return "\n".join(lines)


def describe_rules(config: Config) -> str:
    """The rules in the order they are tried, then the default, as a plain-text table."""
    rows = [("#", "path", "methods", "host", "who", "requires")]
    for index, rule in enumerate((*config.rules, config.default_rule)):
        rows.append((
            str(index) if rule.path is not None else "default",
            rule.path or "*",
            ",".join(rule.methods) if rule.methods else "any",
            rule.host or "any",
            _who(rule),
            _requires(rule),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "rules (first match wins):\n" + "\n".join("  " + line for line in lines)


def _who(rule: RuleConfig) -> str:
    if rule.allow_anyone:
        return "anyone"
    who = "signed in" if rule.unauthenticated == "authenticate" else "signed in, else 401"
    return who + (" or Bearer" if rule.bearer else "")


def _requires(rule: RuleConfig) -> str:
    parts = []
    if rule.groups:
        parts.append("group " + "|".join(rule.groups))
    if rule.scopes:
        parts.append("scope " + "|".join(rule.scopes))
    parts += [f"{name}={'|'.join(values)}" for name, values in rule.claims]
    if rule.email_domains:
        parts.append("email @" + "|".join(rule.email_domains))
    return ", ".join(parts) or "-"
