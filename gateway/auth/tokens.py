"""Turning a token endpoint response into a verified session."""

from __future__ import annotations

import time

from ..errors import TokenError
from ..oidc.client import TokenSet
from ..oidc.provider import LoadedProvider
from ..session.model import SignedIn


async def verify_tokens(
    loaded: LoadedProvider, tokens: TokenSet, kind: str, nonce: str | None, previous: SignedIn | None = None
) -> SignedIn:
    """Verify what the token endpoint returned; the session trusts these claims from now on.

    `previous` is the session being refreshed: a refresh may omit the id token (the one from
    sign-in then stays) and, unless the provider rotates them, the refresh token.
    """
    id_token = tokens.id_token
    if id_token:
        await loaded.verifier.verify(id_token, "id", nonce=nonce)
    elif previous is not None:
        id_token = previous.id_token
    else:
        raise TokenError("no id token in the response")
    if kind == "cognito":
        access_expires_at = float((await loaded.verifier.verify(tokens.access_token, "access"))["exp"])
    else:  # a generic provider's access token may be opaque: trust the token endpoint's expires_in
        access_expires_at = time.time() + tokens.expires_in
    return SignedIn(
        id_token=id_token,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
        access_expires_at=access_expires_at,
        created_at=previous.created_at if previous else time.time(),
    )
