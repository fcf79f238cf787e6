"""/oauth2/start, /oauth2/callback, /oauth2/sign_out and /oauth2/userinfo."""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
import secrets
import time
from urllib.parse import urlencode

from aiohttp import web

from ..config import SignInConfig
from ..errors import ProviderError, TokenError
from ..oidc.client import GrantError
from ..oidc.profile import profile_for
from ..oidc.provider import LoadedProvider, Provider
from ..ops import metrics
from ..responses import error_response, html_page, wants_json
from ..session import cookies
from ..session.login_state import LoginState, LoginStateCookies
from ..session.ends import EndedSessions
from ..session.model import SessionState, SignedIn, groups_of, username_of
from ..session.store import SessionStore
from ..session.user_index import UserIndex
from .principal import Principal
from .return_to import safe_return_path
from .same_origin import OwnOrigins
from .tokens import verify_tokens

log = logging.getLogger("gateway.auth")
_PASSTHROUGH_VALUE = re.compile(r"^[\w.\-:@ ]{1,128}$")  # identity_provider names, language tags


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def userinfo_response(request: web.Request, principal: Principal | None) -> web.Response:
    """/oauth2/userinfo: who the session says is signed in (after idle and refresh rules), as JSON."""
    if principal is None:
        challenge = {"WWW-Authenticate": 'Bearer realm="gateway"'}
        return error_response(request, 401, "unauthenticated", "Sign-in required.", headers=challenge, json_only=True)
    claims = principal.claims
    body = {
        "sub": claims.get("sub"),
        "username": username_of(claims),
        "email": claims.get("email"),
        "email_verified": claims.get("email_verified"),
        "groups": groups_of(claims),
        "expires_at": int(principal.access_expires_at),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def unauthenticated(request: web.BaseRequest, prefix: str) -> web.Response:
    """Browsers are sent to sign in; API clients (JSON, XHR, non-GET, WebSocket) get 401."""
    if wants_json(request) or request.headers.get("Upgrade", "").lower() == "websocket":
        return error_response(
            request, 401, "unauthenticated", "Sign-in required.", headers={"WWW-Authenticate": 'Bearer realm="gateway"'}
        )
    return redirect(f"{prefix}/start?{urlencode({'rd': request.raw_path})}")


class SignIn:
    """The /oauth2 routes that begin and end sessions; each is a bound method."""

    def __init__(
        self,
        config: SignInConfig,
        provider: Provider,
        store: SessionStore,
        login_cookies: LoginStateCookies,
        own_origins: OwnOrigins,
        ends: EndedSessions,
        index: UserIndex | None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.store = store
        self.ends = ends
        self.index = index
        self.login_cookies = login_cookies
        self.redirect_uri = f"{config.public_url}{config.endpoints_prefix}/callback"
        self.retry_link = (f"{config.endpoints_prefix}/start", "Sign in again")
        self.profile = profile_for(config.provider.kind)
        self.own_origins = own_origins

    async def _provider(self, request: web.Request) -> LoadedProvider | web.Response:
        try:
            return await self.provider.load()
        except ProviderError:
            return error_response(request, 503, "provider_unavailable", "The sign-in service cannot be reached right now. Try again in a moment.")

    async def start(self, request: web.Request) -> web.StreamResponse:
        loaded = await self._provider(request)
        if isinstance(loaded, web.Response):
            metrics.SIGN_IN_STARTS.labels("provider_unavailable").inc()
            return loaded
        metrics.SIGN_IN_STARTS.labels("redirected").inc()
        login = LoginState(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
            return_to=safe_return_path(request.query.get("rd")),
            created_at=time.time(),
        )
        provider = self.config.provider
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(provider.scopes),
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": s256(login.code_verifier),
            "code_challenge_method": "S256",
        }
        for ours, theirs in (("idp", "identity_provider"), ("lang", "lang")):
            value = request.query.get(ours)
            if value and _PASSTHROUGH_VALUE.match(value):
                params[theirs] = value
        signup = request.query.get("signup") == "1" and loaded.endpoints.signup
        cookies.queue(request, self.login_cookies.save(request, login))
        return redirect(f"{loaded.endpoints.signup if signup else loaded.endpoints.authorize}?{urlencode(params)}")

    async def callback(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")
        login = self.login_cookies.load(request, state) if state else None
        if login is None:
            metrics.CALLBACKS.labels("invalid_state").inc()
            return error_response(
                request, 400, "invalid_state", "This sign-in is invalid or has expired. Please sign in again.", link=self.retry_link
            )
        cookies.queue(request, self.login_cookies.clear(state))  # one use only: a replayed callback finds no login
        outcome, response = await self._complete(request, login)
        metrics.CALLBACKS.labels(outcome).inc()
        return response

    async def _complete(self, request: web.Request, login: LoginState) -> tuple[str, web.Response]:
        """The outcome (a metrics label) and the answer."""
        query = request.query
        if "error" in query:
            status = 403 if query["error"] == "access_denied" else 400
            detail = query.get("error_description") or query["error"]
            message = f"The sign-in service refused the sign-in: {detail[:300]}"
            return "provider_error", error_response(request, status, query["error"][:64], message, link=self.retry_link)
        code = query.get("code")
        if not code:
            return "missing_code", error_response(request, 400, "missing_code", "The sign-in service sent no authorization code.")
        loaded = await self._provider(request)
        if isinstance(loaded, web.Response):
            return "provider_unavailable", loaded
        try:
            tokens = await loaded.client.exchange_code(code, self.redirect_uri, login.code_verifier)
            signed_in = await verify_tokens(loaded, tokens, self.profile, nonce=login.nonce, userinfo=self.config.userinfo)
        except GrantError as exc:
            log.warning("code exchange refused: %s", exc.error)
            message = f"The sign-in could not be completed ({exc.error}). Please sign in again."
            return "code_refused", error_response(request, 400, "sign_in_failed", message, link=self.retry_link)
        except TokenError as exc:
            log.warning("token verification failed at sign-in: %s", exc.reason)
            message = f"The sign-in service returned a token that failed verification ({exc.reason})."
            return "invalid_token", error_response(request, 400, "invalid_token", message, link=self.retry_link)
        except ProviderError as exc:
            log.warning("code exchange failed: %s", exc)
            unavailable = "The sign-in service cannot be reached right now. Try again in a moment."
            return "provider_unavailable", error_response(request, 502, "provider_unavailable", unavailable)
        session = SessionState.new(signed_in)
        cookies.queue(request, await self.store.save(request, session))  # SessionError: a 503
        if self.index is not None:
            await self.index.record(session)
        log.info("signed in: %s", signed_in.username)
        return "signed_in", redirect(login.return_to)

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        if not self.own_origins.request_is_ours(request):
            return self._confirm_sign_out(request)
        state = await self.store.load(request)
        if state is not None and self.ends.ended(state):
            state = None  # a copy of a session that has ended already: only this browser's cookie is left to clear
        signed_in = state.signed_in if state is not None else None
        cookies.queue(request, await self.store.clear(request))
        if state is not None:
            metrics.SIGN_OUTS.inc()
            await self.ends.end_session(state)  # every copy of this session, on every instance
            if self.index is not None:
                await self.index.forget_session(state)
        loaded = self.provider.loaded
        if signed_in is not None and signed_in.refresh_token and loaded is not None:
            await loaded.client.revoke(signed_in.refresh_token)
        return redirect(self._sign_out_destination(request, loaded, signed_in))

    def _confirm_sign_out(self, request: web.Request) -> web.Response:
        """Logout CSRF: a link on another site may not sign the user out, but may offer to."""
        rd = safe_return_path(request.query.get("rd"))
        action = html.escape(f"{self.config.endpoints_prefix}/sign_out?{urlencode({'rd': rd})}")
        body = (
            "<p>Do you want to sign out?</p>"
            f'<form method="post" action="{action}"><button type="submit">Sign out</button></form>'
        )
        return html_page(200, "Sign out", body)

    def _sign_out_destination(self, request: web.Request, loaded: LoadedProvider | None, signed_in: SignedIn | None) -> str:
        provider = self.config.provider
        back = f"{self.config.public_url}/"  # register exactly this as the app client's sign-out URL
        if provider.sign_out_url:
            return provider.sign_out_url
        if loaded is None or not loaded.endpoints.logout:
            return safe_return_path(request.query.get("rd"))
        id_token = signed_in.id_token if signed_in is not None else None
        return f"{loaded.endpoints.logout}?{self.profile.sign_out_query(provider.client_id, back, id_token)}"
