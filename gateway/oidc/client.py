"""Talking to the provider's OAuth2 endpoints: code exchange, refresh, revoke, userInfo.

Every answer is read with a bound (`MAX_RESPONSE_BYTES`) inside the provider timeout, and checked
for shape before anything is taken from it: a provider that answers garbage, HTML, a huge or
never-ending body, or a JSON value of the wrong type fails cleanly with a GrantError or a
ProviderError, never with an exception the caller did not expect.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import ProviderError, TokenError
from .bodies import ResponseTooLarge, parse_json, read_limited
from .endpoints import ProviderEndpoints

log = logging.getLogger("gateway.oidc")

_SAFE_ERROR_CODE = re.compile(r"[^A-Za-z0-9_.\-]")


class GrantError(ProviderError):
    """The provider refused a grant: `error` is its OAuth2 error code (`invalid_grant`, …)."""

    def __init__(self, error: str, status: int) -> None:
        # The code comes from the provider: keep it short and plain, it is logged and shown.
        self.error = _SAFE_ERROR_CODE.sub("", error)[:64] or "invalid_response"
        self.status = status
        super().__init__(f"{self.error} ({status})")


class UserInfoMismatch(TokenError, ProviderError):
    """userInfo described another user than the token (its `sub` differs): never use it.

    Both a TokenError (at sign-in: refuse the sign-in) and a ProviderError (when enriching a
    request: the provider answered badly, send the token's claims only), so every existing
    caller already handles it safely.
    """


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: float
    id_token: str | None = None
    refresh_token: str | None = None


def _expires_in(value: Any) -> float:
    """`expires_in` in seconds; some providers send it as a string. Absent: an hour."""
    if value is None:
        return 3600.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expires_in is not a number")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("expires_in is not a positive number")
    return seconds


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


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
        """(status, JSON body); the body is {} when it is empty or not JSON.

        The timeout covers the whole exchange, body included: a provider trickling its answer
        cannot hold a sign-in longer than that.
        """
        headers = self._headers(form)
        try:
            async with self.http.post(
                url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await read_limited(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProviderError(f"provider unreachable: {exc.__class__.__name__}") from None
        try:
            return status, parse_json(body) if body.strip() else {}
        except ValueError:
            return status, {}

    async def _token_request(self, form: dict[str, str], timeout: float | None = None) -> TokenSet:
        try:
            status, body = await self._post(self.endpoints.token, form, timeout)
        except ResponseTooLarge as exc:
            log.warning("token endpoint answer refused: %s", exc)
            raise GrantError("invalid_response", 200) from None
        if status >= 500:
            raise ProviderError(f"token endpoint answered {status}")
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(access_token, str) or not access_token:
            error = body.get("error") if isinstance(body, dict) else None
            raise GrantError(error if isinstance(error, str) and error else "invalid_response", status)
        try:
            return TokenSet(
                access_token=access_token,
                expires_in=_expires_in(body.get("expires_in")),
                id_token=_optional_string(body, "id_token"),
                refresh_token=_optional_string(body, "refresh_token"),
            )
        except ValueError as exc:
            log.warning("token endpoint answer refused: %s", exc)
            raise GrantError("invalid_response", status) from None

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
        return await self._token_request(form)

    async def refresh(self, refresh_token: str, timeout: float | None = None) -> TokenSet:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, timeout)

    async def revoke(self, refresh_token: str) -> bool:
        """Best effort: whether the provider answered 200. A failed revocation is logged, never shown
        to the user who is signing out (`sessions revoke` counts them)."""
        if not self.endpoints.revoke:
            return False
        try:
            status, _ = await self._post(self.endpoints.revoke, {"token": refresh_token, "token_type_hint": "refresh_token"})
        except ProviderError as exc:
            log.warning("refresh token revocation failed: %s", exc)
            return False
        if status != 200:
            log.warning("refresh token revocation answered %s", status)
        return status == 200

    async def userinfo(self, access_token: str, expected_sub: str | None = None) -> dict[str, Any]:
        """The userInfo claims of this access token (a JSON object with a string `sub`).

        `expected_sub` is the `sub` of the verified token the access token came with: userInfo
        about anyone else is refused with UserInfoMismatch (OpenID Connect Core 5.3.2: the sub
        "MUST be verified to exactly match"; otherwise "the UserInfo Response values MUST NOT be used").
        Pass it whenever it is known.
        """
        if not self.endpoints.userinfo:
            raise ProviderError("the provider has no userInfo endpoint")
        try:
            async with self.http.get(
                self.endpoints.userinfo,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise ProviderError(f"userInfo answered {response.status}")
                info = parse_json(await read_limited(response))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ProviderError(f"userInfo failed: {exc.__class__.__name__}") from None
        if not isinstance(info, dict) or not isinstance(info.get("sub"), str) or not info["sub"]:
            raise ProviderError("userInfo is not a JSON object with a sub")
        if expected_sub is not None and info["sub"] != expected_sub:
            raise UserInfoMismatch("userInfo is about another user (sub differs from the token's)")
        return info
