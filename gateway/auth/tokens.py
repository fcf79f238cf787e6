"""Turning a token endpoint response into a verified session."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import ProviderError, TokenError
from ..oidc.client import TokenSet, UserInfoMismatch
from ..oidc.profile import ProviderProfile
from ..oidc.provider import LoadedProvider
from ..session.model import SignedIn, unverified_payload

log = logging.getLogger("gateway.auth")


async def verify_tokens(
    loaded: LoadedProvider,
    tokens: TokenSet,
    profile: ProviderProfile,
    nonce: str | None,
    previous: SignedIn | None = None,
    userinfo: bool = False,
) -> SignedIn:
    """Verify what the token endpoint returned; the session trusts these claims from now on.

    `previous` is the session being refreshed: a refresh may omit the id token (the one from
    sign-in then stays) and, unless the provider rotates them, the refresh token. A refreshed
    id token must be about the same user (OpenID Connect Core 12.2: same `sub`).

    Every token verified here must carry `sub`; where the profile's access token is a JWT
    (Cognito) it is verified too, and must be about the same user as the id token.

    `userinfo=True` (identity.userinfo is on; at sign-in): the provider's userInfo is fetched
    once with the new access token, and a userInfo about another user (`sub` differs from the
    id token's) refuses the sign-in with a TokenError. A userInfo endpoint that fails otherwise
    does not: request-time enrichment then sends token claims only, as it does on any failure.
    """
    if tokens.id_token:
        id_claims: dict[str, Any] = await loaded.verifier.verify(tokens.id_token, "id", nonce=nonce)
        id_token = tokens.id_token
        if previous is not None and id_claims["sub"] != unverified_payload(previous.id_token).get("sub"):
            raise TokenError("refreshed id token is about another user (sub)")
    elif previous is not None:
        id_token = previous.id_token
        id_claims = unverified_payload(id_token)  # verified at sign-in, kept in the sealed session
    else:
        raise TokenError("no id token in the response")
    if profile.access_token_is_jwt:
        access_claims = await loaded.verifier.verify(tokens.access_token, "access")
        if access_claims["sub"] != id_claims.get("sub"):
            raise TokenError("access token and id token are about different users (sub)")
        access_expires_at = float(access_claims["exp"])
    else:  # a generic provider's access token may be opaque: trust the token endpoint's expires_in
        access_expires_at = time.time() + tokens.expires_in
    if userinfo and previous is None:
        await _check_userinfo(loaded, tokens.access_token, str(id_claims["sub"]))
    return SignedIn(
        id_token=id_token,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
        access_expires_at=access_expires_at,
        created_at=previous.created_at if previous else time.time(),
    )


async def _check_userinfo(loaded: LoadedProvider, access_token: str, sub: str) -> None:
    try:
        await loaded.client.userinfo(access_token, expected_sub=sub)
    except UserInfoMismatch:
        raise
    except ProviderError as exc:
        log.warning("userInfo at sign-in failed, signing in with token claims: %s", exc)
