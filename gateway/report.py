"""What `check` prints: the resolved config with secrets masked."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import aiohttp
import yaml

from .config import Config, ProviderConfig
from .errors import ProviderError
from .oidc.endpoints import resolve_endpoints

_SECRET_KEYS = {"client_secret", "secrets"}


def _plain(value: Any, key: str = "") -> Any:
    if key in _SECRET_KEYS and value:
        return "***" if isinstance(value, str) else ["***"] * len(value)
    if key == "headers" and isinstance(value, tuple):
        return dict(value)
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
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
