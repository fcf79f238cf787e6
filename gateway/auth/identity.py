"""Identity headers to the upstream, and removal of every identity header a client tried to send.

Rendering is pure (claims in, header pairs out) and done once per principal: an unchanged
session's principal is the same object request after request (auth/authenticate.py).
"""

from __future__ import annotations

import re
import time
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from multidict import CIMultiDict

from ..config import IdentityConfig
from ..oidc.provider import Provider
from .foreign_headers import FOREIGN_NAMES, FOREIGN_PREFIXES, METHOD_OVERRIDE_NAMES, PATH_OVERRIDE_NAMES, HeaderMatcher
from .principal import Principal

DEFAULT_HEADERS = ("X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username")
ACCESS_TOKEN_HEADER = "X-Forwarded-Access-Token"
# The app client a Bearer token was issued to: a machine client's only name, a user's calling app.
CLIENT_ID_HEADER = "X-Forwarded-Client-Id"
# Claims that name a user: a machine principal's `sub` is its client id, and mapped to a user
# header it would make the app take a client for a user of that name.
_USER_NAME_CLAIMS = frozenset({"sub", "cognito:username", "username", "preferred_username"})
# What the ALB puts in x-amzn-oidc-data: the userInfo claims.
_USERINFO_CLAIMS = ("sub", "username", "email", "email_verified", "phone_number", "phone_number_verified", "name")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")
SIGNED_HEADERS_REUSE = 30.0  # seconds a rendered signed assertion is reused (it lives 60 s)

Headers = tuple[tuple[str, str], ...]


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


class SpoofedHeaders:
    """The headers a client may never send upstream: ours, other systems' (foreign_headers.py), the operator's."""

    def __init__(self, identity: IdentityConfig) -> None:
        names = {*DEFAULT_HEADERS, *(h for h, _ in identity.headers), ACCESS_TOKEN_HEADER, CLIENT_ID_HEADER}
        if identity.assertion_header:
            names.add(identity.assertion_header)
        extra = HeaderMatcher.of_patterns(identity.strip_headers)
        if not identity.pass_method_override:
            names |= METHOD_OVERRIDE_NAMES
        self.matcher = HeaderMatcher([*names, *FOREIGN_NAMES, *PATH_OVERRIDE_NAMES, *extra.names], [*FOREIGN_PREFIXES, *extra.prefixes])
        # The upstream will trust Authorization as the gateway's: only a token the gateway verified may pass.
        self.authorization = identity.pass_authorization
        self._seen: dict[str, bool] = {}  # name as sent -> refused; names repeat, so each is matched once

    def __call__(self, name: str) -> bool:
        """Whether a client may not send this header, in any spelling; on every path."""
        refused = self._seen.get(name)
        if refused is None:
            refused = self.matcher(name) or (self.authorization and name.lower() == "authorization")
            if len(name) <= 64:  # bounded in entries and in size: a client inventing long names only churns it
                if len(self._seen) >= 4096:
                    self._seen.clear()
                self._seen[name] = refused
        return refused

    def remove_from(self, headers: CIMultiDict[str]) -> None:
        """Remove client-sent identity headers from `headers`."""
        for name in [n for n in headers if self(n)]:
            headers.popall(name, None)


class HeaderRenderer:
    """The identity headers for a principal, rendered once and reused while they hold."""

    def __init__(
        self, identity: IdentityConfig, public_url: str, client_id: str, provider: Provider | None = None, signer: Signer | None = None
    ) -> None:
        self.identity = identity
        self.public_url = public_url
        self.client_id = client_id
        self.provider = provider
        self.signer = signer
        self._rendered: WeakKeyDictionary[Principal, tuple[Headers, float]] = WeakKeyDictionary()

    def render(self, principal: Principal) -> Headers:
        now = time.time()
        cached = self._rendered.get(principal)
        if cached is not None and cached[1] > now:
            return cached[0]
        headers = self._headers(principal)
        until = min(principal.access_expires_at, now + SIGNED_HEADERS_REUSE) if self.signer else principal.access_expires_at
        self._rendered[principal] = (headers, until)
        return headers

    def _headers(self, principal: Principal) -> Headers:
        claims = principal.claims
        out: list[tuple[str, str]] = []
        for name, claim in self.identity.headers:
            if principal.machine and claim in _USER_NAME_CLAIMS:
                continue  # a client is never a user
            value = header_value(claims.get(claim))
            if value is not None:
                out.append((name, value))
        client_id = header_value(principal.client_id)
        if client_id is not None:
            out.append((CLIENT_ID_HEADER, client_id))
        if self.identity.pass_access_token:
            out.append((ACCESS_TOKEN_HEADER, principal.access_token))
        if self.identity.pass_authorization or principal.from_bearer:
            out.append(("Authorization", f"Bearer {principal.access_token}"))
        if self.signer is not None:
            out.extend(self._signed(self.signer, principal))
        return tuple(out)

    def _signed(self, signer: Signer, principal: Principal) -> list[tuple[str, str]]:
        if principal.machine:
            return self._signed_machine(signer, principal)
        claims = principal.claims
        loaded = self.provider.loaded if self.provider else None
        issuer = loaded.endpoints.issuer if loaded else ""
        userinfo = {k: claims[k] for k in claims if k in _USERINFO_CLAIMS or k.startswith("custom:")}
        userinfo.setdefault("username", claims.get("cognito:username"))  # userInfo says "username"
        out = []
        if self.identity.alb_compatible:
            out.append(("x-amzn-oidc-accesstoken", principal.access_token))
            out.append(("x-amzn-oidc-identity", str(claims.get("sub", ""))))
            out.append(("x-amzn-oidc-data", signer.alb_data(userinfo, issuer, self.client_id, int(principal.access_expires_at))))
        if self.identity.assertion_header:
            identity = {**userinfo, "groups": claims.get("cognito:groups") or claims.get("groups") or []}
            audience = self.identity.assertion_audience or self.public_url
            out.append((self.identity.assertion_header, signer.assertion(identity, self.public_url, audience)))
        return out

    def _signed_machine(self, signer: Signer, principal: Principal) -> list[tuple[str, str]]:
        """An ALB authenticates users only, and userInfo knows no client: of the ALB's headers a
        machine gets the access token alone. Its assertion names the client and its scopes, and
        has no `sub`: an app that reads the user from it finds none."""
        out = []
        if self.identity.alb_compatible:
            out.append(("x-amzn-oidc-accesstoken", principal.access_token))
        if self.identity.assertion_header:
            identity = {"client_id": principal.client_id, "scope": principal.claims.get("scope", "")}
            audience = self.identity.assertion_audience or self.public_url
            out.append((self.identity.assertion_header, signer.assertion(identity, self.public_url, audience)))
        return out
