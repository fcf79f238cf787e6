"""Wires sign-in into the app: session storage, middleware, /oauth2/* routes, the provider's lifetime."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from aiohttp_session import AbstractStorage, session_middleware

from ..config import Config, provider_region
from ..ops.health import READINESS
from ..oidc.profile import profile_for
from ..oidc.provider import Provider
from ..session.cookie_store import ChunkedCookieStorage
from ..session.crypto import SecretBox
from ..session.login_state import LoginStateCookies
from ..session.redis_store import RedisSessionStorage
from .bearer import BearerVerifier
from .forward import FORWARD_AUTH_ROUTE, forward_auth, mirror_set_cookies
from .gate import Gate
from .identity import IdentityHeaders
from .login import SignIn, userinfo_response
from .same_origin import OwnOrigins
from .middleware import require_sign_in, save_on_prepare, session_store_errors
from .refresh import Refresher
from .shared_refresh import RedisSharedRefresh
from .signing import SIGNER, GatewaySigner, add_key_routes

SIGN_IN = web.AppKey("sign_in", SignIn)
OWN_ORIGINS = web.AppKey("own_origins", OwnOrigins)
GATE = web.AppKey("gate", Gate)
IDENTITY_HEADERS = web.AppKey("identity_headers", IdentityHeaders)


def gateway_cookie_filter(cookie_name: str) -> Callable[[str], bool]:
    """A predicate for the gateway's own cookies (session chunks, login state), never sent upstream."""

    def is_ours(name: str) -> bool:
        for prefix in ("__Host-", "__Secure-"):
            name = name.removeprefix(prefix)
        return name == cookie_name or name.startswith(cookie_name + "_")

    return is_ours


def _storage(config: Config, box: SecretBox, secure: bool) -> tuple[AbstractStorage, redis.Redis | None]:
    session = config.session
    if session.store == "redis":
        client = redis.from_url(session.redis_url, socket_timeout=2, socket_connect_timeout=2)
        return RedisSessionStorage(client, box, session.cookie_name, secure, session.max_lifetime), client
    return ChunkedCookieStorage(box, session.cookie_name, secure, session.max_lifetime), None


def setup_auth(app: web.Application, config: Config) -> None:
    provider_config = config.provider
    public_url = config.public_url
    assert provider_config is not None and public_url is not None
    secure = public_url.startswith("https://")
    session_box = SecretBox(config.session.secrets, "session")
    storage, redis_client = _storage(config, session_box, secure)
    prefix = config.endpoints_prefix
    login_cookies = LoginStateCookies(SecretBox(config.session.secrets, "login"), f"{config.session.cookie_name}_login", secure)

    async def provider_lifetime(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            provider = Provider(provider_config, http)
            app[SIGN_IN] = SignIn(config, provider, login_cookies, app[OWN_ORIGINS])
            shared = None
            if redis_client is not None:
                # Others wait as long as one refresh may take (token call, then perhaps a JWKS fetch for a
                # new kid), plus a margin for the lock round trips.
                wait = config.refresh.timeout + provider_config.timeout + 2
                shared = RedisSharedRefresh(redis_client, session_box, wait=wait)
            refresher = Refresher(provider, profile_for(provider_config.kind), config.refresh.timeout, shared)
            bearer = BearerVerifier(provider, provider_config.accepted_bearer_clients, provider_config.algorithms, profile_for(provider_config.kind))
            app[GATE] = Gate(config, refresher, bearer)
            app[IDENTITY_HEADERS] = IdentityHeaders(config, provider, app.get(SIGNER))

            async def provider_problem() -> str | None:
                return provider.last_error

            app[READINESS].checks["provider"] = provider_problem
            loader = asyncio.create_task(provider.keep_trying())
            yield
            loader.cancel()
        if redis_client is not None:
            await redis_client.aclose()

    app.middlewares.extend([session_store_errors, session_middleware(storage), require_sign_in(prefix, lambda: app[GATE])])
    if config.identity.alb_compatible or config.identity.assertion_header:
        app[SIGNER] = _signer(config)
        add_key_routes(app, SIGNER, prefix)
    app.on_response_prepare.append(save_on_prepare(storage))
    app.on_response_prepare.append(mirror_set_cookies)
    app.cleanup_ctx.append(provider_lifetime)
    if redis_client is not None:
        app[READINESS].checks["redis"] = lambda: _redis_problem(redis_client)

    for method, path, name in [
        ("GET", "start", "start"),
        ("GET", "callback", "callback"),
        ("GET", "sign_out", "sign_out"),
        ("POST", "sign_out", "sign_out"),
    ]:
        app.router.add_route(method, f"{prefix}/{path}", _delegate(name))

    async def userinfo(request: web.Request) -> web.StreamResponse:
        return userinfo_response(request, await request.app[GATE].session_principal(request))

    app.router.add_get(f"{prefix}/userinfo", userinfo)

    async def auth(request: web.Request) -> web.StreamResponse:
        return await forward_auth(
            request, request.app[GATE], request.app[IDENTITY_HEADERS], public_url, prefix, config.trusted_proxies
        )

    app.router.add_route("*", f"{prefix}/auth", auth, name=FORWARD_AUTH_ROUTE)


def _delegate(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler calling SignIn.<name>: SignIn exists only once the app has started."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await getattr(request.app[SIGN_IN], name)(request)

    return handler


def _signer(config: Config) -> GatewaySigner:
    assert config.provider is not None
    region = provider_region(config.provider)
    return GatewaySigner.from_secrets(
        config.session.secrets, config.identity.alb_signer, region, client_id=config.provider.client_id
    )


async def _redis_problem(client: redis.Redis) -> str | None:
    try:
        await client.ping()
        return None
    except (redis.RedisError, OSError) as exc:
        return f"redis unreachable: {exc.__class__.__name__}"
