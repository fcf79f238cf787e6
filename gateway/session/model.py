"""What a signed-in browser carries: the tokens, their expiry and when the session began."""

from __future__ import annotations

import base64
import json
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
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError):
        return {}


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
            "iat": int(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SignedIn | None":
        try:
            return cls(str(data["id"]), str(data["at"]), data.get("rt"), float(data["exp"]), float(data["iat"]))
        except (KeyError, TypeError, ValueError):
            return None

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


def signed_in_at(data: dict[str, Any]) -> float:
    """When this session began: the sign-in time sealed with the tokens (`iat`), else `created`.

    aiohttp-session's `created` is reset by every write to the session (a refresh, an idle-timeout
    touch), so on its own it would let max_lifetime slide forever.
    """
    created = data.get("created", 0)
    created = float(created) if isinstance(created, (int, float)) else 0.0
    inner = data.get("session")
    iat = inner.get("iat") if isinstance(inner, dict) else None
    if isinstance(iat, (int, float)) and not isinstance(iat, bool):
        return min(float(iat), created)
    return created
