"""What `check` prints: the resolved config with secrets masked."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import yaml

from .config import Config

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
