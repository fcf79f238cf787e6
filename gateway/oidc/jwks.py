"""JWKS cache: keys by `kid`, refetched on an unknown `kid` at most once per interval.

Like aws-jwt-verify's "penalty box": a flood of tokens with made-up `kid`s costs at most
one fetch per interval, and a failed fetch keeps the keys we already had. A provider that
rotates its signing key (new `kid` in its JWKS) is followed by that refetch.
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
from ..ops import metrics
from .bodies import MAX_RESPONSE_BYTES, parse_json, read_limited

log = logging.getLogger("gateway.oidc")
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True)
class SigningKey:
    key: Any  # a cryptography public key
    alg: str | None  # the JWK's declared "alg", if any
    kty: str = "RSA"  # the JWK's key type: a token's alg must be of this family


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
        self._all: tuple[SigningKey, ...] = ()  # every usable signing key, with or without a kid
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    @property
    def loaded(self) -> bool:
        return bool(self._all)

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
                    log.warning("JWKS fetch failed, keeping %d known keys: %s", len(self._all), exc)
                key = self._keys.get(kid)
        if key is None:
            raise TokenError("unknown signing key (kid)")
        return key

    async def only_key(self) -> SigningKey:
        """For a token without `kid`: the JWKS's key if it has exactly one, else TokenError.

        OpenID Connect Core 10.1: "the kid value MAY be omitted when there is only one key";
        with several keys the token cannot say which one signed it, and guessing is refused.
        """
        if not self._all:
            async with self._lock:
                if not self._all and self._may_refetch():
                    try:
                        await self.refresh()
                    except ProviderError as exc:
                        log.warning("JWKS fetch failed: %s", exc)
        if len(self._all) != 1:
            raise TokenError(f"token has no kid and the JWKS has {len(self._all)} keys")
        return self._all[0]

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
                document: Any = parse_json(await read_limited(response, MAX_RESPONSE_BYTES))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            metrics.JWKS_FETCHES.labels("error").inc()
            raise ProviderError(f"JWKS unreachable: {exc.__class__.__name__}") from None
        except ProviderError:
            metrics.JWKS_FETCHES.labels("error").inc()
            raise
        metrics.JWKS_FETCHES.labels("ok").inc()
        by_kid, every = _parse_keys(document)
        if every:
            self._keys, self._all = by_kid, every
        else:
            log.warning("JWKS has no usable signing key, keeping %d known keys", len(self._all))


def _parse_keys(document: Any) -> tuple[dict[str, SigningKey], tuple[SigningKey, ...]]:
    keys: dict[str, SigningKey] = {}
    every: list[SigningKey] = []
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
            continue  # a symmetric ("oct") key would let anyone who has it mint tokens
        alg = entry.get("alg")
        try:
            key = SigningKey(jwt.PyJWK(entry).key, alg if isinstance(alg, str) else None, entry["kty"])
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("ignoring unusable JWK %s", entry.get("kid"))
            continue
        every.append(key)
        if isinstance(entry.get("kid"), str) and entry["kid"]:
            keys[entry["kid"]] = key
    return keys, tuple(every)
