"""Who is making a request: the answer of authentication, the input of every decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)  # eq=False: identity hashing, so rendered headers can be cached per principal
class Principal:
    """From a session or a verified Bearer token. `claims` are verified; the user's name is
    always under `cognito:username`, and userInfo's claims are merged in when configured.
    A machine principal (a client_credentials token: an app client, no user) has no name at all."""

    claims: dict[str, Any]
    access_token: str
    access_expires_at: float
    from_bearer: bool = False
    machine: bool = False

    @property
    def client_id(self) -> str | None:
        """The app client a Bearer token was issued to (verified: one of the accepted clients)."""
        client = self.claims.get("client_id") if self.from_bearer else None
        return client if isinstance(client, str) and client else None


def is_machine(claims: dict[str, Any]) -> bool:
    """Whether verified access-token claims are an app client's own (the client_credentials grant).

    Cognito's client_credentials token has `sub` = `client_id` and no `username`; every user
    access token names its user (`username`). RFC 9068 says the same of JWT access tokens from
    other providers: no resource owner, so `sub` identifies the client.
    """
    client = claims.get("client_id")
    names_a_user = "username" in claims or "cognito:username" in claims
    return isinstance(client, str) and bool(client) and claims.get("sub") == client and not names_a_user


@dataclass(frozen=True)
class BearerRefused:
    """A Bearer token was offered on a bearer rule and failed verification."""

    reason: str


Authentication = Principal | BearerRefused | None  # None: nobody signed in
