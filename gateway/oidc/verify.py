"""Token verification with the rules of AWS's aws-jwt-verify and OpenID Connect Core 3.1.3.7.

Claims are trusted only after every check here passed; the session then keeps them, so a
signature is verified once per token, never once per request.

Required for every provider kind: a signature by a JWKS key with an allowed asymmetric `alg`,
`iss` exactly the issuer, a non-empty string `sub`, numeric `exp` (not past, small leeway) and
`iat` (not in the future); id tokens: `aud` naming our client (and `azp`, when present, our
client), `nonce` equal to ours at sign-in; access tokens (Cognito): `client_id` ours.

A token without `kid`: refused for `kind: cognito` (aws-jwt-verify requires it, and Cognito
always sends one); for `kind: oidc` accepted when the JWKS has exactly one key, which is then
the key (OpenID Connect Core 10.1 and the OpenID RP certification test
rp-id_token-kid-absent-single-jwks), refused when it has several.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from ..errors import TokenError
from .jwks import JwksCache, SigningKey
from .profile import COGNITO, ProviderProfile

# The key type each algorithm family needs: an RSA key with "ES256" (or the reverse) is refused
# before the signature is looked at.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class VerifyPolicy:
    issuer: str
    client_ids: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256",)
    leeway: float = 5.0  # seconds of clock skew tolerated on exp / iat / nbf
    profile: ProviderProfile = COGNITO  # whether token_use and kid are required


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"token has no numeric {name}")
    return float(value)


class TokenVerifier:
    def __init__(self, jwks: JwksCache, policy: VerifyPolicy) -> None:
        self.jwks = jwks
        self.policy = policy

    async def verify(self, token: str, token_use: str, nonce: str | None = None) -> dict[str, Any]:
        """Verified claims of an `id` or `access` token, or TokenError with a short reason."""
        policy = self.policy
        if not isinstance(token, str):
            raise TokenError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in policy.algorithms:
            raise TokenError(f"algorithm not allowed: {algorithm}")
        if "crit" in header:
            raise TokenError("token has critical header extensions")  # RFC 7515 4.1.11: none understood
        key = await self._key(header.get("kid"))
        if key.alg is not None and key.alg != algorithm:
            raise TokenError("key and token algorithms differ")
        if _KEY_TYPES.get(algorithm[:2]) != key.kty:
            raise TokenError("key type does not match the token algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                leeway=policy.leeway,
                # Claims are checked below, by us, with our reasons; PyJWT verifies the signature
                # and exp / iat / nbf.
                options={"require": ["exp", "iat"], "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError as exc:
            raise TokenError("token issued in the future" if "(iat)" in str(exc) else "token not valid yet (nbf)") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token has no {exc.claim}") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        if not isinstance(claims, dict):
            raise TokenError("malformed token")
        self._check_claims(claims, token_use, nonce)
        return claims

    async def _key(self, kid: Any) -> SigningKey:
        if isinstance(kid, str) and kid:
            return await self.jwks.key_for(kid)
        if kid is not None or self.policy.profile.token_use_required:
            raise TokenError("token has no kid")
        return await self.jwks.only_key()

    def _check_claims(self, claims: dict[str, Any], token_use: str, nonce: str | None) -> None:
        policy = self.policy
        issuer = claims.get("iss")
        if issuer is None:
            raise TokenError("token has no iss")
        if issuer != policy.issuer:
            raise TokenError("wrong issuer")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("token has no sub")
        _number(claims, "exp")
        if _number(claims, "iat") > time.time() + policy.leeway:
            raise TokenError("token issued in the future")
        if "token_use" in claims or policy.profile.token_use_required:
            if claims.get("token_use") != token_use:
                raise TokenError(f"not an {token_use} token")
        if token_use == "id":
            audience = claims.get("aud")
            if audience is None:
                raise TokenError("token has no aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if not any(isinstance(a, str) and a in policy.client_ids for a in audiences):
                raise TokenError("token is for another client (aud)")
            if "azp" in claims and claims["azp"] not in policy.client_ids:
                raise TokenError("token is for another client (azp)")
            if nonce is not None:
                if "nonce" not in claims:
                    raise TokenError("token has no nonce")
                if claims["nonce"] != nonce:
                    raise TokenError("nonce mismatch")
        elif claims.get("client_id") not in policy.client_ids:
            raise TokenError("token is for another client (client_id)")
