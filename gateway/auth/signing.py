"""The gateway's own ES256 signing keys and the two JWTs it signs for upstreams.

* `x-amzn-oidc-data`: the user's claims in exactly the format an AWS ALB
  (`authenticate-cognito`) sends, so apps written for an ALB verify it unchanged
  once their key URL points at `<gateway>/oauth2/keys/<kid>`.
* The signed assertion header: a short-lived JWT (iss, aud, sub, iat, exp + claims)
  that upstreams verify with the keys at `/.well-known/jwks.json`.

Keys are derived from the session secrets, so every worker and every instance that
shares the secrets signs with, and publishes, the same keys.

Usage::

    signer = GatewaySigner.from_secrets(config.session.secrets, signer_arn=None, region="eu-west-1")
    app[SIGNER] = signer
    add_key_routes(app, SIGNER)                      # GET /oauth2/keys/{kid}, GET /.well-known/jwks.json
    headers["x-amzn-oidc-data"] = signer.alb_data(claims, issuer, client_id, expires_at)
    headers["X-Gateway-Assertion"] = signer.assertion(claims, issuer=public_url, audience=upstream_url)
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import ALB_ARN_PATTERN
from ..ttl_cache import TtlCache
from ..errors import ConfigError

__all__ = ["GatewaySigner", "SIGNER", "add_key_routes"]

_HKDF_INFO = b"cognito-gateway/alb-signing"
# Order of the P-256 group (SEC 2): private scalars must lie in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_REUSE_MARGIN = 30  # seconds: a cached token is never handed out closer than this to its exp
_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public_pem: str
    jwk: dict[str, str]


def _derive_key(secret: str) -> ec.EllipticCurvePrivateKey:
    # 48 bytes (384 bits) reduced mod n-1 keeps the bias towards small scalars below 2^-128.
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=_HKDF_INFO).derive(secret.encode())
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _b64url(data: bytes) -> str:
    # Unpadded base64url (RFC 7515). The real ALB pads its signature with '=', which
    # strict JWT libraries reject; we deliberately do not copy that quirk.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _make_key(secret: str) -> _Key:
    private = _derive_key(secret)
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # AlbJwtVerifier only accepts a UUID as kid; derive it from the public key so it is stable.
    kid = str(uuid.UUID(bytes=hashlib.sha256(der).digest()[:16], version=4))
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    numbers = public.public_numbers()
    jwk = {
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big")),
    }  # fmt: skip
    return _Key(kid=kid, private=private, public_pem=pem.decode("ascii"), jwk=jwk)


def default_signer_arn(region: str, client_id: str) -> str:
    """ALB-shaped, with a fake account and an id from the client: stable across secret rotation (apps may pin it)."""
    lb_id = hashlib.sha256(client_id.encode()).hexdigest()[:16]
    return f"arn:aws:elasticloadbalancing:{region}:000000000000:loadbalancer/app/cognito-gateway/{lb_id}"


def _sign(key: _Key, header: dict[str, Any], payload: dict[str, Any]) -> str:
    compact = (",", ":")
    signing_input = f"{_b64url(json.dumps(header, separators=compact).encode())}." + _b64url(
        json.dumps(payload, separators=compact).encode()
    )
    der = key.private.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)  # JWS wants the raw r || s form, not DER
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _reuse_until(issued_at: float, expires_at: float) -> float:
    # Short-lived tokens keep half their life in reserve rather than the full margin.
    return expires_at - min(_REUSE_MARGIN, (expires_at - issued_at) / 2)


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).digest()


class GatewaySigner:
    """Signs ALB-style `x-amzn-oidc-data` and assertion JWTs; publishes the public keys."""

    def __init__(self, keys: list[_Key], signer_arn: str, clock: Callable[[], float] = time.time) -> None:
        self._signing = keys[0]
        self._by_kid = {key.kid: key for key in keys}
        self.signer_arn = signer_arn
        self._clock = clock
        self._cache: TtlCache[str] = TtlCache(_CACHE_SIZE, clock)

    @classmethod
    def from_secrets(
        cls,
        secrets: tuple[str, ...],
        signer_arn: str | None,
        region: str,
        *,
        client_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> GatewaySigner:
        """Derive keys from the session secrets: the first signs, all are published (rotation)."""
        if not secrets:
            raise ConfigError(["session.secrets: at least one secret is needed to derive the signing key"])
        keys = [_make_key(secret) for secret in dict.fromkeys(secrets)]
        arn = signer_arn if signer_arn is not None else default_signer_arn(region, client_id)
        if not ALB_ARN_PATTERN.match(arn):
            where = "signer ARN" if signer_arn is not None else f"region {region!r} (for the default signer ARN)"
            raise ConfigError([f"{where}: not a load balancer ARN that AWS's AlbJwtVerifier accepts: {arn}"])
        return cls(keys, arn, clock)

    @property
    def kid(self) -> str:
        """The kid of the key that signs now."""
        return self._signing.kid

    def alb_data(self, claims: dict[str, Any], issuer: str, client_id: str, expires_at: int) -> str:
        """The `x-amzn-oidc-data` JWT: ALB header fields, payload = claims + exp + iss."""
        digest = _digest("alb", claims, issuer, client_id, expires_at)
        token = self._cache.get(digest)
        if token is None:
            header = {
                "typ": "JWT", "kid": self._signing.kid, "alg": "ES256", "iss": issuer,
                "client": client_id, "signer": self.signer_arn, "exp": expires_at,
            }  # fmt: skip
            # Ours come last so claims from the IdP can never override exp or iss.
            token = _sign(self._signing, header, {**claims, "exp": expires_at, "iss": issuer})
            self._cache.put(digest, token, _reuse_until(self._clock(), expires_at))
        return token

    def assertion(self, claims: dict[str, Any], issuer: str, audience: str, lifetime: int = 60) -> str:
        """A short-lived JWT for upstreams: iss, aud, iat, exp + claims (incl. sub); see jwks()."""
        digest = _digest("assertion", claims, issuer, audience, lifetime)
        token = self._cache.get(digest)
        if token is None:
            now = int(self._clock())
            header = {"typ": "JWT", "alg": "ES256", "kid": self._signing.kid}
            payload = {**claims, "iss": issuer, "aud": audience, "iat": now, "exp": now + lifetime}
            token = _sign(self._signing, header, payload)
            self._cache.put(digest, token, _reuse_until(now, now + lifetime))
        return token

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every published key (signing key first) as an EC JWK."""
        return {"keys": [dict(key.jwk) for key in self._by_kid.values()]}

    def public_pem(self, kid: str) -> str | None:
        """The PEM public key for `kid`, as the ALB's regional key endpoint serves it; None if unknown."""
        key = self._by_kid.get(kid)
        return key.public_pem if key else None


SIGNER = web.AppKey("gateway_signer", GatewaySigner)


def add_key_routes(
    app: web.Application, signer_key: web.AppKey[GatewaySigner] = SIGNER, prefix: str = "/oauth2"
) -> None:
    """Serve `GET {prefix}/keys/{kid}` (PEM, like the ALB) and `GET /.well-known/jwks.json`."""

    async def pem_key(request: web.Request) -> web.Response:
        pem = request.app[signer_key].public_pem(request.match_info["kid"])
        if pem is None:
            raise web.HTTPNotFound(text="unknown key id\n")
        # A kid names one key forever (it is a hash of it), so caches may keep it long.
        return web.Response(text=pem, content_type="text/plain", headers={"Cache-Control": "public, max-age=3600"})

    async def jwks(request: web.Request) -> web.Response:
        # Shorter than the PEM: the set changes when the session secrets rotate.
        headers = {"Cache-Control": "public, max-age=300"}
        return web.json_response(request.app[signer_key].jwks(), headers=headers)

    app.router.add_get(f"{prefix.rstrip('/')}/keys/{{kid}}", pem_key)
    app.router.add_get("/.well-known/jwks.json", jwks)
