"""`Authorization: Bearer <Cognito access token>` on rules with `bearer: true`."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from ..errors import ProviderError, TokenError
from ..oidc.profile import ProviderProfile
from ..oidc.provider import Provider
from ..oidc.verify import TokenVerifier, VerifyPolicy
from ..ttl_cache import TtlCache


def bearer_token(request: web.BaseRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class BearerVerifier:
    """Verifies access tokens once, then serves the claims from a small cache until they expire."""

    def __init__(self, provider: Provider, client_ids: tuple[str, ...], algorithms: tuple[str, ...], profile: ProviderProfile) -> None:
        self.provider = provider
        self.client_ids = client_ids
        self.algorithms = algorithms
        self.profile = profile
        self._verifier: TokenVerifier | None = None
        self._cache: TtlCache[dict[str, Any]] = TtlCache()

    async def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid access token from an accepted client; TokenError otherwise."""
        if not token.isascii():  # a JWT is base64url and dots; a raw non-UTF-8 byte reads as a lone surrogate
            raise TokenError("malformed token")
        key = hashlib.sha256(token.encode()).digest()
        claims = self._cache.get(key)
        if claims is None:
            claims = await (await self._token_verifier()).verify(token, "access")
            self._cache.put(key, claims, float(claims["exp"]))
        return claims

    async def _token_verifier(self) -> TokenVerifier:
        if self._verifier is None:
            try:
                loaded = await self.provider.load()
            except ProviderError:
                raise TokenError("the identity provider's keys are not available") from None
            # The same JWKS cache as sign-in, with the bearer rules' own list of accepted clients.
            policy = VerifyPolicy(loaded.endpoints.issuer, self.client_ids, self.algorithms, profile=self.profile)
            self._verifier = TokenVerifier(loaded.verifier.jwks, policy)
        return self._verifier
