"""What differs between Cognito and a generic OpenID provider, in one object per kind.

Code asks the profile a question (`profile.access_token_is_jwt`) instead of comparing
`kind == "cognito"` wherever the difference shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..config import ProviderKind
from ..session.model import username_of


@dataclass(frozen=True)
class ProviderProfile:
    kind: ProviderKind
    # Cognito: every token names its use (`token_use`: id/access) and carries a `kid`, as
    # aws-jwt-verify requires. A generic provider: token_use checked only if present, and a
    # token without kid is accepted when the JWKS has exactly one key.
    token_use_required: bool
    # Cognito's access token is a JWT about the user, verified like the id token; a generic
    # provider's may be opaque, and its expiry is the token endpoint's expires_in.
    access_token_is_jwt: bool
    # Cognito publishes /logout and /signup on its Hosted UI domain, not in discovery.
    hosted_ui: bool

    def username(self, claims: dict[str, Any]) -> str | None:
        """The user name of a principal whose claims lack `cognito:username`."""
        if self.kind is ProviderKind.COGNITO:
            name = claims.get("username")  # a Cognito access token; a client_credentials one names none
            return str(name) if name else None
        return username_of(claims) or None  # perhaps `preferred_username`, and always `sub`

    def sign_out_query(self, client_id: str, back: str, id_token: str | None) -> str:
        """The query for the provider's logout endpoint that returns the browser to `back`."""
        if self.kind is ProviderKind.COGNITO:
            return urlencode({"client_id": client_id, "logout_uri": back})
        params = {"client_id": client_id, "post_logout_redirect_uri": back}  # RP-initiated logout
        if id_token is not None:
            params["id_token_hint"] = id_token
        return urlencode(params)


COGNITO = ProviderProfile(ProviderKind.COGNITO, token_use_required=True, access_token_is_jwt=True, hosted_ui=True)
GENERIC_OIDC = ProviderProfile(ProviderKind.OIDC, token_use_required=False, access_token_is_jwt=False, hosted_ui=False)
_PROFILES = {profile.kind: profile for profile in (COGNITO, GENERIC_OIDC)}


def profile_for(kind: ProviderKind) -> ProviderProfile:
    return _PROFILES[kind]
