"""Who is making a request: the answer of authentication, the input of every decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)  # eq=False: identity hashing, so rendered headers can be cached per principal
class Principal:
    """From a session or a verified Bearer token. `claims` are verified; the user's name is
    always under `cognito:username`, and userInfo's claims are merged in when configured."""

    claims: dict[str, Any]
    access_token: str
    access_expires_at: float
    from_bearer: bool = False


@dataclass(frozen=True)
class BearerRefused:
    """A Bearer token was offered on a bearer rule and failed verification."""

    reason: str


Authentication = Principal | BearerRefused | None  # None: nobody signed in
