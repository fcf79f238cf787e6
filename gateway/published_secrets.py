"""Session secrets anyone can read in this repository, which must never protect a reachable gateway.

Whoever knows the session secret can seal a session with any identity and groups. The demo
config falls back to a secret written in it (so `make demo` needs no setup), the Docker image
carries that file, and the tests use fixed secrets: a gateway listening beyond loopback refuses
to start with any of them (config.py). Digests, so that this file is not one more copy;
tests/unit/test_published_secrets.py fails when a new literal secret appears in the repository
without being listed here.
"""

from __future__ import annotations

import hashlib

PUBLISHED_SECRET_DIGESTS = frozenset(
    {
        "32d6ec7ddf692ea4210c2e946806705548fff43cd048ff423aed95e5c0e854a3",  # config/demo.yaml's fallback
        "4175de014072eb01ddca4d1736b9aa3cc88d0121b789781386f2c2b457b13a2b",  # tests/fixtures/stack.py
        "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9",  # tests/integration/test_cli.py
        "c62e4615bd39e222572f3a1bf7c2132ea1e65b17ec805047bd6b2842c593493f",  # tests/unit/test_config.py
        "c5492ac0e3a692d1654a2e837687bf016fb302be98220b48e1378061ac99026d",  # tests/interop/test_oidc_provider.py (a client secret)
        "6143e398f5616d463d90fc6bdb82a66810131aa47ba3dd8b2dd377fd2a8b39c1",  # tests/unit/**/test_fuzz_*.py
    }
)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me")


def is_published_secret(secret: str) -> bool:
    """A secret from this repository, or one still saying it is a placeholder."""
    if any(word in secret.lower() for word in _PLACEHOLDER_WORDS):
        return True
    return hashlib.sha256(secret.encode()).hexdigest() in PUBLISHED_SECRET_DIGESTS
