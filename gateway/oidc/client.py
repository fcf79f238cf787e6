"""Talking to the provider's OAuth2 endpoints: code exchange, refresh, revoke, userInfo."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import ProviderError
from .endpoints import ProviderEndpoints

log = logging.getLogger("gateway.oidc")


class GrantError(ProviderError):
    """The provider refused a grant: `error` is its OAuth2 error code (`invalid_grant`, …)."""

    def __init__(self, error: str, status: int) -> None:
        self.error = error
        self.status = status
        super().__init__(f"{error} ({status})")


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: float
    id_token: str | None = None
    refresh_token: str | None = None


class OidcClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoints: ProviderEndpoints,
        client_id: str,
        client_secret: str | None,
        timeout: float,
    ) -> None:
        self.http = http
        self.endpoints = endpoints
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout

    def _headers(self, form: dict[str, str]) -> dict[str, str]:
        """Confidential clients authenticate with HTTP Basic; public ones name themselves in the body."""
        form["client_id"] = self.client_id
        headers = {"Accept": "application/json"}
        if self.client_secret:
            credentials = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        return headers

    async def _post(self, url: str, form: dict[str, str], timeout: float | None = None) -> tuple[int, Any]:
        headers = self._headers(form)
        try:
            async with self.http.post(
                url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProviderError(f"provider unreachable: {exc.__class__.__name__}") from None
        try:
            return status, json.loads(text) if text else {}
        except ValueError:
            return status, {}

    async def _token_request(self, form: dict[str, str], timeout: float | None = None) -> TokenSet:
        status, body = await self._post(self.endpoints.token, form, timeout)
        if status >= 500:
            raise ProviderError(f"token endpoint answered {status}")
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise GrantError(str(error or "invalid_response"), status)
        return TokenSet(
            access_token=str(body["access_token"]),
            expires_in=float(body.get("expires_in", 3600)),
            id_token=body.get("id_token"),
            refresh_token=body.get("refresh_token"),
        )

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
        return await self._token_request(form)

    async def refresh(self, refresh_token: str, timeout: float | None = None) -> TokenSet:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, timeout)

    async def revoke(self, refresh_token: str) -> None:
        """Best effort: a failed revocation is logged, never shown to the user who is signing out."""
        if not self.endpoints.revoke:
            return
        try:
            status, _ = await self._post(self.endpoints.revoke, {"token": refresh_token, "token_type_hint": "refresh_token"})
            if status != 200:
                log.warning("refresh token revocation answered %s", status)
        except ProviderError as exc:
            log.warning("refresh token revocation failed: %s", exc)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        if not self.endpoints.userinfo:
            raise ProviderError("the provider has no userInfo endpoint")
        try:
            async with self.http.get(
                self.endpoints.userinfo,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                if response.status != 200:
                    raise ProviderError(f"userInfo answered {response.status}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ProviderError(f"userInfo failed: {exc.__class__.__name__}") from None
