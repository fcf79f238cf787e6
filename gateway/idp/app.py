"""`create_idp_app(config)`: the local Cognito as one aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import account, login, oauth
from .admin import add_admin_routes
from .config import IdpConfig
from .identity_pools import add_identity_routes
from .keys import KeyRing
from .state import CONFIG, HOOKS, KEYS, STORE, Hooks
from .store import Store

log = logging.getLogger("gateway.idp")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_idp_app(config: IdpConfig, *, keys: KeyRing | None = None) -> web.Application:
    """Build the app: discovery, JWKS, Hosted UI, OAuth2 endpoints, and `/_admin` if enabled.

    `keys` replaces the configured signing keys: test suites pass one ring's keys
    to many apps, since loading (validating) an RSA key costs tens of milliseconds.
    """
    app = web.Application(middlewares=[_never_500], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[KEYS] = keys or KeyRing.from_config(config.signing_keys, config.generated_key_count)
    app[STORE] = Store(config)
    app[HOOKS] = Hooks()
    pool = config.user_pool_id
    routes = app.router
    routes.add_get(f"/{pool}/.well-known/openid-configuration", discovery)
    routes.add_get(f"/{pool}/.well-known/jwks.json", jwks)
    routes.add_get("/oauth2/authorize", login.authorize)
    routes.add_get("/login", login.login_form)
    routes.add_post("/login", login.login_submit)
    routes.add_get("/logout", login.logout)
    routes.add_get("/signup", account.signup_form)
    routes.add_post("/signup", account.signup_submit)
    routes.add_get("/confirm", account.confirm_form)
    routes.add_post("/confirm", account.confirm_submit)
    routes.add_get("/forgotPassword", account.forgot_form)
    routes.add_post("/forgotPassword", account.forgot_submit)
    routes.add_get("/confirmForgotPassword", account.reset_form)
    routes.add_post("/confirmForgotPassword", account.reset_submit)
    routes.add_post("/oauth2/token", oauth.token)
    routes.add_route("GET", "/oauth2/userInfo", oauth.user_info)
    routes.add_route("POST", "/oauth2/userInfo", oauth.user_info)
    routes.add_post("/oauth2/revoke", oauth.revoke)
    if config.identity_pools:
        add_identity_routes(app)  # Cognito Identity's JSON API: POST /
    if config.admin_api:
        add_admin_routes(app)
    return app


async def discovery(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    base, issuer = config.base_url, config.issuer_url
    document = {
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "end_session_endpoint": f"{base}/logout",
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint": f"{base}/oauth2/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{base}/oauth2/userInfo",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
    }
    return web.json_response(document)


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[KEYS].jwks(), headers={"Cache-Control": "max-age=60"})


@web.middleware
async def _never_500(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unexpected input must not surface as a traceback page; log it and answer a short 400."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (ValueError, UnicodeError, KeyError) as exc:
        log.warning("bad request to %s: %s", request.path, type(exc).__name__)
        return web.json_response({"error": "invalid_request"}, status=400)
