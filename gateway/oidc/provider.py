"""Everything the gateway knows of its identity provider, loaded at start and retried until it answers.

Signed-in users keep working while the provider is down (their sessions hold verified claims);
only new sign-ins and refreshes need it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

import aiohttp

from ..config import ProviderConfig
from ..errors import ProviderError
from .client import OidcClient
from .endpoints import ProviderEndpoints, resolve_endpoints
from .jwks import JwksCache
from .profile import profile_for
from .verify import TokenVerifier, VerifyPolicy

log = logging.getLogger("gateway.oidc")
RETRY_DELAYS = (1, 2, 5, 10, 30)


@dataclass(frozen=True)
class LoadedProvider:
    endpoints: ProviderEndpoints
    client: OidcClient
    verifier: TokenVerifier


class Provider:
    def __init__(self, config: ProviderConfig, http: Callable[[], aiohttp.ClientSession]) -> None:
        """`http` gives the client session, which exists once the app has started (like JwksCache's)."""
        self.config = config
        self.http = http
        self.loaded: LoadedProvider | None = None  # set once discovery and a JWKS with keys were fetched
        self.last_error: str | None = None  # why the last load failed, for /readyz
        self._lock = asyncio.Lock()

    async def load(self) -> LoadedProvider:
        """Endpoints and JWKS; raises ProviderError while the provider cannot be reached."""
        if self.loaded is not None:
            return self.loaded
        async with self._lock:
            if self.loaded is None:
                try:
                    self.loaded = await self._load()
                    self.last_error = None
                    log.info("identity provider ready: %s", self.loaded.endpoints.issuer)
                except ProviderError as exc:
                    self.last_error = str(exc)
                    raise
        return self.loaded

    async def _load(self) -> LoadedProvider:
        config = self.config
        http = self.http()
        endpoints = await resolve_endpoints(http, config)
        jwks = JwksCache(self.http, endpoints.jwks_uri, config.jwks_refetch_interval, config.timeout)
        await jwks.refresh()
        if not jwks.loaded:
            # An empty (or all-unusable) JWKS verifies nothing: every sign-in would fail, so the
            # provider is not loaded yet and keep_trying fetches again; /readyz stays 503 meanwhile.
            raise ProviderError("JWKS has no usable signing key")
        policy = VerifyPolicy(
            issuer=endpoints.issuer, client_ids=(config.client_id,), algorithms=config.algorithms, profile=profile_for(config.kind)
        )
        client = OidcClient(http, endpoints, config.client_id, config.client_secret, config.timeout)
        return LoadedProvider(endpoints, client, TokenVerifier(jwks, policy))

    async def keep_trying(self) -> None:
        """Background task at start: load, backing off, until it works."""
        attempt = 0
        while self.loaded is None:
            try:
                await self.load()
            except ProviderError as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                log.warning("identity provider not reachable (%s); retrying in %ss", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
