"""What a signed-in browser carries: the tokens, their expiry and when the session began."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any


def unverified_payload(token: str) -> dict[str, Any]:
    """A JWT's payload without checking the signature.

    Only for tokens that were verified when they arrived and have since lived inside an
    authenticated (AEAD) session: re-verifying the RSA signature on every request would be
    wasted work, and the session cannot be forged without the session secret.
    """
    try:
        segment = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def username_of(claims: dict[str, Any]) -> str:
    """Cognito names the user `cognito:username` in id tokens and `username` in access tokens."""
    return str(claims.get("cognito:username") or claims.get("username") or claims.get("preferred_username") or claims.get("sub", ""))


def groups_of(claims: dict[str, Any]) -> list[str]:
    groups = claims.get("cognito:groups") or claims.get("groups") or []
    return [str(g) for g in groups] if isinstance(groups, list) else [str(groups)]


@dataclass(frozen=True)
class SignedIn:
    id_token: str
    access_token: str
    refresh_token: str | None
    access_expires_at: float
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id_token,
            "at": self.access_token,
            "rt": self.refresh_token,
            "exp": int(self.access_expires_at),
            "iat": round(self.created_at, 3),  # to the millisecond: a revocation and a new sign-in may share a second
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SignedIn | None":
        """The session's tokens, or None when the sealed values are not of the shape to_dict writes."""
        id_token, access_token, refresh_token = data.get("id"), data.get("at"), data.get("rt")
        expires_at, created_at = finite_number(data.get("exp")), finite_number(data.get("iat"))
        if not (isinstance(id_token, str) and isinstance(access_token, str)) or expires_at is None or created_at is None:
            return None
        if refresh_token is not None and not isinstance(refresh_token, str):
            return None
        return cls(id_token, access_token, refresh_token, expires_at, created_at)

    @cached_property
    def claims(self) -> dict[str, Any]:
        """Identity claims: the id token's, plus scope and groups from the access token."""
        claims = dict(unverified_payload(self.id_token))
        access = unverified_payload(self.access_token)
        if "scope" in access:
            claims.setdefault("scope", access["scope"])
        if "cognito:groups" in access:
            claims.setdefault("cognito:groups", access["cognito:groups"])
        return claims

    @property
    def username(self) -> str:
        return username_of(self.claims)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return self.access_expires_at - (time.time() if now is None else now) <= seconds


@dataclass(frozen=True, eq=False)  # eq=False: identity hashing, so caches can key derived values on a state
class SessionState:
    """One browser's session as stored: its tokens, when it began, when it was last active, its id."""

    signed_in: SignedIn
    started_at: float  # the sign-in: max_lifetime counts from here
    seen_at: float | None  # last activity, for idle_timeout; None when the sealed value is not a number
    # Names the session wherever a copy of it is (cookie, Redis, a WebSocket): what sign-out ends.
    # Kept through refreshes. Sessions sealed before ids existed get one derived from what their id
    # tokens keep through refreshes (see derived_sid), which every copy of such a session shares.
    sid: str = ""

    def __post_init__(self) -> None:
        if not self.sid:
            object.__setattr__(self, "sid", derived_sid(self.signed_in))

    @classmethod
    def new(cls, signed_in: SignedIn) -> "SessionState":
        return cls(signed_in, signed_in.created_at, signed_in.created_at, secrets.token_urlsafe(16))

    @property
    def sub(self) -> str:
        return str(self.signed_in.claims.get("sub", ""))

    @classmethod
    def from_envelope(cls, data: dict[str, Any]) -> "SessionState | None":
        """A state from `envelope()`'s checked shape; None when the tokens are not of the shape we write."""
        inner = data.get("session", {})
        signed_in = SignedIn.from_dict(inner)
        if signed_in is None:
            return None
        sid = inner.get(SID)
        sid = sid if isinstance(sid, str) and SID_SHAPE.fullmatch(sid) else ""
        return cls(signed_in, signed_in_at(data), finite_number(inner.get(SEEN, data["created"])), sid)

    def to_envelope(self, now: float) -> dict[str, Any]:
        """The stored form (aiohttp-session's shape, so sessions from earlier versions still open)."""
        inner = self.signed_in.to_dict()
        if self.seen_at is not None:
            inner[SEEN] = int(self.seen_at)
        inner[SID] = self.sid
        return {"created": int(now), "session": inner}

    def with_tokens(self, signed_in: SignedIn) -> "SessionState":
        return SessionState(signed_in, self.started_at, self.seen_at, self.sid)

    def seen(self, now: float) -> "SessionState":
        return SessionState(self.signed_in, self.started_at, now, self.sid)


SEEN = "seen"  # last activity inside the sealed session
SID = "sid"  # the session's id inside the sealed session
SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def derived_sid(signed_in: SignedIn) -> str:
    """The id of a session sealed before sessions had one: the same for every copy of it, refreshed or not.

    Cognito's id tokens carry `origin_jti` (one per sign-in, kept through refreshes); OIDC's keep
    `sub` and `auth_time`. Only when neither is there is the id token itself the seed (a copy taken
    before a refresh then has another id).
    """
    claims = signed_in.claims
    if claims.get("origin_jti"):
        seed = f"origin_jti\0{claims['origin_jti']}"
    elif claims.get("sub") and claims.get("auth_time"):
        seed = f"auth_time\0{claims['sub']}\0{claims['auth_time']}"
    else:
        seed = signed_in.id_token
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()[:16]).rstrip(b"=").decode()


def finite_number(value: object) -> float | None:
    """A sealed number as a float; None for anything else (strings, bools, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def signed_in_at(data: dict[str, Any]) -> float:
    """When this session began: the sign-in time sealed with the tokens (`iat`), else `created`.

    aiohttp-session's `created` is reset by every write to the session (a refresh, an idle-timeout
    touch), so on its own it would let max_lifetime slide forever.
    """
    created = finite_number(data.get("created")) or 0.0
    inner = data.get("session")
    iat = finite_number(inner.get("iat")) if isinstance(inner, dict) else None
    # `created` is written in whole seconds: iat (to the millisecond) may be up to a second later.
    return created if iat is None else min(iat, created + 1)


def envelope(plaintext: bytes) -> dict[str, Any] | None:
    """aiohttp-session's stored form, `{"created": …, "session": {…}}`, if the opened bytes have its shape.

    Both stores unseal only what they sealed, but the checks keep a shape this code never wrote
    (older versions, a fuzzer with the secret) from becoming a 500 or a session that never expires.
    """
    try:
        data = json.loads(plaintext)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        return None
    if not isinstance(data, dict) or not isinstance(data.get("session", {}), dict):
        return None  # aiohttp-session would fail on a session that is not a mapping
    # Not NaN, not infinite, not an integer too large for a float: each would crash or never expire.
    created = finite_number(data.get("created"))
    if created is None or not -1e12 < created < 1e12:
        return None
    iat = data.get("session", {}).get("iat")  # the sign-in time signed_in_at() prefers: the same bounds
    if isinstance(iat, (int, float)) and not isinstance(iat, bool) and not -1e12 < iat < 1e12:
        return None
    return data
