"""The authorization request shared by every Hosted UI page, and how a sign-in completes.

Cognito's rule, kept here: an unknown `client_id` or unregistered `redirect_uri`
is shown as an error page on the IdP (redirecting would hand an attacker an open
redirect); every other problem goes back to the client as `?error=&state=`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from .config import ClientConfig, IdpConfig
from .pages import error_page, html_response
from .state import CONFIG, STORE
from .store import AuthCode, LoginSession, User

SESSION_COOKIE = "cognito"  # the Hosted UI's own session cookie name
CSRF_COOKIE = "XSRF-TOKEN"
OAUTH_PARAMS = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "identity_provider", "prompt",
)  # fmt: skip
_CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")


@dataclass(frozen=True)
class AuthRequest:
    client: ClientConfig
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: str | None
    query: str  # the OAuth parameters, carried from page to page in the query string


def page_error(config: IdpConfig, detail: str, status: int = 400) -> web.HTTPException:
    body = error_page(config.user_pool_id, detail)
    exc_class = web.HTTPForbidden if status == 403 else web.HTTPBadRequest
    return exc_class(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


def with_params(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redirect(location: str) -> web.Response:
    """A 302 as a plain response, so cookies can be set on it."""
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def parse_auth_request(request: web.Request) -> AuthRequest:
    """Validate the OAuth parameters of a Hosted UI request; raise the Cognito-shaped error."""
    config, query = request.app[CONFIG], request.query
    client = config.client(query.get("client_id", ""))
    if client is None:
        raise page_error(config, "invalid_request: client_id is missing or is not an app client of this pool.")
    redirect_uri = query.get("redirect_uri", "")
    if redirect_uri not in client.callback_urls:
        raise page_error(config, "redirect_mismatch: redirect_uri is not a callback URL of this app client.")
    state = query.get("state")

    def fail(error: str, description: str) -> web.HTTPFound:
        return web.HTTPFound(with_params(redirect_uri, {"error": error, "error_description": description, "state": state}))

    response_type = query.get("response_type")
    if not response_type:
        raise fail("invalid_request", "response_type is required")
    if response_type != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if "code" not in client.flows:
        raise fail("unauthorized_client", "the authorization code grant is not enabled for this client")
    requested = query.get("scope", "").split()
    if any(scope not in client.scopes for scope in requested):
        raise fail("invalid_scope", "a requested scope is not allowed for this client")
    challenge, method = query.get("code_challenge"), query.get("code_challenge_method")
    if challenge is not None or method is not None:
        # Cognito implements only S256; `plain` would let a stolen code be redeemed.
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not challenge or not _CODE_CHALLENGE.match(challenge):
            raise fail("invalid_request", "code_challenge must be 43-128 base64url characters")
    provider = query.get("identity_provider")
    if provider is not None and provider != "COGNITO":
        # No federation here: Cognito shows this page for a provider the client has not enabled.
        raise page_error(config, "Login option is not available. Please try another one")
    prompt = query.get("prompt")
    if prompt not in (None, "login", "none"):
        raise fail("invalid_request", "prompt must be login or none")
    carried = urlencode([(k, query[k]) for k in OAUTH_PARAMS if k in query])
    return AuthRequest(
        client=client, redirect_uri=redirect_uri, scopes=tuple(requested) or client.scopes, state=state,
        nonce=query.get("nonce"), code_challenge=challenge, prompt=prompt, query=carried,
    )  # fmt: skip


def current_session(request: web.Request) -> tuple[LoginSession, User] | None:
    """The Hosted UI session of this browser, if it is alive and its user can still sign in."""
    store = request.app[STORE]
    session = store.session(request.cookies.get(SESSION_COOKIE))
    user = store.user(session.username) if session else None
    if session is None or user is None or not user.confirmed:
        return None
    return session, user


def complete_sign_in(
    request: web.Request, auth: AuthRequest, user: User, auth_time: int | None = None
) -> web.Response:
    """Issue a one-time code and send the browser back; start a Hosted UI session if needed."""
    config, store = request.app[CONFIG], request.app[STORE]
    code = store.add_code(
        AuthCode(
            client_id=auth.client.client_id, redirect_uri=auth.redirect_uri, username=user.username,
            scopes=auth.scopes, auth_time=auth_time or int(time.time()),
            expires_at=time.time() + config.lifetimes.auth_code, nonce=auth.nonce,
            code_challenge=auth.code_challenge,
        )  # fmt: skip
    )
    response = redirect(with_params(auth.redirect_uri, {"code": code, "state": auth.state}))
    if auth_time is None:  # a fresh sign-in, not silent SSO
        session_id = store.add_session(user.username, config.lifetimes.login_session)
        response.set_cookie(
            SESSION_COOKIE, session_id, max_age=config.lifetimes.login_session, path="/", httponly=True,
            samesite="Lax", secure=config.issuer_url.startswith("https://"),
        )  # fmt: skip
    return response


def form_response(request: web.Request, render: Callable[[str], str], status: int = 200) -> web.Response:
    """Render a form page with a CSRF token (double-submit cookie, like Cognito's XSRF-TOKEN)."""
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = html_response(render(token), status)
    if CSRF_COOKIE not in request.cookies:
        secure = request.app[CONFIG].issuer_url.startswith("https://")
        response.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Lax", secure=secure)
    return response


async def read_form(request: web.Request) -> dict[str, str]:
    """The posted form, after the CSRF check; a mismatch is a 403 page, never a 500."""
    try:
        form = await request.post()
    except ValueError as exc:
        raise page_error(request.app[CONFIG], "The form could not be read.") from exc
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(values.get("_csrf", ""), cookie):
        raise page_error(request.app[CONFIG], "Your session has expired. Please go back and try again.", 403)
    return values
