"""Typed, validated configuration: a YAML file with ${ENV} interpolation.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` whose
`problems` name every bad key at once (`upstreams[0].url: not an http(s) URL`),
so an operator fixes a file in one pass.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Callable, TypeVar, cast
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError
from .published_secrets import is_published_secret

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MAX_DURATION = 100 * 365 * 86400.0  # seconds: beyond any real setting, short of float and timer trouble
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
_POOL_ID = re.compile(rf"^({_REGION})_[0-9A-Za-z]+$")
_IDENTITY_POOL_ID = re.compile(rf"^({_REGION}):[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$")
# The ALB ARNs AWS's AlbJwtVerifier accepts; apps that pin their ALB's ARN check `signer` against one.
ALB_ARN_PATTERN = re.compile(r"^arn:(?:aws|aws-cn|aws-us-gov):elasticloadbalancing:([a-z]{2}-(?:gov-)?[a-z]+-\d):.+$")


class ProviderKind(StrEnum):
    COGNITO = "cognito"  # Cognito's claims, token_use and Hosted UI
    OIDC = "oidc"  # any OpenID provider


class SessionStore(StrEnum):
    COOKIE = "cookie"
    REDIS = "redis"


class Unauthenticated(StrEnum):
    AUTHENTICATE = "authenticate"  # browsers sign in, API clients get 401
    DENY = "deny"  # 401 whatever the client


class HostHeader(Enum):
    PRESERVE = "preserve"  # the client's Host
    UPSTREAM = "upstream"  # the upstream URL's host[:port]


@dataclass(frozen=True)
class UpstreamConfig:
    path: str
    url: str
    host: str | None = None  # match only requests for this Host (no port)
    host_header: HostHeader | str = HostHeader.PRESERVE  # or a literal value
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_body_size: int | None = None


@dataclass(frozen=True)
class CognitoConfig:
    region: str
    user_pool_id: str
    domain: str


@dataclass(frozen=True)
class ProviderConfig:
    client_id: str
    cognito: CognitoConfig | None = None
    issuer: str | None = None
    kind: ProviderKind = ProviderKind.COGNITO  # detected from the issuer when unset
    client_secret: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    algorithms: tuple[str, ...] = ("RS256",)
    jwks_refetch_interval: float = 60.0
    timeout: float = 5.0
    sign_out_url: str | None = None
    bearer_client_ids: tuple[str, ...] = ()  # app clients whose access tokens `bearer: true` rules accept

    @property
    def accepted_bearer_clients(self) -> tuple[str, ...]:
        return self.bearer_client_ids or (self.client_id,)


@dataclass(frozen=True)
class SessionConfig:
    store: SessionStore = SessionStore.COOKIE
    secrets: tuple[str, ...] = ()
    cookie_name: str = "_gw_session"
    max_lifetime: float = 12 * 3600
    idle_timeout: float | None = None
    # store: redis. With redis_sentinels, redis_url's host is the master's name (as redis-rb and
    # Sidekiq spell it), so credentials and the database stay in the one key `check` masks.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinels: tuple[tuple[str, int], ...] = ()  # (host, port) of each sentinel
    redis_cluster: bool = False  # redis_url is any node of a Redis Cluster (a seed)
    # With store: cookie, a redis key given means: share ended sessions and the user index through it.
    redis_given: bool = False

    @property
    def uses_redis(self) -> bool:
        return self.store is SessionStore.REDIS or self.redis_given


@dataclass(frozen=True)
class RefreshConfig:
    before_expiry: float = 60.0
    timeout: float = 5.0


@dataclass(frozen=True)
class IdentityConfig:
    headers: tuple[tuple[str, str], ...] = (
        ("X-Forwarded-User", "cognito:username"),
        ("X-Forwarded-Email", "email"),
        ("X-Forwarded-Groups", "cognito:groups"),
        ("X-Forwarded-Preferred-Username", "preferred_username"),
    )
    pass_authorization: bool = False
    pass_access_token: bool = False
    userinfo: bool = False
    alb_compatible: bool = False
    alb_signer: str | None = None
    assertion_header: str | None = None
    assertion_audience: str | None = None
    strip_headers: tuple[str, ...] = ()  # more client headers to remove: names, or prefixes ending in *
    pass_method_override: bool = False  # let X-HTTP-Method-Override & co. reach the app


@dataclass(frozen=True)
class RuleConfig:
    path: str | None  # None only for the default rule
    methods: tuple[str, ...] | None = None
    host: str | None = None
    allow_anyone: bool = False
    unauthenticated: Unauthenticated = Unauthenticated.AUTHENTICATE
    bearer: bool = False
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    claims: tuple[tuple[str, tuple[str, ...]], ...] = ()
    email_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class LimitsConfig:
    max_header_size: int = 32 * 1024
    max_websocket_message: int = 4 * 1024 * 1024
    header_timeout: float = 30.0  # a new connection's request head must be complete by then (nginx client_header_timeout)
    keepalive_timeout: float = 60.0  # an idle keep-alive connection is closed after this
    max_websockets: int = 1000  # open at once through this process
    max_websockets_per_session: int = 20  # per signed-in user (sub), or per client address when anonymous


class LogFormat(StrEnum):
    TEXT = "text"  # `time pid logger LEVEL message`, for people
    JSON = "json"  # one object per line, for log shippers


@dataclass(frozen=True)
class LoggingConfig:
    format: LogFormat = LogFormat.TEXT
    access_log: bool = True  # one line per request; off saves its cost on every request


@dataclass(frozen=True)
class AwsCredentialsConfig:
    """`aws_credentials`: GET /oauth2/aws-credentials from this Cognito identity pool."""

    identity_pool_id: str  # <region>:<uuid>
    region: str  # default: the pool id's prefix
    endpoint: str  # default: https://cognito-identity.<region>.amazonaws.com/


@dataclass(frozen=True)
class SignInConfig:
    """Sign-in as configured: the provider and the public URL are never missing (see Config.sign_in)."""

    provider: ProviderConfig
    public_url: str
    endpoints_prefix: str
    userinfo: bool  # identity.userinfo: userInfo checked at sign-in


@dataclass(frozen=True)
class Config:
    upstreams: tuple[UpstreamConfig, ...]
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    public_url: str | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowed_origins: tuple[str, ...] = ()  # other origins whose pages may open WebSockets and sign out
    endpoints_prefix: str = "/oauth2"
    shutdown_grace: float = 30.0
    drain_delay: float = 5.0  # after SIGTERM, /readyz answers 503 this long before the listener closes
    metrics_listen: tuple[str, int] | None = None  # Prometheus /metrics, on its own listener only
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    provider: ProviderConfig | None = None
    session: SessionConfig = field(default_factory=SessionConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    rules: tuple[RuleConfig, ...] = ()
    default_rule: RuleConfig = field(default_factory=lambda: RuleConfig(path=None))
    aws_credentials: AwsCredentialsConfig | None = None

    @property
    def auth_enabled(self) -> bool:
        return self.provider is not None

    @property
    def sign_in(self) -> SignInConfig | None:
        """None with sign-in off. Validation requires public_url whenever a provider is set."""
        if self.provider is None or self.public_url is None:
            return None
        return SignInConfig(self.provider, self.public_url, self.endpoints_prefix, self.identity.userinfo)


# --- parsing helpers -------------------------------------------------------------


def parse_duration(value: Any) -> float:
    """`90s`, `5m`, `12h`, `1d`, `250ms` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        seconds = float(value) if value <= MAX_DURATION else math.inf  # NaN too; float(10**400) would raise
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration like 90s, 5m or 12h: {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    # YAML's .nan/.inf, and numbers beyond a float, would crash or never expire further on.
    if not seconds <= MAX_DURATION:
        raise ValueError("must be a finite duration of at most 100 years")
    return seconds


def parse_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a whole number: {value!r}")
    return value


def parse_size(value: Any) -> int:
    """`64KB`, `10MiB`, `1g` or a number of bytes -> bytes (units are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size like 64KB or 10MB: {value!r}")
    unit = (match.group(2) or "b").lower()[0]
    return int(match.group(1)) * _SIZE_UNITS[unit if unit != "b" else None]


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _Section:
    """Reads one mapping, records problems under its key path, flags unknown keys."""

    def __init__(self, data: Any, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problem("", "must be a mapping")
            data = {}
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        where = self.key(name) if name else (self.path or "(top level)")
        self.problems.append(f"{where}: {message}")

    def has(self, name: str) -> bool:
        self.seen.add(name)
        return self.data.get(name) is not None

    def get(self, name: str, default: Any, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        self.seen.add(name)
        raw = self.data.get(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            self.problem(name, str(exc))
            return default

    def required(self, name: str, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        if not self.has(name):
            self.problem(name, "is required")
            return None
        return self.get(name, None, convert)

    def section(self, name: str) -> "_Section":
        self.seen.add(name)
        return _Section(self.data.get(name), self.key(name), self.problems)

    def items(self, name: str) -> list["_Section"]:
        self.seen.add(name)
        raw = self.data.get(name)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(name, "must be a list")
            return []
        return [_Section(item, f"{self.key(name)}[{i}]", self.problems) for i, item in enumerate(raw)]

    def done(self) -> None:
        for name in self.data:
            if name not in self.seen:
                self.problem(str(name), "unknown key")


def _string(value: Any) -> str:
    if isinstance(value, (dict, list, bool)):
        raise ValueError("must be a string")
    return str(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(str(v) for v in value)


def _http_url(value: Any) -> str:
    text = _string(value)
    if not _is_http_url(text):
        raise ValueError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def _positive(convert: Callable[[Any], float]) -> Callable[[Any], float]:
    def checked(value: Any) -> float:
        number = convert(value)
        if number <= 0:
            raise ValueError("must be greater than zero")
        return number

    return checked


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E]) -> Callable[[Any], E]:
    checked = _one_of(*kind)

    def member(value: Any) -> E:
        return kind(checked(value))

    return member


def _host_header(value: Any) -> HostHeader | str:
    text = _string(value)
    return HostHeader(text) if text in ("preserve", "upstream") else text


def _one_of(*choices: str) -> Callable[[Any], str]:
    def checked(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {value!r})")
        return cast(str, value)  # equal to one of `choices`, all strings

    return checked


def _listen(value: Any) -> tuple[str, int]:
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT, e.g. 0.0.0.0:8080 (got {text!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(_string(value), strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR: {value!r}") from None


def _origin(value: Any) -> str:
    """`https://admin.example.com[:port]`: what a browser sends as Origin, compared exactly."""
    text = _string(value).rstrip("/").lower()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ValueError(f"not an origin like https://app.example.com: {value!r}")
    return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path_prefix(value: Any) -> str:
    text = _string(value)
    if not text.startswith("/"):
        raise ValueError(f"must start with / (got {text!r})")
    return text


# --- sections ----------------------------------------------------------------------


def _upstream_url(value: Any) -> str:
    url = _http_url(value)
    if "@" in urlsplit(url).netloc:
        # Never sent (the app's own authentication is the client's business), and the URL is written
        # in logs and metric labels.
        raise ValueError("must not hold user:password@; the gateway does not send them")
    return url


def _upstream(s: _Section) -> UpstreamConfig:
    up = UpstreamConfig(
        path=s.get("path", "/", _path_prefix),
        url=s.required("url", _upstream_url) or "http://invalid",
        host=s.get("host", None, lambda v: _string(v).lower().removesuffix(".")),
        host_header=s.get("host_header", HostHeader.PRESERVE, _host_header),
        connect_timeout=s.get("connect_timeout", 5.0, _positive(parse_duration)),
        read_timeout=s.get("read_timeout", 60.0, _positive(parse_duration)),
        max_body_size=s.get("max_body_size", None, parse_size),
    )
    s.done()
    return up


def _provider(s: _Section) -> ProviderConfig:
    cognito = None
    if s.has("cognito"):
        c = s.section("cognito")
        cognito = CognitoConfig(
            region=c.required("region", _string) or "",
            user_pool_id=c.required("user_pool_id", _string) or "",
            domain=c.required("domain", _http_url) or "",
        )
        match = _POOL_ID.match(cognito.user_pool_id)
        if cognito.user_pool_id and not match:
            c.problem("user_pool_id", f"not a user pool id like eu-west-1_AbCdEf123: {cognito.user_pool_id!r}")
        elif match and cognito.region and match.group(1) != cognito.region:
            c.problem("user_pool_id", f"is in region {match.group(1)}, not {cognito.region}")
        c.done()
    issuer = s.get("issuer", None, _http_url)
    if (cognito is None) == (issuer is None):
        s.problem("", "set exactly one of provider.cognito or provider.issuer")

    def algorithms(value: Any) -> tuple[str, ...]:
        names = _string_list(value)
        bad = [n for n in names if n not in ASYMMETRIC_ALGORITHMS]
        if bad or not names:
            raise ValueError(f"only asymmetric algorithms are allowed ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); got {', '.join(bad) or 'none'}")
        return names

    provider = ProviderConfig(
        client_id=s.required("client_id", _string) or "",
        cognito=cognito,
        issuer=issuer,
        kind=s.get("kind", None, _enum(ProviderKind)) or detected_kind(cognito is not None, issuer),
        client_secret=s.get("client_secret", None, _string) or None,
        scopes=s.get("scopes", ("openid", "email", "profile"), _string_list),
        algorithms=s.get("algorithms", ("RS256",), algorithms),
        jwks_refetch_interval=s.get("jwks_refetch_interval", 60.0, parse_duration),
        timeout=s.get("timeout", 5.0, _positive(parse_duration)),
        sign_out_url=s.get("sign_out_url", None, _http_url),
        bearer_client_ids=s.get("bearer_client_ids", (), _string_list),
    )
    if "openid" not in provider.scopes:
        s.problem("scopes", "must include openid")
    s.done()
    return provider


def _session(s: _Section, needs_secrets: bool) -> SessionConfig:
    def secrets(value: Any) -> tuple[str, ...]:
        items = _string_list([value] if isinstance(value, str) else value)
        for item in items:
            if len(item) < 32:
                raise ValueError("each secret must be at least 32 characters (try: openssl rand -base64 32)")
        return items

    session = SessionConfig(
        store=s.get("store", SessionStore.COOKIE, _enum(SessionStore)),
        secrets=s.get("secrets", (), secrets),
        cookie_name=s.get("cookie_name", "_gw_session", _cookie_name),
        max_lifetime=s.get("max_lifetime", 12 * 3600.0, _positive(parse_duration)),
        idle_timeout=s.get("idle_timeout", None, _positive(parse_duration)),
        redis_url=s.get("redis_url", "redis://127.0.0.1:6379/0", _redis_url),
        redis_sentinels=s.get("redis_sentinels", (), _sentinels),
        redis_cluster=s.get("redis_cluster", False, _boolean),
        redis_given=any(s.has(key) for key in ("redis_url", "redis_sentinels", "redis_cluster")),
    )
    if needs_secrets and not session.secrets and not s.has("secrets"):
        s.problem("secrets", "is required: at least one secret of 32+ characters")
    _redis_topology(s, session)
    s.done()
    return session


_SENTINEL = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-]+))(?::(?P<port>\d{1,5}))?")


def _sentinels(value: Any) -> tuple[tuple[str, int], ...]:
    items = _string_list(value)
    if not items:
        raise ValueError("must list at least one sentinel as host:port")
    found = []
    for item in items:
        match = _SENTINEL.fullmatch(item)
        if match is None or not 0 < int(match["port"] or 26379) < 65536:
            raise ValueError(f"not host:port: {item!r}")
        found.append((match["ipv6"] or match["host"], int(match["port"] or 26379)))  # 26379: Sentinel's own port
    return tuple(found)


def _redis_topology(s: _Section, session: SessionConfig) -> None:
    """redis_url read the way redis_sentinels or redis_cluster say: one line per problem."""
    url = urlsplit(session.redis_url)
    if any(problem.startswith(s.key("redis_url") + ":") for problem in s.problems):
        return  # already said: not a redis URL
    if session.redis_sentinels and session.redis_cluster:
        s.problem("redis_cluster", "Sentinel or Cluster, not both: redis_sentinels is set too")
    elif session.redis_sentinels:
        form = "redis://[[USER]:PASSWORD@]MASTER_NAME[/DB], the host being the name the sentinels know the master by"
        if not s.has("redis_url"):
            s.problem("redis_url", f"is required with redis_sentinels: {form}")
        elif url.scheme != "redis" or not sentinel_master(session.redis_url) or _port_given(session.redis_url) or not re.fullmatch(r"\d*", url.path.strip("/")):
            s.problem("redis_url", f"with redis_sentinels, must be {form} (no port; rediss:// is not supported with Sentinel)")
    elif session.redis_cluster:
        if url.scheme == "unix":
            s.problem("redis_url", "with redis_cluster, must be redis:// or rediss:// to a node of the cluster")
        elif url.path.strip("/") not in ("", "0"):
            s.problem("redis_url", "a Redis Cluster has only database 0")


def sentinel_master(redis_url: str) -> str:
    """The master's name in a Sentinel redis_url, case kept (urlsplit's hostname would lower it)."""
    return urlsplit(redis_url).netloc.rpartition("@")[2]


def _port_given(redis_url: str) -> bool:
    return re.search(r":\d*$", sentinel_master(redis_url)) is not None


def _cookie_name(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", text):
        raise ValueError("may hold only letters, digits, _ and -")
    return text


def _redis_url(value: Any) -> str:
    text = _string(value)
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a redis:// URL: {text!r}")
    return text


def _identity(s: _Section) -> IdentityConfig:
    def header_map(value: Any) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise ValueError("must map header names to claim names")
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9\-]+", str(name)):
                raise ValueError(f"not a header name: {name!r}")
        return tuple((str(k), _string(v)) for k, v in value.items())

    identity = IdentityConfig(
        headers=s.get("headers", IdentityConfig.headers, header_map),
        pass_authorization=s.get("pass_authorization", False, _boolean),
        pass_access_token=s.get("pass_access_token", False, _boolean),
        userinfo=s.get("userinfo", False, _boolean),
        alb_compatible=s.get("alb_compatible", False, _boolean),
        alb_signer=s.get("alb_signer", None, _alb_arn),
        assertion_header=s.get("assertion_header", None, _string),
        assertion_audience=s.get("assertion_audience", None, _string),
        strip_headers=s.get("strip_headers", (), _header_patterns),
        pass_method_override=s.get("pass_method_override", False, _boolean),
    )
    s.done()
    return identity


def _header_patterns(value: Any) -> tuple[str, ...]:
    names = _string_list(value)
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+\*?", name):
            raise ValueError(f"not a header name or prefix* : {name!r}")
    return names


def _alb_arn(value: Any) -> str:
    text = _string(value)
    if not ALB_ARN_PATTERN.match(text):
        raise ValueError(f"not a load balancer ARN like arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/name/id: {text!r}")
    return text


def detected_kind(shorthand: bool, issuer: str | None) -> ProviderKind:
    """`cognito` for the shorthand and for Cognito issuers, `oidc` for any other OpenID provider.

    A Cognito issuer is https://cognito-idp.<region>.amazonaws.com/<pool id>; the local Cognito's
    issuer path ends in a pool id too.
    """
    if shorthand:
        return ProviderKind.COGNITO
    parts = urlsplit(issuer or "")
    host = parts.hostname or ""
    if host.startswith("cognito-idp.") and host.endswith(".amazonaws.com"):
        return ProviderKind.COGNITO
    return ProviderKind.COGNITO if _POOL_ID.match(parts.path.rstrip("/").rsplit("/", 1)[-1]) else ProviderKind.OIDC


def provider_region(provider: ProviderConfig) -> str:
    """The AWS region of the user pool: from the shorthand, a Cognito issuer or a pool id; else us-east-1."""
    if provider.cognito is not None:
        return provider.cognito.region
    issuer = provider.issuer or ""
    host = urlsplit(issuer).hostname or ""
    if host.startswith("cognito-idp.") and host.endswith(".amazonaws.com"):
        return host.split(".")[1]
    match = _POOL_ID.match(issuer.rstrip("/").rsplit("/", 1)[-1])
    return match.group(1) if match else "us-east-1"


def _path_pattern(value: Any) -> str:
    text = _string(value)
    if text.startswith("regex:"):
        try:
            re.compile(text[len("regex:"):])
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from None
        except (OverflowError, RecursionError):  # a repeat count beyond C's int, thousands of nested groups
            raise ValueError("regular expression too large") from None
    elif not text.startswith("/"):
        raise ValueError(f"must start with / or regex: (got {text!r})")
    return text


def _rule(s: _Section, is_default: bool) -> RuleConfig:
    def claims(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, dict):
            raise ValueError("must map claim names to a value or a list of values")
        return tuple(
            (str(k), tuple(str(x) for x in v) if isinstance(v, list) else (str(v),)) for k, v in value.items()
        )

    rule = RuleConfig(
        path=None if is_default else s.required("path", _path_pattern),
        methods=s.get("methods", None, lambda v: tuple(m.upper() for m in _string_list(v))),
        host=s.get("host", None, lambda v: _string(v).lower().removesuffix(".")),
        allow_anyone=s.get("allow", None, _one_of("anyone")) == "anyone",
        unauthenticated=s.get("unauthenticated", Unauthenticated.AUTHENTICATE, _enum(Unauthenticated)),
        bearer=s.get("bearer", False, _boolean),
        groups=s.get("groups", (), _string_list),
        scopes=s.get("scopes", (), _string_list),
        claims=s.get("claims", (), claims),
        email_domains=s.get("email_domains", (), lambda v: tuple(d.lower() for d in _string_list(v))),
    )
    if is_default and s.has("path"):
        s.problem("path", "the default rule matches every path; remove path")
    s.done()
    return rule


def _aws_credentials(s: _Section) -> AwsCredentialsConfig:
    pool_id = s.required("identity_pool_id", _string) or ""
    match = _IDENTITY_POOL_ID.match(pool_id)
    if pool_id and not match:
        s.problem("identity_pool_id", f"not an identity pool id like us-east-1:0a1b2c3d-1111-2222-3333-444455556666: {pool_id!r}")
    region = s.get("region", match.group(1) if match else "us-east-1", _region)
    endpoint = s.get("endpoint", f"https://cognito-identity.{region}.amazonaws.com/", _http_url)
    s.done()
    return AwsCredentialsConfig(pool_id, region, endpoint.rstrip("/") + "/")


def _region(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(_REGION, text):
        raise ValueError(f"not an AWS region like eu-west-1: {text!r}")
    return text


# --- environment interpolation ---------------------------------------------------


def _interpolate(node: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set")
        return ""

    text = _ENV_REF.sub(replace, node)
    # A value that was only a reference to an empty/unset variable means "not set".
    return None if text == "" else text


# --- entry points ------------------------------------------------------------------


def parse_config(data: Any, env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document; raise ConfigError listing every problem."""
    problems: list[str] = []
    data = _interpolate(data, "", dict(os.environ) if env is None else env, problems)
    top = _Section(data, "", problems)
    listen_host, listen_port = top.get("listen", ("0.0.0.0", 8080), _listen)
    upstreams = tuple(_upstream(s) for s in top.items("upstreams"))
    if not upstreams and not any(p.startswith("upstreams") for p in problems):
        top.problem("upstreams", "is required: at least one {path, url}")
    provider = _provider(top.section("provider")) if top.has("provider") else None
    limits_section = top.section("limits")
    limits = LimitsConfig(
        max_header_size=limits_section.get("max_header_size", 32 * 1024, _positive(parse_size)),
        max_websocket_message=limits_section.get("max_websocket_message", 4 * 1024 * 1024, _positive(parse_size)),
        header_timeout=limits_section.get("header_timeout", 30.0, _positive(parse_duration)),
        keepalive_timeout=limits_section.get("keepalive_timeout", 60.0, _positive(parse_duration)),
        max_websockets=limits_section.get("max_websockets", 1000, _positive(parse_count)),
        max_websockets_per_session=limits_section.get("max_websockets_per_session", 20, _positive(parse_count)),
    )
    limits_section.done()
    refresh_section = top.section("refresh")
    refresh = RefreshConfig(
        before_expiry=refresh_section.get("before_expiry", 60.0, parse_duration),
        timeout=refresh_section.get("timeout", 5.0, _positive(parse_duration)),
    )
    refresh_section.done()
    logging_section = top.section("logging")
    logging = LoggingConfig(
        format=logging_section.get("format", LogFormat.TEXT, _enum(LogFormat)),
        access_log=logging_section.get("access_log", True, _boolean),
    )
    logging_section.done()
    config = Config(
        upstreams=upstreams,
        listen_host=listen_host,
        listen_port=listen_port,
        public_url=top.get("public_url", None, _http_url),
        trusted_proxies=top.get("trusted_proxies", (), lambda v: tuple(_network(x) for x in _string_list(v))),
        allowed_origins=top.get("allowed_origins", (), lambda v: tuple(_origin(x) for x in _string_list(v))),
        endpoints_prefix=top.get("endpoints_prefix", "/oauth2", lambda v: _path_prefix(v).rstrip("/")),
        shutdown_grace=top.get("shutdown_grace", 30.0, parse_duration),
        drain_delay=top.get("drain_delay", 5.0, parse_duration),
        metrics_listen=top.get("metrics_listen", None, _listen),
        limits=limits,
        logging=logging,
        provider=provider,
        session=_session(top.section("session"), needs_secrets=provider is not None),
        refresh=refresh,
        identity=_identity(top.section("identity")),
        rules=tuple(_rule(s, is_default=False) for s in top.items("rules")),
        default_rule=_rule(top.section("default"), is_default=True),
        aws_credentials=_aws_credentials(top.section("aws_credentials")) if top.has("aws_credentials") else None,
    )
    if config.aws_credentials is not None and provider is None:
        top.problem("aws_credentials", "needs a provider: the credentials are for the signed-in user")
    if provider is not None and not _is_loopback(config.listen_host):
        for index, secret in enumerate(config.session.secrets):
            if is_published_secret(secret):
                top.problem(
                    f"session.secrets[{index}]",
                    "is published in the cognito-gateway repository: anyone could forge sessions with it. "
                    "Set your own (openssl rand -base64 32), or listen on 127.0.0.1 only",
                )
    if config.metrics_listen is not None and config.metrics_listen[1] == config.listen_port:
        top.problem("metrics_listen", "must be another port than listen: metrics are never served to the public")
    if provider is not None and config.public_url is None:
        top.problem("public_url", "is required with a provider: the callback URL is public_url + /oauth2/callback")
    if provider is None:
        needs_sign_in = [f"rules[{i}]" for i, r in enumerate(config.rules) if not r.allow_anyone]
        if needs_sign_in:
            top.problem("provider", f"is required: {', '.join(needs_sign_in)} need sign-in")
    top.done()
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate a YAML config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_config(data, env)
