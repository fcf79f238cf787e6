"""Cognito-shaped tokens: RS256 id and access JWTs, opaque refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from .config import IdpConfig
from .keys import KeyRing
from .store import User

# Cognito refresh tokens are ~1.7 KB JWEs; looking alike keeps cookie-size tests honest.
_JWE_HEADER = base64.urlsafe_b64encode(b'{"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}').rstrip(b"=").decode()


@dataclass(frozen=True)
class SignIn:
    """What one sign-in (or its refresh) grants: the basis of every token issued for it."""

    user: User
    client_id: str
    scopes: tuple[str, ...]
    auth_time: int
    origin_jti: str
    nonce: str | None = None


def new_origin_jti() -> str:
    return str(uuid.uuid4())


def new_refresh_token() -> str:
    parts = [_JWE_HEADER, _random(256), _random(12), _random(1000), _random(16)]
    return ".".join(parts)


def _random(size: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(size)).rstrip(b"=").decode()


def _sign(claims: dict[str, Any], keys: KeyRing) -> str:
    key = keys.current
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": None})  # Cognito sends no typ


def _common(config: IdpConfig, sign_in: SignIn, lifetime: int, now: int) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": sign_in.user.sub}
    if sign_in.user.groups:  # Cognito omits the claim for users without groups
        claims["cognito:groups"] = list(sign_in.user.groups)
    claims.update(
        iss=config.issuer_url, origin_jti=sign_in.origin_jti, event_id=str(uuid.uuid4()),
        auth_time=sign_in.auth_time, exp=now + lifetime, iat=now, jti=str(uuid.uuid4()),
    )  # fmt: skip
    return claims


def access_token(config: IdpConfig, keys: KeyRing, sign_in: SignIn) -> str:
    now = int(time.time())
    claims = _common(config, sign_in, config.lifetimes.access, now)
    claims.update(
        token_use="access", scope=" ".join(sign_in.scopes), client_id=sign_in.client_id,
        version=2, username=sign_in.user.username,
    )  # fmt: skip
    return _sign(claims, keys)


def id_token(config: IdpConfig, keys: KeyRing, sign_in: SignIn, access: str) -> str:
    now = int(time.time())
    claims = _common(config, sign_in, config.lifetimes.id, now)
    claims.update(user_attributes(sign_in.user, all_attributes=True))
    claims.update(aud=sign_in.client_id, token_use="id", at_hash=_at_hash(access))
    claims["cognito:username"] = sign_in.user.username
    if sign_in.nonce:
        claims["nonce"] = sign_in.nonce
    return _sign(claims, keys)


def machine_access_token(config: IdpConfig, keys: KeyRing, client_id: str, scopes: tuple[str, ...]) -> str:
    """client_credentials: the client is the subject; no user, no origin_jti, no groups."""
    now = int(time.time())
    claims = {
        "sub": client_id, "token_use": "access", "scope": " ".join(scopes), "auth_time": now,
        "iss": config.issuer_url, "exp": now + config.lifetimes.access, "iat": now, "version": 2,
        "jti": str(uuid.uuid4()), "client_id": client_id,
    }  # fmt: skip
    return _sign(claims, keys)


def user_attributes(user: User, *, all_attributes: bool, scopes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Attributes as Cognito names them; for userInfo, `email`/`phone`/`profile` scopes filter."""
    show_email = all_attributes or "email" in scopes or "profile" in scopes
    show_phone = all_attributes or "phone" in scopes or "profile" in scopes
    show_profile = all_attributes or "profile" in scopes
    attrs: dict[str, Any] = {}
    if user.email and show_email:
        attrs.update(email=user.email, email_verified=user.email_verified)
    if user.phone_number and show_phone:
        attrs.update(phone_number=user.phone_number, phone_number_verified=True)
    if show_profile:
        attrs.update(dict(user.attributes))
    return attrs


def verify_access_token(config: IdpConfig, keys: KeyRing, token: str) -> dict[str, Any] | None:
    """Our own access token, unexpired and signed by a published key; None otherwise."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        claims = jwt.decode(
            token, key.private_key.public_key(), algorithms=["RS256"], issuer=config.issuer_url,
            options={"require": ["exp", "iat", "token_use"], "verify_aud": False},
        )  # fmt: skip
    except jwt.PyJWTError:
        return None
    return claims if claims.get("token_use") == "access" else None


def _at_hash(access: str) -> str:
    digest = hashlib.sha256(access.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
