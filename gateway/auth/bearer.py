"""`Authorization: Bearer <Cognito access token>` on rules with `bearer: true`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import ProviderError, TokenError
from ..oidc.profile import ProviderProfile
from ..oidc.provider import Provider
from ..oidc.verify import TokenVerifier, VerifyPolicy


def bearer_token(request: web.BaseRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class BearerVerifier:
    """Verifies access tokens (the authenticator keeps what it verified until the token expires)."""

    def __init__(self, provider: Provider, client_ids: tuple[str, ...], algorithms: tuple[str, ...], profile: ProviderProfile) -> None:
        self.provider = provider
        self.client_ids = client_ids
        self.algorithms = algorithms
        self.profile = profile
        self._verifier: TokenVerifier | None = None

    async def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid access token from an accepted client; TokenError otherwise."""
        return await (await self._token_verifier()).verify(token, "access")

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
