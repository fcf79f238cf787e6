"""Sign-in's object graph, built from config before the first request (pomerium's
newAuthenticateStateFromConfig): session store, provider, refresher, authenticator, the
/oauth2 routes as bound methods. `lifetime` (cleanup_ctx) only opens and closes I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable

import aiohttp
from aiohttp import web

from ..config import Config, SessionStore as StoreKind, SignInConfig, provider_region
from ..errors import ProviderError
from ..oidc.profile import profile_for
from ..oidc.provider import Provider
from ..ops.health import Readiness
from ..session.cookie_store import CookieSessionStore
from ..session.crypto import SecretBox
from ..session.ends import EndedSessions
from ..session.login_state import LoginStateCookies
from ..session.store import SessionStore
from ..session.worker_ends import WorkerEnds
from ..oidc.identity_pool import IdentityPoolClient
from .authenticate import Authenticator, UserInfo
from .aws_credentials import AwsCredentialsEndpoint
from .bearer import BearerVerifier
from .decide import Policy
from .forward import ForwardAuth
from .gate import Gate
from .identity import HeaderRenderer, SpoofedHeaders
from .login import SignIn, userinfo_response
from .refresh import Refresher
from .rules import Rules
from .same_origin import OwnOrigins
from .signing import SIGNER, GatewaySigner, add_key_routes

if TYPE_CHECKING:  # redis is imported only when a config uses it: it costs ~7 MB of every process
    import redis.asyncio as redis

    from ..session.shared_ends import RedisEnds


def gateway_cookie_filter(cookie_name: str) -> Callable[[str], bool]:
    """A predicate for the gateway's own cookies (session chunks, login state), never sent upstream."""

    def is_ours(name: str) -> bool:
        for prefix in ("__Host-", "__Secure-"):
            name = name.removeprefix(prefix)
        return name == cookie_name or name.startswith(cookie_name + "_")

    return is_ours


class ProviderHttp:
    """The provider's client session: given to the provider as a getter, opened when the app starts."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self.session is None:
            raise ProviderError("the gateway has not started")
        return self.session


@dataclass(frozen=True)
class SignInParts:
    provider: Provider
    provider_http: ProviderHttp
    redis_client: "redis.Redis | redis.RedisCluster | None"
    sign_in: SignIn
    authenticator: Authenticator
    forward_auth: ForwardAuth
    signer: GatewaySigner | None
    shared_ends: "RedisEnds | None"  # with Redis: the fleet's ended sessions
    worker_ends: WorkerEnds | None  # with --workers N and no Redis: this gateway's workers' ended sessions
    aws_credentials: AwsCredentialsEndpoint | None = None  # GET /oauth2/aws-credentials, with `aws_credentials`

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            self.provider_http.session = http
            loader = asyncio.create_task(self.provider.keep_trying())
            follower = asyncio.create_task(self.shared_ends.follow()) if self.shared_ends is not None else None
            if self.worker_ends is not None:
                self.worker_ends.start()
            yield
            if self.worker_ends is not None:
                self.worker_ends.stop()
            loader.cancel()
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)  # its subscription closed before the client
        if self.redis_client is not None:
            await self.redis_client.aclose()

    async def userinfo(self, request: web.Request) -> web.StreamResponse:
        return userinfo_response(request, await self.authenticator.session_principal(request))


def build_gate(config: Config, own_origins: OwnOrigins, ends_dir: str | None = None) -> tuple[Gate, SignInParts | None]:
    """The gate every proxied request passes, and sign-in's parts when a provider is configured."""
    spoofed = SpoofedHeaders(config.identity)
    rules = Rules(config.rules, config.default_rule)
    sign_in_config = config.sign_in
    if sign_in_config is None:
        return Gate(Policy(rules, spoofed, None), None, config.endpoints_prefix), None
    parts = _sign_in_parts(config, sign_in_config, own_origins, spoofed, rules, ends_dir)
    return parts.forward_auth.gate, parts


def _sign_in_parts(
    config: Config, sign_in: SignInConfig, own_origins: OwnOrigins, spoofed: SpoofedHeaders, rules: Rules, ends_dir: str | None
) -> SignInParts:
    provider_config = sign_in.provider
    profile = profile_for(provider_config.kind)
    secure = sign_in.public_url.startswith("https://")
    session_box = SecretBox(config.session.secrets, "session")
    redis_client = _redis(config)
    store = _store(config, session_box, secure, redis_client)
    provider_http = ProviderHttp()
    provider = Provider(provider_config, provider_http)
    ends = EndedSessions(config.session.max_lifetime)
    shared = shared_ends = index = None
    worker_ends = ends.publisher = WorkerEnds(ends_dir, ends) if ends_dir is not None and redis_client is None else None
    if redis_client is not None:
        from ..session.shared_ends import RedisEnds
        from ..session.user_index import UserIndex
        from .shared_refresh import RedisSharedRefresh

        shared_ends = ends.publisher = RedisEnds(redis_client, ends)
        index = UserIndex.of(redis_client, config.session)

        # Others wait as long as one refresh may take (token call, then perhaps a JWKS fetch for a
        # new kid), plus a margin for the lock round trips.
        shared = RedisSharedRefresh(redis_client, session_box, wait=config.refresh.timeout + provider_config.timeout + 2)
    authenticator = Authenticator(
        store,
        Refresher(provider, profile, config.refresh.timeout, shared),
        BearerVerifier(provider, provider_config.accepted_bearer_clients, provider_config.algorithms, profile),
        profile,
        before_expiry=config.refresh.before_expiry,
        idle_timeout=config.session.idle_timeout,
        ends=ends,
        index=index,
        userinfo=UserInfo(provider) if config.identity.userinfo else None,
    )
    signer = _signer(config, sign_in) if config.identity.alb_compatible or config.identity.assertion_header else None
    renderer = HeaderRenderer(config.identity, sign_in.public_url, provider_config.client_id, provider, signer)
    gate = Gate(Policy(rules, spoofed, renderer), authenticator, sign_in.endpoints_prefix)
    login_cookies = LoginStateCookies(SecretBox(config.session.secrets, "login"), f"{config.session.cookie_name}_login", secure)
    return SignInParts(
        provider=provider,
        provider_http=provider_http,
        redis_client=redis_client,
        sign_in=SignIn(sign_in, provider, store, login_cookies, own_origins, ends, index),
        authenticator=authenticator,
        forward_auth=ForwardAuth(gate, sign_in.public_url, config.trusted_proxies),
        signer=signer,
        shared_ends=shared_ends,
        worker_ends=worker_ends,
        aws_credentials=AwsCredentialsEndpoint(
            IdentityPoolClient(config.aws_credentials, provider_http, provider_config.timeout), authenticator, own_origins
        ) if config.aws_credentials else None,
    )  # fmt: skip


def add_sign_in(app: web.Application, parts: SignInParts, readiness: Readiness, prefix: str) -> None:
    """Routes, readiness checks and the lifetime of sign-in's I/O."""
    sign_in = parts.sign_in
    app.router.add_get(f"{prefix}/start", sign_in.start)
    app.router.add_get(f"{prefix}/callback", sign_in.callback)
    app.router.add_route("GET", f"{prefix}/sign_out", sign_in.sign_out)
    app.router.add_route("POST", f"{prefix}/sign_out", sign_in.sign_out)
    app.router.add_get(f"{prefix}/userinfo", parts.userinfo)
    app.router.add_route("*", f"{prefix}/auth", parts.forward_auth.handle)
    if parts.aws_credentials is not None:
        app.router.add_get(f"{prefix}/aws-credentials", parts.aws_credentials.handle)
    if parts.signer is not None:
        app[SIGNER] = parts.signer
        add_key_routes(app, SIGNER, prefix)
    provider = parts.provider

    async def provider_problem() -> str | None:
        # Ready once discovery and the JWKS (with a usable key) loaded: before that no sign-in can
        # be verified. Not unready again when the provider goes down later: signed-in users keep
        # working on their sessions, and a load balancer that pulled every instance would help nobody.
        if provider.loaded is not None:
            return None
        return f"not loaded: {provider.last_error}" if provider.last_error else "loading"

    readiness.checks["provider"] = provider_problem
    redis_client = parts.redis_client
    if redis_client is not None:

        from ..session.redis_client import unreachable

        async def redis_problem() -> str | None:
            return await unreachable(redis_client)

        readiness.checks["redis"] = redis_problem
    shared_ends = parts.shared_ends
    if shared_ends is not None:

        async def ends_problem() -> str | None:
            # Until the fleet's ended sessions are known here, a signed-out cookie would still open pages.
            return None if shared_ends.loaded_once else "not loaded from redis yet"

        readiness.checks["ended_sessions"] = ends_problem
    app.cleanup_ctx.append(parts.lifetime)


def _redis(config: Config) -> "redis.Redis | redis.RedisCluster | None":
    """The Redis the sessions live in (store: redis), or that cookie sessions share their ends through."""
    if not config.session.uses_redis:
        return None
    from ..session.redis_client import connect  # one server, Sentinel or Cluster, as the config says

    return connect(config.session)


def _store(config: Config, box: SecretBox, secure: bool, client: "redis.Redis | redis.RedisCluster | None") -> SessionStore:
    session = config.session
    if session.store is StoreKind.REDIS:
        from ..session.redis_store import RedisSessionStore

        assert client is not None
        return RedisSessionStore(client, box, session.cookie_name, secure, session.max_lifetime)
    return CookieSessionStore(box, session.cookie_name, secure, session.max_lifetime)


def _signer(config: Config, sign_in: SignInConfig) -> GatewaySigner:
    region = provider_region(sign_in.provider)
    return GatewaySigner.from_secrets(config.session.secrets, config.identity.alb_signer, region, client_id=sign_in.provider.client_id)
