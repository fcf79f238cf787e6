"""`/oauth2/token`, `/oauth2/userInfo`, `/oauth2/revoke`, with Cognito's error bodies.

Token errors are HTTP 400 with `{"error": "..."}`, including `invalid_client`:
that is what AWS documents for its token endpoint. The revoke endpoint is
documented with HTTP 401 for `invalid_client`, so it uses that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .config import ClientConfig, IdpConfig
from .state import CONFIG, HOOKS, KEYS, STORE
from .store import RefreshRecord
from .tokens import (
    SignIn,
    access_token,
    id_token,
    machine_access_token,
    new_origin_jti,
    new_refresh_token,
    user_attributes,
    verify_access_token,
)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


class OAuthError(Exception):
    """An OAuth error answer: `error` code, HTTP status and optional description."""

    def __init__(self, error: str, status: int = 400, description: str | None = None) -> None:
        super().__init__(error)
        self.error, self.status, self.description = error, status, description

    def response(self) -> web.Response:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return web.json_response(body, status=self.status, headers=_NO_STORE)


async def _read_form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", description="Content-Type must be application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except ValueError as exc:
        raise OAuthError("invalid_request", description="the form body could not be read") from exc
    return {k: v for k, v in form.items() if isinstance(v, str)}


def authenticate_client(config: IdpConfig, request: web.Request, form: dict[str, str], status: int = 400) -> ClientConfig:
    """HTTP Basic (client_secret_basic) or body (client_secret_post); public clients send client_id only."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", status) from exc
        basic_id, _, basic_secret = decoded.partition(":")
        if client_id and client_id != unquote(basic_id):
            raise OAuthError("invalid_client", status)
        client_id, secret = unquote(basic_id), unquote(basic_secret)
    if not client_id:
        raise OAuthError("invalid_request", description="client_id is required")
    client = config.client(client_id)
    if client is None:
        raise OAuthError("invalid_client", status)
    if client.client_secret is None:
        if secret:  # a public client has no secret to present
            raise OAuthError("invalid_client", status)
    elif not secret or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise OAuthError("invalid_client", status)
    return client


async def token(request: web.Request) -> web.Response:
    hooks = request.app[HOOKS]
    try:
        form = await _read_form(request)
        grant_type = form.get("grant_type", "")
        hooks.token_calls[grant_type or "(none)"] += 1
        fault = hooks.take_fault()
        if fault and fault.mode == "hang":
            await asyncio.sleep(fault.seconds)
        elif fault:
            return web.json_response({"error": "server_error"}, status=fault.status, headers=_NO_STORE)
        if not grant_type:
            raise OAuthError("invalid_request", description="grant_type is required")
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type")
        client = authenticate_client(request.app[CONFIG], request, form)
        handler = {"authorization_code": _code_grant, "refresh_token": _refresh_grant}.get(grant_type, _client_grant)
        return web.json_response(handler(request.app, client, form), headers=_NO_STORE)
    except OAuthError as exc:
        return exc.response()


def _code_grant(app: web.Application, client: ClientConfig, form: dict[str, str]) -> dict[str, Any]:
    if "code" not in client.flows:
        raise OAuthError("unauthorized_client")
    value, redirect_uri = form.get("code"), form.get("redirect_uri")
    if not value or not redirect_uri:
        raise OAuthError("invalid_request", description="code and redirect_uri are required")
    store = app[STORE]
    code = store.take_code(value)
    if code is None or code.client_id != client.client_id or code.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant")
    if code.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            raise OAuthError("invalid_request", description="code_verifier is required")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(digest, code.code_challenge):
            raise OAuthError("invalid_grant")
    user = store.user(code.username)
    if user is None or not user.confirmed:
        raise OAuthError("invalid_grant")
    sign_in = SignIn(user, client.client_id, code.scopes, code.auth_time, new_origin_jti(), code.nonce)
    refresh = _store_refresh(app, sign_in)
    return {**_user_tokens(app, sign_in), "refresh_token": refresh}


def _refresh_grant(app: web.Application, client: ClientConfig, form: dict[str, str]) -> dict[str, Any]:
    config, store = app[CONFIG], app[STORE]
    presented = form.get("refresh_token")
    if not presented:
        raise OAuthError("invalid_request", description="refresh_token is required")
    record = store.refresh_record(presented)
    now = time.time()
    if (
        record is None or record.client_id != client.client_id or record.expires_at <= now
        or store.is_revoked(record.origin_jti)
        or (record.superseded_at is not None and now > record.superseded_at + config.refresh_token_grace_period)
    ):  # fmt: skip
        raise OAuthError("invalid_grant", description="Invalid Refresh Token")
    user = store.user(record.username)
    if user is None or not user.confirmed:
        raise OAuthError("invalid_grant", description="Invalid Refresh Token")
    sign_in = SignIn(user, client.client_id, record.scopes, record.auth_time, record.origin_jti)
    tokens = _user_tokens(app, sign_in)
    if config.refresh_token_rotation:
        # Rotation: a new refresh token each time; the old one lives on only for the grace period.
        tokens["refresh_token"] = _store_refresh(app, sign_in)
        store.supersede_refresh(presented)
    hooks = app[HOOKS]
    hooks.refresh_by_user[user.username] += 1
    hooks.refresh_by_client[client.client_id] += 1
    return tokens


def _client_grant(app: web.Application, client: ClientConfig, form: dict[str, str]) -> dict[str, Any]:
    if "client_credentials" not in client.flows or client.client_secret is None:
        raise OAuthError("unauthorized_client")
    custom = tuple(s for s in client.scopes if "/" in s)
    requested = tuple(form.get("scope", "").split()) or custom
    if not requested or any(scope not in custom for scope in requested):
        raise OAuthError("invalid_scope")
    config = app[CONFIG]
    return {
        "access_token": machine_access_token(config, app[KEYS], client.client_id, requested),
        "expires_in": config.lifetimes.access,
        "token_type": "Bearer",
    }


def _user_tokens(app: web.Application, sign_in: SignIn) -> dict[str, Any]:
    config, keys = app[CONFIG], app[KEYS]
    access = access_token(config, keys, sign_in)
    tokens: dict[str, Any] = {}
    if "openid" in sign_in.scopes:  # Cognito issues an id token only for the openid scope
        tokens["id_token"] = id_token(config, keys, sign_in, access)
    tokens.update(access_token=access, expires_in=config.lifetimes.access, token_type="Bearer")
    return tokens


def _store_refresh(app: web.Application, sign_in: SignIn) -> str:
    value = new_refresh_token()
    record = RefreshRecord(
        client_id=sign_in.client_id, username=sign_in.user.username, scopes=sign_in.scopes,
        auth_time=sign_in.auth_time, origin_jti=sign_in.origin_jti,
        expires_at=time.time() + app[CONFIG].lifetimes.refresh,
    )  # fmt: skip
    app[STORE].add_refresh(value, record)
    return value


async def user_info(request: web.Request) -> web.Response:
    """Attributes for a Bearer access token with the openid scope; errors in WWW-Authenticate."""
    config, store = request.app[CONFIG], request.app[STORE]
    request.app[HOOKS].userinfo_calls += 1
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer " or not header[7:].strip():
        return _bearer_error(400, "invalid_request", "Bad OAuth2 request at UserInfo Endpoint")
    claims = verify_access_token(config, request.app[KEYS], header[7:].strip())
    user = store.user(claims.get("username", "")) if claims else None
    scopes = tuple(claims.get("scope", "").split()) if claims else ()
    if (
        claims is None or user is None or "openid" not in scopes or user.sub != claims.get("sub")
        or store.is_revoked(claims.get("origin_jti", ""))
    ):  # fmt: skip
        return _bearer_error(
            401, "invalid_token",
            "Access token is expired, disabled, or deleted, or the user has globally signed out.",
        )  # fmt: skip
    body: dict[str, Any] = {"sub": user.sub}
    # Cognito's userInfo sends booleans as the strings "true"/"false" (unlike the id token).
    for name, value in user_attributes(user, all_attributes=False, scopes=scopes).items():
        body[name] = str(value).lower() if isinstance(value, bool) else value
    body["username"] = user.username
    return web.json_response(body, headers=_NO_STORE)


def _bearer_error(status: int, error: str, description: str) -> web.Response:
    headers = {**_NO_STORE, "WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'}
    return web.json_response({"error": error, "error_description": description}, status=status, headers=headers)


async def revoke(request: web.Request) -> web.Response:
    """Revoke a refresh token (and its sign-in); unknown tokens get 200, as RFC 7009 asks."""
    try:
        form = await _read_form(request)
        if not form.get("token"):
            raise OAuthError("invalid_request", description="token is required")
        client = authenticate_client(request.app[CONFIG], request, form, status=401)
        presented = form["token"]
        if presented.count(".") == 2:  # a JWT: an id or access token, which cannot be revoked here
            raise OAuthError("unsupported_token_type")
        store = request.app[STORE]
        record = store.refresh_record(presented)
        if record is not None and record.client_id == client.client_id:
            store.revoke_origin(record.origin_jti)
        return web.Response(status=200, headers=_NO_STORE)
    except OAuthError as exc:
        return exc.response()
