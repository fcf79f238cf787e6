"""The local Cognito's configuration: frozen dataclasses and one-pass validation.

`parse_idp_config(data)` turns a plain dict (from YAML or a test) into an
`IdpConfig`, or raises `ConfigError` with one line per problem, each naming
its key (`clients[0].callback_urls: must be a list of URLs`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.errors import ConfigError

from ._checks import Checker
from .resource_servers import ResourceServerConfig, check_custom_scopes, parse_resource_servers

STANDARD_SCOPES = ("openid", "email", "phone", "profile", "aws.cognito.signin.user.admin")
FLOWS = ("code", "client_credentials")
_POOL_ID = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d)_[0-9A-Za-z]+$")
_IDENTITY_POOL_ID = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TOP_KEYS = {
    "listen", "region", "user_pool_id", "issuer", "token_lifetimes", "refresh_token_rotation",
    "refresh_token_grace_period", "admin_api", "clients", "users", "groups", "signing_keys",
    "persistence_file", "resource_servers", "identity_pools",
}  # fmt: skip


@dataclass(frozen=True)
class Lifetimes:
    """Seconds. `auth_code` and `login_session` are Hosted UI lifetimes, not tokens."""

    access: int = 3600
    id: int = 3600
    refresh: int = 2592000
    auth_code: int = 300
    login_session: int = 3600


@dataclass(frozen=True)
class ClientConfig:
    client_id: str
    client_secret: str | None = None
    callback_urls: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    flows: tuple[str, ...] = ("code",)

    @property
    def is_confidential(self) -> bool:
        return self.client_secret is not None


@dataclass(frozen=True)
class UserConfig:
    username: str
    password: str
    email: str | None = None
    email_verified: bool = True
    phone_number: str | None = None
    groups: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    sub: str | None = None  # None: a stable UUID derived from pool id + username


@dataclass(frozen=True)
class SigningKeyConfig:
    kid: str | None
    private_key_pem: str


@dataclass(frozen=True)
class IdentityPoolConfig:
    """A Cognito identity pool trusting this user pool (gateway/idp/identity_pools.py serves it)."""

    identity_pool_id: str  # <region>:<uuid>, as AWS spells them
    client_ids: tuple[str, ...] = ()  # app clients whose id tokens it takes; () = every client
    credentials_lifetime: int = 3600  # seconds; AWS's are an hour

    @property
    def region(self) -> str:
        return self.identity_pool_id.split(":", 1)[0]


@dataclass(frozen=True)
class IdpConfig:
    user_pool_id: str
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 9000
    issuer: str | None = None  # None: http://<host>:<port>/<user_pool_id>
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    refresh_token_rotation: bool = False
    refresh_token_grace_period: int = 0
    admin_api: bool = False
    clients: tuple[ClientConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    groups: tuple[str, ...] = ()
    signing_keys: tuple[SigningKeyConfig, ...] = ()
    generated_key_count: int = 1
    persistence_file: str | None = None
    resource_servers: tuple[ResourceServerConfig, ...] = ()  # where clients' custom scopes are declared
    identity_pools: tuple[IdentityPoolConfig, ...] = ()  # Cognito Identity's API for them: identity_pools.py

    @property
    def issuer_url(self) -> str:
        if self.issuer:
            return self.issuer.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/{self.user_pool_id}"

    @property
    def base_url(self) -> str:
        """The Hosted UI origin: the issuer without its pool-id path segment."""
        return self.issuer_url[: -len(self.user_pool_id) - 1]

    def client(self, client_id: str) -> ClientConfig | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def identity_pool(self, identity_pool_id: str) -> IdentityPoolConfig | None:
        return next((p for p in self.identity_pools if p.identity_pool_id == identity_pool_id), None)

    def with_listen(self, host: str | None = None, port: int | None = None) -> IdpConfig:
        return replace(self, host=host or self.host, port=self.port if port is None else port)


def load_idp_config(path: str | Path) -> IdpConfig:
    """Read a YAML file (with `${NAME}` / `${NAME:-default}` from the environment)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    try:
        data = yaml.safe_load(_interpolate(text))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return parse_idp_config(data or {}, base_dir=Path(path).parent)


def parse_idp_config(data: Any, base_dir: Path | None = None) -> IdpConfig:
    """Validate a dict and build the config; raise `ConfigError` listing every problem."""
    check = Checker()
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping"])
    for key in sorted(set(data) - _TOP_KEYS):
        check.problem(key, "unknown key")
    pool_id = check.string(data, "user_pool_id", required=True) or "us-east-1_Invalid"
    region = check.string(data, "region") or pool_id.split("_")[0]
    if not _POOL_ID.match(pool_id):
        check.problem("user_pool_id", "must look like <region>_<alphanumerics>, e.g. us-east-1_LocalPool")
    elif pool_id.split("_")[0] != region:
        check.problem("region", f"must match the prefix of user_pool_id ({pool_id.split('_')[0]})")
    host, port = check.listen(data.get("listen", "127.0.0.1:9000"), "listen")
    issuer = _parse_issuer(check, data.get("issuer"), pool_id)
    groups = tuple(check.string_list(data, "groups"))
    users = tuple(_parse_users(check, data.get("users", []), groups))
    keys, key_count = _parse_signing_keys(check, data.get("signing_keys", 1), base_dir)
    grace = check.integer(data, "refresh_token_grace_period", 0, minimum=0, maximum=60)
    persistence = check.string(data, "persistence_file")
    if persistence and base_dir is not None and not os.path.isabs(persistence):
        persistence = str(base_dir / persistence)
    lifetimes = _parse_lifetimes(check, data.get("token_lifetimes", {}))
    resource_servers = parse_resource_servers(check, data.get("resource_servers"))
    clients = tuple(_parse_clients(check, data.get("clients", []), resource_servers))
    rotation = check.boolean(data, "refresh_token_rotation", False)
    admin_api = check.boolean(data, "admin_api", False)
    identity_pools = tuple(_parse_identity_pools(check, data.get("identity_pools", []), clients))
    check.raise_if_any()
    return IdpConfig(
        user_pool_id=pool_id, region=region, host=host, port=port, issuer=issuer,
        lifetimes=lifetimes, refresh_token_rotation=rotation, refresh_token_grace_period=grace,
        admin_api=admin_api, clients=clients, users=users,
        groups=groups or tuple(dict.fromkeys(g for u in users for g in u.groups)),
        signing_keys=keys, generated_key_count=key_count, persistence_file=persistence,
        resource_servers=resource_servers, identity_pools=identity_pools,
    )  # fmt: skip


def _interpolate(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        return os.environ.get(name, default if default is not None else "")

    return _ENV_REF.sub(value, text)


def _parse_issuer(check: Checker, raw: Any, pool_id: str) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw) if isinstance(raw, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
        check.problem("issuer", "must be an http(s) URL")
    elif parts.path.rstrip("/").rsplit("/", 1)[-1] != pool_id:
        check.problem("issuer", f"must end with /{pool_id} (Cognito's issuer is <origin>/<pool id>)")
    return raw if isinstance(raw, str) else None


def _parse_lifetimes(check: Checker, raw: Any) -> Lifetimes:
    if not isinstance(raw, dict):
        check.problem("token_lifetimes", "must be a mapping of seconds")
        return Lifetimes()
    defaults = Lifetimes()
    for key in sorted(set(raw) - set(defaults.__dataclass_fields__)):
        check.problem(f"token_lifetimes.{key}", "unknown key")
    values = {
        name: check.integer(raw, name, getattr(defaults, name), minimum=1, path="token_lifetimes")
        for name in defaults.__dataclass_fields__
    }
    return Lifetimes(**values)


def _parse_clients(check: Checker, raw: Any, resource_servers: tuple[ResourceServerConfig, ...]) -> list[ClientConfig]:
    if not isinstance(raw, list):
        check.problem("clients", "must be a list")
        return []
    clients, seen = [], set()
    for index, item in enumerate(raw):
        path = f"clients[{index}]"
        if not check.mapping(item, path, ClientConfig.__dataclass_fields__):
            continue
        client_id = check.string(item, "client_id", required=True, path=path) or ""
        if client_id in seen:
            check.problem(f"{path}.client_id", f"duplicate client id {client_id!r}")
        seen.add(client_id)
        flows = tuple(check.string_list(item, "flows", path=path) or ["code"])
        for flow in flows:
            if flow not in FLOWS:
                check.problem(f"{path}.flows", f"{flow!r} is not supported (use {', '.join(FLOWS)})")
        secret = check.string(item, "client_secret", path=path)
        if "client_credentials" in flows and not secret:
            check.problem(f"{path}.flows", "client_credentials needs a client_secret (as in Cognito)")
        scopes = check.scope_list(item, "scopes", path, STANDARD_SCOPES)
        check_custom_scopes(check, f"{path}.scopes", scopes, resource_servers)
        clients.append(
            ClientConfig(
                client_id=client_id, client_secret=secret,
                callback_urls=tuple(check.url_list(item, "callback_urls", path)),
                logout_urls=tuple(check.url_list(item, "logout_urls", path)),
                scopes=tuple(scopes),
                flows=flows,
            )  # fmt: skip
        )
    return clients


def _parse_identity_pools(check: Checker, raw: Any, clients: tuple[ClientConfig, ...]) -> list[IdentityPoolConfig]:
    if not isinstance(raw, list):
        check.problem("identity_pools", "must be a list of {identity_pool_id, client_ids, credentials_lifetime}")
        return []
    pools: list[IdentityPoolConfig] = []
    known_clients = {c.client_id for c in clients}
    for index, item in enumerate(raw):
        path = f"identity_pools[{index}]"
        if not check.mapping(item, path, IdentityPoolConfig.__dataclass_fields__):
            continue
        pool_id = check.string(item, "identity_pool_id", required=True, path=path) or ""
        if pool_id and not _IDENTITY_POOL_ID.match(pool_id):
            check.problem(f"{path}.identity_pool_id", "must look like <region>:<uuid>, e.g. us-east-1:0a1b2c3d-0000-4000-8000-000000000001")
        if any(p.identity_pool_id == pool_id for p in pools):
            check.problem(f"{path}.identity_pool_id", f"duplicate identity pool id {pool_id!r}")
        client_ids = tuple(check.string_list(item, "client_ids", path=path))
        for client_id in client_ids:
            if client_id not in known_clients:
                check.problem(f"{path}.client_ids", f"{client_id!r} is not a client of this user pool")
        lifetime = check.integer(item, "credentials_lifetime", 3600, minimum=1, maximum=43200, path=path)
        pools.append(IdentityPoolConfig(identity_pool_id=pool_id, client_ids=client_ids, credentials_lifetime=lifetime))
    return pools


def _parse_users(check: Checker, raw: Any, declared_groups: tuple[str, ...]) -> list[UserConfig]:
    if not isinstance(raw, list):
        check.problem("users", "must be a list")
        return []
    users, seen = [], set()
    for index, item in enumerate(raw):
        path = f"users[{index}]"
        if not check.mapping(item, path, UserConfig.__dataclass_fields__):
            continue
        username = check.string(item, "username", required=True, path=path) or ""
        if username.lower() in seen:
            check.problem(f"{path}.username", f"duplicate username {username!r} (usernames are case-insensitive)")
        seen.add(username.lower())
        groups = tuple(check.string_list(item, "groups", path=path))
        for group in groups:
            if declared_groups and group not in declared_groups:
                check.problem(f"{path}.groups", f"group {group!r} is not in the top-level groups list")
        users.append(
            UserConfig(
                username=username,
                password=check.string(item, "password", required=True, path=path) or "",
                email=check.string(item, "email", path=path),
                email_verified=check.boolean(item, "email_verified", True, path=path),
                phone_number=check.string(item, "phone_number", path=path),
                groups=groups, attributes=check.attributes(item, path),
                sub=check.string(item, "sub", path=path),
            )  # fmt: skip
        )
    return users


def _parse_signing_keys(
    check: Checker, raw: Any, base_dir: Path | None
) -> tuple[tuple[SigningKeyConfig, ...], int]:
    """`signing_keys: 2` generates two keys; a list gives PEM files or inline PEMs."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw not in (1, 2):
            check.problem("signing_keys", "a number of keys to generate must be 1 or 2")
        return (), raw
    if not isinstance(raw, list) or not raw:
        check.problem("signing_keys", "must be 1, 2, or a list of {kid, private_key_file | private_key_pem}")
        return (), 1
    keys = []
    for index, item in enumerate(raw):
        path = f"signing_keys[{index}]"
        if not check.mapping(item, path, {"kid", "private_key_file", "private_key_pem"}):
            continue
        pem = check.string(item, "private_key_pem", path=path)
        key_file = check.string(item, "private_key_file", path=path)
        if key_file:
            full = Path(key_file) if base_dir is None or os.path.isabs(key_file) else base_dir / key_file
            try:
                pem = full.read_text(encoding="utf-8")
            except OSError as exc:
                check.problem(f"{path}.private_key_file", f"cannot read {full} ({exc.strerror})")
        if not pem and not key_file:
            check.problem(path, "needs private_key_file or private_key_pem")
        keys.append(SigningKeyConfig(kid=check.string(item, "kid", path=path), private_key_pem=pem or ""))
    return tuple(keys), len(keys)
