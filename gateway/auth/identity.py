"""Identity headers to the upstream, and removal of every identity header a client tried to send."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from multidict import CIMultiDict

from ..config import Config
from ..errors import ProviderError
from ..oidc.provider import Provider
from ..session.model import username_of
from ..ttl_cache import TtlCache
from .foreign_headers import FOREIGN_NAMES, FOREIGN_PREFIXES, METHOD_OVERRIDE_NAMES, PATH_OVERRIDE_NAMES, HeaderMatcher

log = logging.getLogger("gateway.identity")

DEFAULT_HEADERS = ("X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username")
ACCESS_TOKEN_HEADER = "X-Forwarded-Access-Token"
# What the ALB puts in x-amzn-oidc-data: the userInfo claims.
_USERINFO_CLAIMS = ("sub", "username", "email", "email_verified", "phone_number", "phone_number_verified", "name")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Principal:
    """Who is making the request: from the session, or from a verified Bearer token."""

    claims: dict[str, Any]
    access_token: str
    access_expires_at: float
    from_bearer: bool = False


class Signer(Protocol):
    def alb_data(self, claims: dict[str, Any], issuer: str, client_id: str, expires_at: int) -> str: ...

    def assertion(self, claims: dict[str, Any], issuer: str, audience: str, lifetime: int = 60) -> str: ...


def header_value(value: Any) -> str | None:
    """A claim as a header value: lists comma-joined; None when absent or unsafe to send."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return None if _UNSAFE_VALUE.search(text) else text


class IdentityHeaders:
    def __init__(self, config: Config, provider: Provider | None = None, signer: Signer | None = None) -> None:
        self.config = config
        self.identity = config.identity
        self.provider = provider
        self.signer = signer
        self.generic_provider = config.provider is not None and config.provider.kind == "oidc"
        names = {*DEFAULT_HEADERS, *(h for h, _ in self.identity.headers), ACCESS_TOKEN_HEADER}
        if self.identity.assertion_header:
            names.add(self.identity.assertion_header)
        extra = HeaderMatcher.of_patterns(self.identity.strip_headers)
        if not self.identity.pass_method_override:
            names |= METHOD_OVERRIDE_NAMES
        # Ours, other systems' (foreign_headers.py) and the operator's: a client may send none of them.
        self.spoofable = HeaderMatcher(
            [*names, *FOREIGN_NAMES, *PATH_OVERRIDE_NAMES, *extra.names], [*FOREIGN_PREFIXES, *extra.prefixes]
        )
        self._userinfo: TtlCache[dict[str, Any]] = TtlCache()

    def strip(self, headers: CIMultiDict[str]) -> None:
        """Remove client-sent identity headers, in any spelling; always, on every path."""
        for name in [n for n in headers if self.spoofable(n)]:
            headers.popall(name, None)
        if self.identity.pass_authorization:
            # The upstream will trust Authorization as the gateway's: only a token the gateway verified may pass.
            headers.popall("Authorization", None)

    async def add(self, headers: CIMultiDict[str], principal: Principal) -> None:
        claims = await self._claims(principal)
        for name, claim in self.identity.headers:
            value = header_value(claims.get(claim))
            if value is not None:
                headers[name] = value
        if self.identity.pass_access_token:
            headers[ACCESS_TOKEN_HEADER] = principal.access_token
        if self.identity.pass_authorization or principal.from_bearer:
            headers["Authorization"] = f"Bearer {principal.access_token}"
        if self.signer is not None:
            self._add_signed(headers, claims, principal)

    def _add_signed(self, headers: CIMultiDict[str], claims: dict[str, Any], principal: Principal) -> None:
        assert self.signer is not None and self.config.provider is not None
        issuer = self.provider.loaded.endpoints.issuer if self.provider and self.provider.loaded else ""
        userinfo = {k: claims[k] for k in claims if k in _USERINFO_CLAIMS or k.startswith("custom:")}
        userinfo.setdefault("username", claims.get("cognito:username"))  # userInfo says "username"
        if self.identity.alb_compatible:
            headers["x-amzn-oidc-accesstoken"] = principal.access_token
            headers["x-amzn-oidc-identity"] = str(claims.get("sub", ""))
            headers["x-amzn-oidc-data"] = self.signer.alb_data(
                userinfo, issuer, self.config.provider.client_id, int(principal.access_expires_at)
            )
        if self.identity.assertion_header:
            identity = {**userinfo, "groups": claims.get("cognito:groups") or claims.get("groups") or []}
            audience = self.identity.assertion_audience or (self.config.public_url or "")
            headers[self.identity.assertion_header] = self.signer.assertion(identity, self.config.public_url or "", audience)

    async def _claims(self, principal: Principal) -> dict[str, Any]:
        claims = principal.claims
        if "cognito:username" not in claims:
            # A Cognito access token names the user `username` (a client_credentials one names none);
            # a generic provider's id token perhaps `preferred_username`, and always `sub`.
            name = username_of(claims) if self.generic_provider else claims.get("username")
            if name:
                claims = {**claims, "cognito:username": name}
        if not self.identity.userinfo or self.provider is None:
            return claims
        return {**await self._userinfo_for(principal), **claims}

    async def _userinfo_for(self, principal: Principal) -> dict[str, Any]:
        """The provider's userInfo, fetched once per access token and kept until it expires."""
        key = hashlib.sha256(principal.access_token.encode()).digest()
        cached = self._userinfo.get(key)
        if cached is not None:
            return cached
        try:
            client = (await self.provider.load()).client  # type: ignore[union-attr]
            info = await client.userinfo(principal.access_token, expected_sub=principal.claims.get("sub"))
        except ProviderError as exc:
            log.warning("userInfo enrichment failed, sending token claims only: %s", exc)
            return {}
        self._userinfo.put(key, info, principal.access_expires_at)
        return info
