"""Resource servers: where a user pool's custom scopes come from.

In Cognito a custom scope is `<resource server identifier>/<scope name>` and exists only once a
resource server declares it; an app client can be allowed only scopes that exist. The local
Cognito follows suit: every custom scope a client lists must be declared here, so a typo in
`orders/raed` is a config error at start, not an `invalid_scope` at the first token request.

    resource_servers:
      - identifier: orders                 # often a URL, e.g. https://api.example.com
        name: Orders API                   # optional, defaults to the identifier
        scopes: [read, {name: write, description: Create and change orders}]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._checks import Checker

# Cognito's patterns: an identifier is printable ASCII without `"` or `\` (so it may be a URL,
# slashes included); a scope name the same without `/`, so `<identifier>/<name>` splits at its last `/`.
_IDENTIFIER = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,256}")
_SCOPE_NAME = re.compile(r"[\x21\x23-\x2E\x30-\x5B\x5D-\x7E]{1,256}")


@dataclass(frozen=True)
class ResourceScope:
    name: str
    description: str = ""


@dataclass(frozen=True)
class ResourceServerConfig:
    identifier: str
    name: str
    scopes: tuple[ResourceScope, ...] = ()

    @property
    def custom_scopes(self) -> tuple[str, ...]:
        """The scopes as tokens and clients name them: `<identifier>/<name>`."""
        return tuple(f"{self.identifier}/{scope.name}" for scope in self.scopes)


def parse_resource_servers(check: Checker, raw: Any) -> tuple[ResourceServerConfig, ...]:
    """The `resource_servers` list; every bad entry adds one problem naming its key."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        check.problem("resource_servers", "must be a list of {identifier, name, scopes}")
        return ()
    servers: list[ResourceServerConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        path = f"resource_servers[{index}]"
        if not check.mapping(item, path, ("identifier", "name", "scopes")):
            continue
        identifier = check.string(item, "identifier", required=True, path=path) or ""
        if identifier and not _IDENTIFIER.fullmatch(identifier):
            check.problem(f"{path}.identifier", "must be 1-256 printable ASCII characters without spaces, quotes or backslashes")
        if identifier in seen:
            check.problem(f"{path}.identifier", f"duplicate resource server {identifier!r}")
        seen.add(identifier)
        name = check.string(item, "name", path=path) or identifier
        servers.append(ResourceServerConfig(identifier, name, _parse_scopes(check, item.get("scopes"), f"{path}.scopes")))
    return tuple(servers)


def _parse_scopes(check: Checker, raw: Any, path: str) -> tuple[ResourceScope, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        check.problem(path, "must be a list of scope names or {name, description}")
        return ()
    scopes: list[ResourceScope] = []
    for index, item in enumerate(raw):
        key = f"{path}[{index}]"
        if isinstance(item, dict):
            if not check.mapping(item, key, ("name", "description")):
                continue
            name, description = check.string(item, "name", required=True, path=key), check.string(item, "description", path=key)
            if name is None:
                continue  # reported
        elif isinstance(item, str):
            name, description = item, None
        else:
            check.problem(key, "must be a scope name or {name, description}")
            continue
        if not _SCOPE_NAME.fullmatch(name):
            check.problem(key, "a scope name is 1-256 printable ASCII characters without spaces, quotes, / or \\")
            continue
        if name in {s.name for s in scopes}:
            check.problem(key, f"duplicate scope {name!r}")
        scopes.append(ResourceScope(name, description or ""))
    return tuple(scopes)


def check_custom_scopes(check: Checker, key: str, scopes: list[str], servers: tuple[ResourceServerConfig, ...]) -> None:
    """One problem per custom scope (`<identifier>/<name>`) that no resource server declares."""
    declared = {scope for server in servers for scope in server.custom_scopes}
    identifiers = {server.identifier for server in servers}
    for scope in scopes:
        if "/" not in scope or scope in declared:
            continue
        identifier, _, name = scope.rpartition("/")
        if identifier in identifiers:
            check.problem(key, f"{scope!r}: resource server {identifier!r} has no scope {name!r}")
        else:
            check.problem(key, f"{scope!r}: no resource server {identifier!r} (declare it under resource_servers)")
