"""Small typed readers for config dicts that collect problems instead of raising early."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError


def _key(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name


class Checker:
    """Reads values out of nested dicts; every bad value adds one line naming its key."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def raise_if_any(self) -> bool:
        if self.problems:
            raise ConfigError(self.problems)
        return False

    def mapping(self, item: Any, path: str, allowed: Iterable[str]) -> bool:
        if not isinstance(item, dict):
            self.problem(path, "must be a mapping")
            return False
        for name in sorted(set(item) - set(allowed)):
            self.problem(_key(path, name), "unknown key")
        return True

    def string(self, data: dict[str, Any], name: str, *, required: bool = False, path: str | None = None) -> str | None:
        value = data.get(name)
        if value is None:
            if required:
                self.problem(_key(path, name), "is required")
            return None
        if not isinstance(value, str) or (required and not value):
            self.problem(_key(path, name), "must be a non-empty string")
            return None
        return value

    def boolean(self, data: dict[str, Any], name: str, default: bool, path: str | None = None) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            self.problem(_key(path, name), "must be true or false")
            return default
        return value

    def integer(
        self, data: dict[str, Any], name: str, default: int, *, minimum: int, maximum: int | None = None,
        path: str | None = None,
    ) -> int:  # fmt: skip
        value = data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(_key(path, name), "must be a whole number of seconds")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            self.problem(_key(path, name), f"must be at least {minimum}{upper}")
            return default
        return value

    def string_list(self, data: dict[str, Any], name: str, path: str | None = None) -> list[str]:
        value = data.get(name, [])
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(_key(path, name), "must be a list of strings")
            return []
        return value

    def url_list(self, data: dict[str, Any], name: str, path: str) -> list[str]:
        value = data.get(name, [])
        if isinstance(value, list) and all(isinstance(v, str) for v in value) and all(_is_url(v) for v in value):
            return value
        self.problem(_key(path, name), "must be a list of URLs")
        return []

    def scope_list(self, data: dict[str, Any], name: str, path: str, standard: tuple[str, ...]) -> list[str]:
        if name not in data:
            return ["openid", "email", "profile"]
        scopes = self.string_list(data, name, path)
        for scope in scopes:
            # Custom scopes are `<resource server identifier>/<scope name>`, as in Cognito.
            if scope not in standard and "/" not in scope:
                self.problem(_key(path, name), f"{scope!r} is neither a standard scope nor <resource>/<scope>")
        return scopes

    def attributes(self, data: dict[str, Any], path: str) -> tuple[tuple[str, str], ...]:
        value = data.get("attributes", {})
        if not isinstance(value, dict):
            self.problem(_key(path, "attributes"), "must be a mapping of attribute name to string")
            return ()
        pairs = []
        for name, attr in value.items():
            if not isinstance(attr, (str, int, float, bool)):
                self.problem(_key(path, f"attributes.{name}"), "must be a string or number")
                continue
            pairs.append((str(name), str(attr).lower() if isinstance(attr, bool) else str(attr)))
        return tuple(pairs)

    def listen(self, value: Any, name: str) -> tuple[str, int]:
        text = str(value) if isinstance(value, (str, int)) else ""
        host, _, port = text.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problem(name, "must be HOST:PORT, e.g. 127.0.0.1:9000")
            return "127.0.0.1", 9000
        return host.strip("[]") or "127.0.0.1", int(port)


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.scheme not in ("http", "https")))
