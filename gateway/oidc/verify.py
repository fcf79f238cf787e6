"""Token verification with the rules of AWS's aws-jwt-verify.

Claims are trusted only after every check here passed; the session then keeps them, so a
signature is verified once per token, never once per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from ..errors import TokenError
from .jwks import JwksCache


@dataclass(frozen=True)
class VerifyPolicy:
    issuer: str
    client_ids: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256",)
    leeway: float = 5.0  # seconds of clock skew tolerated on exp / iat
    # "cognito": token_use is required (id/access); "oidc": a generic provider, token_use checked only if present.
    claims: str = "cognito"


class TokenVerifier:
    def __init__(self, jwks: JwksCache, policy: VerifyPolicy) -> None:
        self.jwks = jwks
        self.policy = policy

    async def verify(self, token: str, token_use: str, nonce: str | None = None) -> dict[str, Any]:
        """Verified claims of an `id` or `access` token, or TokenError with a short reason."""
        policy = self.policy
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in policy.algorithms:
            raise TokenError(f"algorithm not allowed: {algorithm}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("token has no kid")
        key = await self.jwks.key_for(kid)
        if key.alg is not None and key.alg != algorithm:
            raise TokenError("key and token algorithms differ")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=policy.issuer,
                leeway=policy.leeway,
                options={"require": ["exp", "iat", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token issued in the future") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        self._check_claims(claims, token_use, nonce)
        return claims

    def _check_claims(self, claims: dict[str, Any], token_use: str, nonce: str | None) -> None:
        policy = self.policy
        if "token_use" in claims or policy.claims == "cognito":
            if claims.get("token_use") != token_use:
                raise TokenError(f"not an {token_use} token")
        if claims["iat"] > time.time() + policy.leeway:
            raise TokenError("token issued in the future")
        if token_use == "id":
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if not any(a in policy.client_ids for a in audiences):
                raise TokenError("token is for another client (aud)")
            if nonce is not None and claims.get("nonce") != nonce:
                raise TokenError("nonce mismatch")
        elif claims.get("client_id") not in policy.client_ids:
            raise TokenError("token is for another client (client_id)")
