"""AWS's own verifier (npm aws-jwt-verify) accepts the local Cognito's tokens.

Needs node and `npm ci` in tests/node; skips with the reason otherwise, except
under CI=true, where a missing tool is a failure.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.fixtures.tools import NODE_DIR, require_node_package

from tests.fixtures.idp import CALLBACK, HostedUIBrowser, RunningIdp, callback_params



def _require_node() -> str:
    return require_node_package("aws-jwt-verify")


async def test_aws_jwt_verify_accepts_local_cognito_tokens(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    node = _require_node()
    code = callback_params(await hosted_ui.sign_in(idp.authorize_url(), "alice"))["code"]
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}
    async with aiohttp.ClientSession() as session, session.post(idp.token_url, data=data) as response:
        tokens = await response.json()
    id_token = tokens["id_token"]
    tampered = id_token[: id_token.rindex(".") + 1] + ("A" if id_token[-1] != "A" else "B") * 10
    payload = {
        "issuer": idp.issuer, "jwksUri": f"{idp.issuer}/.well-known/jwks.json", "clientId": "test-public",
        "idToken": id_token, "accessToken": tokens["access_token"], "groups": ["admins"], "tampered": tampered,
    }  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        node, "verify-cognito-tokens.mjs", cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(json.dumps(payload).encode()), timeout=30)
    assert process.returncode == 0, err.decode()
    results = json.loads(out)
    assert results["id"] == "ok" and results["access"] == "ok", results
    assert results["id_as_access"] == "CognitoJwtInvalidTokenUseError"
    assert results["wrong_client"] == "CognitoJwtInvalidClientIdError"
    assert results["tampered"] == "JwtInvalidSignatureError"
