"""AES-256-GCM sealing with key rotation: the first secret seals, every secret opens."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12


def _derive(secret: str, purpose: str) -> bytes:
    # Separate keys per purpose: a login-state cookie can never be replayed as a session.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"cognito-gateway/{purpose}".encode())
    return hkdf.derive(secret.encode())


class SecretBox:
    def __init__(self, secrets: tuple[str, ...], purpose: str) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        keys = [_derive(secret, purpose) for secret in secrets]
        self._sealing_key = keys[0]
        self._by_id = {hashlib.sha256(key).digest()[:_KEY_ID_BYTES]: AESGCM(key) for key in reversed(keys)}
        self._sealing_id = hashlib.sha256(keys[0]).digest()[:_KEY_ID_BYTES]

    def seal(self, plaintext: bytes, context: bytes) -> str:
        """Compress, encrypt and authenticate; `context` (e.g. the cookie name) must match on open."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._sealing_key).encrypt(nonce, zlib.compress(plaintext, 6), _VERSION + context)
        raw = _VERSION + self._sealing_id + nonce + sealed
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def open(self, token: str, context: bytes) -> bytes | None:
        """The plaintext, or None when the token is tampered, truncated or sealed with an unknown key."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        # One spelling per sealed value: the decoder skips characters outside the alphabet and ignores
        # the last character's spare bits, so `token + "!"` or a changed last letter would still open.
        if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode():
            return None
        header = 1 + _KEY_ID_BYTES + _NONCE_BYTES
        if len(raw) <= header or raw[:1] != _VERSION:
            return None
        aead = self._by_id.get(raw[1 : 1 + _KEY_ID_BYTES])
        if aead is None:
            return None
        try:
            compressed = aead.decrypt(raw[1 + _KEY_ID_BYTES : header], raw[header:], _VERSION + context)
            return zlib.decompress(compressed)
        except (InvalidTag, zlib.error):
            return None
