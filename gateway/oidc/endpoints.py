"""The provider's URLs: derived from the Cognito shorthand, or read from an issuer's discovery document."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..config import CognitoConfig, ProviderConfig
from ..errors import ProviderError
from .bodies import ResponseTooLarge, parse_json, read_limited
from .profile import ProviderProfile, profile_for


@dataclass(frozen=True)
class ProviderEndpoints:
    issuer: str
    authorize: str
    token: str
    jwks_uri: str
    userinfo: str | None = None
    revoke: str | None = None
    logout: str | None = None  # Cognito's Hosted UI /logout, or an OIDC end_session_endpoint
    signup: str | None = None  # Cognito's Hosted UI /signup


def cognito_endpoints(cognito: CognitoConfig) -> ProviderEndpoints:
    issuer = f"https://cognito-idp.{cognito.region}.amazonaws.com/{cognito.user_pool_id}"
    return _hosted_ui(issuer, f"{issuer}/.well-known/jwks.json", cognito.domain.rstrip("/"))


def _hosted_ui(issuer: str, jwks_uri: str, domain: str) -> ProviderEndpoints:
    return ProviderEndpoints(
        issuer=issuer,
        authorize=f"{domain}/oauth2/authorize",
        token=f"{domain}/oauth2/token",
        jwks_uri=jwks_uri,
        userinfo=f"{domain}/oauth2/userInfo",
        revoke=f"{domain}/oauth2/revoke",
        logout=f"{domain}/logout",
        signup=f"{domain}/signup",
    )


def from_discovery(document: dict[str, Any], issuer: str, profile: ProviderProfile) -> ProviderEndpoints:
    """Endpoints from a discovery document; ProviderError if it is not this issuer's."""
    if document.get("issuer") != issuer:
        raise ProviderError(f"discovery document is for issuer {document.get('issuer')!r}, not {issuer!r}")
    try:
        authorize, token, jwks_uri = document["authorization_endpoint"], document["token_endpoint"], document["jwks_uri"]
    except KeyError as exc:
        raise ProviderError(f"discovery document lacks {exc.args[0]}") from None
    if profile.hosted_ui:
        # Cognito publishes the Hosted UI endpoints on its own domain; /logout and /signup are not in discovery.
        parts = urlsplit(authorize)
        hosted = _hosted_ui(issuer, jwks_uri, f"{parts.scheme}://{parts.netloc}")
        return replace(
            hosted,
            authorize=authorize,
            token=token,
            userinfo=document.get("userinfo_endpoint", hosted.userinfo),
            revoke=document.get("revocation_endpoint", hosted.revoke),
        )
    return ProviderEndpoints(
        issuer=issuer,
        authorize=authorize,
        token=token,
        jwks_uri=jwks_uri,
        userinfo=document.get("userinfo_endpoint"),
        revoke=document.get("revocation_endpoint"),
        logout=document.get("end_session_endpoint"),
    )


async def resolve_endpoints(http: aiohttp.ClientSession, provider: ProviderConfig) -> ProviderEndpoints:
    """The Cognito shorthand needs no network; an issuer is asked for its discovery document."""
    if provider.cognito is not None:
        return cognito_endpoints(provider.cognito)
    assert provider.issuer is not None
    url = f"{provider.issuer}/.well-known/openid-configuration"
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=provider.timeout)) as response:
            if response.status != 200:
                raise ProviderError(f"discovery answered {response.status}")
            document = parse_json(await read_limited(response))
    except ResponseTooLarge as exc:
        raise ProviderError(f"discovery failed: {exc}") from None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise ProviderError(f"discovery failed: {exc.__class__.__name__}") from None
    if not isinstance(document, dict):
        raise ProviderError("discovery document is not a JSON object")
    return from_discovery(document, provider.issuer, profile_for(provider.kind))
