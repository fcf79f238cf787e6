"""RSA signing keys of the local Cognito and their JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.errors import ConfigError

from .config import SigningKeyConfig


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    public_jwk: dict[str, Any]


def generate_key() -> SigningKey:
    return _from_private(rsa.generate_private_key(public_exponent=65537, key_size=2048), None)


def load_key(config: SigningKeyConfig, index: int) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(config.private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"signing_keys[{index}]: not an unencrypted PEM private key"]) from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ConfigError([f"signing_keys[{index}]: must be an RSA key of 2048 bits or more (RS256)"])
    return _from_private(key, config.kid)


def _from_private(key: rsa.RSAPrivateKey, kid: str | None) -> SigningKey:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    # Cognito's kids are opaque base64 strings; an RFC 7638 thumbprint looks alike and is stable.
    thumbprint_input = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(thumbprint_input.encode()).digest()
    kid = kid or base64.b64encode(digest).decode()
    public = {"alg": "RS256", "e": jwk["e"], "kid": kid, "kty": "RSA", "n": jwk["n"], "use": "sig"}
    return SigningKey(kid=kid, private_key=key, public_jwk=public)


class KeyRing:
    """The key that signs now, plus older keys still published so their tokens verify."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = list(keys)

    @classmethod
    def from_config(cls, configs: tuple[SigningKeyConfig, ...], generated_count: int) -> KeyRing:
        if configs:
            return cls([load_key(c, i) for i, c in enumerate(configs)])
        return cls([generate_key() for _ in range(generated_count)])

    @property
    def current(self) -> SigningKey:
        return self._keys[0]

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self._keys]}

    def rotate(self, keep_old: bool = True) -> SigningKey:
        """Sign with a fresh key from now on; keep publishing the old ones unless told not to."""
        new = generate_key()
        self._keys = [new, *self._keys] if keep_old else [new]
        return new
