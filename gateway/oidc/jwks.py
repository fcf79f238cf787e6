"""JWKS cache: keys by `kid`, refetched on an unknown `kid` at most once per interval.

Like aws-jwt-verify's "penalty box": a flood of tokens with made-up `kid`s costs at most
one fetch per interval, and a failed fetch keeps the keys we already had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import jwt

from ..errors import ProviderError, TokenError

log = logging.getLogger("gateway.oidc")
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True)
class SigningKey:
    key: Any  # a cryptography public key
    alg: str | None  # the JWK's declared "alg", if any


class JwksCache:
    def __init__(
        self,
        http: Callable[[], aiohttp.ClientSession],
        jwks_uri: str,
        refetch_interval: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self._http = http
        self.jwks_uri = jwks_uri
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    async def key_for(self, kid: str) -> SigningKey:
        """The key with this `kid`; refetches the JWKS (rate-limited) when it is not known."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)  # another caller may have fetched while we waited
            if key is None and self._may_refetch():
                try:
                    await self.refresh()
                except ProviderError as exc:
                    log.warning("JWKS fetch failed, keeping %d known keys: %s", len(self._keys), exc)
                key = self._keys.get(kid)
        if key is None:
            raise TokenError("unknown signing key (kid)")
        return key

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self.refetch_interval

    async def refresh(self) -> None:
        """Fetch the JWKS now; on failure raise ProviderError and keep the old keys."""
        self._fetched_at = time.monotonic()
        self.fetch_count += 1
        try:
            async with self._http().get(
                self.jwks_uri, timeout=aiohttp.ClientTimeout(total=self.timeout), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise ProviderError(f"JWKS answered {response.status}")
                document: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ProviderError(f"JWKS unreachable: {exc.__class__.__name__}") from None
        self._keys = _parse_keys(document) or self._keys


def _parse_keys(document: Any) -> dict[str, SigningKey]:
    keys: dict[str, SigningKey] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or "kid" not in entry or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
            continue  # a symmetric ("oct") key would let anyone who has it mint tokens
        try:
            keys[str(entry["kid"])] = SigningKey(jwt.PyJWK(entry).key, entry.get("alg"))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("ignoring unusable JWK %s", entry.get("kid"))
    return keys
