"""AWS's own ALB verifier (npm aws-jwt-verify, AlbJwtVerifier) accepts the gateway's x-amzn-oidc-data.

Needs node and `npm ci` in tests/node; skips with the reason otherwise, except
under CI=true, where a missing tool is a failure.
"""

from __future__ import annotations

import asyncio
import json
import time


from tests.fixtures.tools import NODE_DIR, require_node_package
from aiohttp import web

from gateway.auth.signing import SIGNER, GatewaySigner, add_key_routes

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
CLAIMS = {"sub": "8a4b6c1e-0000-4000-8000-000000000001", "email": "alice@example.com", "username": "alice"}
OTHER_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/someone-else/50dc6c495c0c9188"


def _require_node() -> str:
    return require_node_package("aws-jwt-verify")


async def _run_verifier(node: str, payload: dict) -> dict[str, str]:
    process = await asyncio.create_subprocess_exec(
        node, "verify-alb-data.mjs", cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(json.dumps(payload).encode()), timeout=30)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def _tampered(token: str) -> str:
    head, _, signature = token.rpartition(".")
    return f"{head}.{('A' if signature[0] != 'A' else 'B')}{signature[1:]}"


async def test_alb_jwt_verifier_accepts_gateway_alb_data() -> None:
    node = _require_node()
    # Signs with the new secret; the old one's key stays published (rotation).
    signer = GatewaySigner.from_secrets(("n" * 40, "o" * 40), None, "eu-west-1")
    # Pins the ARN, as a deployment does whose apps check it: the default ARN follows the first secret.
    old_signer = GatewaySigner.from_secrets(("o" * 40,), signer.signer_arn, "eu-west-1")
    foreign = GatewaySigner.from_secrets(("n" * 40,), OTHER_ARN, "eu-west-1")  # same key, other ALB
    app = web.Application()
    app[SIGNER] = signer
    add_key_routes(app, SIGNER)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    expires_at = int(time.time()) + 120
    token = signer.alb_data(CLAIMS, ISSUER, "client-1", expires_at)
    tokens = {
        "valid": token,
        "before_rotation": old_signer.alb_data(CLAIMS, ISSUER, "client-1", expires_at),
        "other_signer": foreign.alb_data(CLAIMS, ISSUER, "client-1", expires_at),
        "other_client": signer.alb_data(CLAIMS, ISSUER, "client-2", expires_at),
        "expired": signer.alb_data(CLAIMS, ISSUER, "client-1", int(time.time()) - 60),
        "tampered": _tampered(token),
    }
    payload = {
        "keysUri": f"http://{host}:{port}/oauth2/keys", "issuer": ISSUER, "clientId": "client-1",
        "albArn": signer.signer_arn, "tokens": tokens,
    }  # fmt: skip
    try:
        results = await _run_verifier(node, payload)
    finally:
        await runner.cleanup()
    assert results == {
        "valid": "ok", "before_rotation": "ok",
        "other_signer": "AlbJwtInvalidSignerError", "other_client": "AlbJwtInvalidClientIdError",
        "expired": "JwtExpiredError", "tampered": "JwtInvalidSignatureError",
    }  # fmt: skip
