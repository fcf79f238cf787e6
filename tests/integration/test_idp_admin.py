"""Test hooks under /_admin, persistence to a JSON file, and the `idp` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from gateway.idp.cli import main
from tests.fixtures.idp import CALLBACK, HostedUIBrowser, RunningIdp, callback_params

ROOT = Path(__file__).resolve().parents[2]


async def token_call(idp: RunningIdp, data: dict[str, str], timeout: float = 5) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(idp.token_url, data=data) as response:
            return response.status, await response.json()


async def sign_in_tokens(idp: RunningIdp, browser: HostedUIBrowser) -> dict[str, Any]:
    code = callback_params(await browser.sign_in(idp.authorize_url(), "alice"))["code"]
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": code, "redirect_uri": CALLBACK}
    status, body = await token_call(idp, data)
    assert status == 200, body
    return body


async def test_admin_api_is_off_unless_enabled(idp_factory: Any) -> None:
    idp = await idp_factory(admin_api=False)
    async with aiohttp.ClientSession() as session:
        for method, path in [("GET", "outbox"), ("GET", "stats"), ("POST", "keys/rotate"), ("POST", "faults")]:
            async with session.request(method, f"{idp.url}/_admin/{path}") as response:
                assert response.status == 404, path


async def test_stats_count_token_calls_by_grant_type(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await sign_in_tokens(idp, hosted_ui)
    refresh = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    await token_call(idp, refresh)
    await token_call(idp, refresh)
    await token_call(idp, {"grant_type": "bogus", "client_id": "test-public"})
    async with aiohttp.ClientSession() as session:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with session.get(f"{idp.url}/oauth2/userInfo", headers=bearer) as response:
            assert response.status == 200
    stats = await idp.admin("GET", "stats")
    assert stats == {"token_requests": {"authorization_code": 1, "refresh_token": 2, "bogus": 1}, "userinfo_requests": 1}
    await idp.admin("POST", "stats/reset")
    assert await idp.admin("GET", "stats") == {"token_requests": {}, "userinfo_requests": 0}


async def test_fault_error_then_recovery(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await sign_in_tokens(idp, hosted_ui)
    refresh = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    await idp.admin("POST", "faults", {"mode": "error", "status": 503, "count": 2})
    assert await token_call(idp, refresh) == (503, {"error": "server_error"})
    assert (await token_call(idp, refresh))[0] == 503
    assert (await token_call(idp, refresh))[0] == 200  # count exhausted
    await idp.admin("POST", "faults", {"mode": "error", "status": 500})
    assert (await token_call(idp, refresh))[0] == 500
    await idp.admin("DELETE", "faults")
    assert (await token_call(idp, refresh))[0] == 200


async def test_fault_hang_delays_the_token_endpoint(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    tokens = await sign_in_tokens(idp, hosted_ui)
    refresh = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": tokens["refresh_token"]}
    await idp.admin("POST", "faults", {"mode": "hang", "seconds": 5, "count": 1})
    started = time.monotonic()
    try:
        await token_call(idp, refresh, timeout=0.3)
        raise AssertionError("the token endpoint answered during a hang")
    except asyncio.TimeoutError:
        assert 0.25 < time.monotonic() - started < 1.5
    assert (await token_call(idp, refresh))[0] == 200  # one hang only


async def test_bad_fault_requests_are_400(idp: RunningIdp) -> None:
    async with aiohttp.ClientSession() as session:
        for body in [{"mode": "explode"}, {"mode": "error", "status": 404}, {"mode": "hang", "seconds": -1}, "[1]"]:
            kwargs = {"data": body} if isinstance(body, str) else {"json": body}
            async with session.post(f"{idp.url}/_admin/faults", **kwargs) as response:
                assert response.status == 400 and "error" in await response.json(), body


async def test_rotate_keys_signs_with_new_kid_and_keeps_old_published(idp: RunningIdp, hosted_ui: HostedUIBrowser) -> None:
    before = jwt.get_unverified_header((await sign_in_tokens(idp, hosted_ui))["access_token"])["kid"]
    rotated = await idp.admin("POST", "keys/rotate")
    assert rotated["kid"] != before and rotated["published"] == [rotated["kid"], before]
    after = jwt.get_unverified_header((await sign_in_tokens(idp, hosted_ui))["access_token"])["kid"]
    assert after == rotated["kid"]
    alone = await idp.admin("POST", "keys/rotate", {"keep_old": False})
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{idp.issuer}/.well-known/jwks.json") as response:
            assert [k["kid"] for k in (await response.json())["keys"]] == [alone["kid"]]


async def test_two_generated_keys_are_both_published(idp_factory: Any) -> None:
    idp = await idp_factory(signing_keys=2)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{idp.issuer}/.well-known/jwks.json") as response:
            kids = [k["kid"] for k in (await response.json())["keys"]]
    assert len(set(kids)) == 2


async def test_signed_up_users_and_refresh_tokens_survive_a_restart(
    idp_factory: Any, hosted_ui: HostedUIBrowser, tmp_path: Path
) -> None:
    state_file = tmp_path / "idp-state.json"
    idp = await idp_factory(persistence_file=str(state_file))
    signup_url = f"{idp.url}/signup?" + idp.authorize_url().split("?", 1)[1]
    await hosted_ui.follow(signup_url)
    await hosted_ui.submit(hosted_ui.form(signup_url), username="frank", email="f@example.com", password="Passw0rd!!")
    code = (await idp.outbox("frank"))[0]["code"]
    status, location = await hosted_ui.submit(hosted_ui.form(idp.url), code=code)
    data = {"grant_type": "authorization_code", "client_id": "test-public", "code": callback_params(location)["code"],
            "redirect_uri": CALLBACK}  # fmt: skip
    refresh_token = (await token_call(idp, data))[1]["refresh_token"]
    saved = state_file.read_text()
    assert "Passw0rd!!" not in saved and refresh_token not in saved  # hashes only
    assert json.loads(saved)["users"][0]["username"] == "frank"

    again = await idp_factory(persistence_file=str(state_file))
    refresh = {"grant_type": "refresh_token", "client_id": "test-public", "refresh_token": refresh_token}
    assert (await token_call(again, refresh))[0] == 200
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        location = await HostedUIBrowser(session).sign_in(again.authorize_url(), "frank", "Passw0rd!!")
    assert "code" in callback_params(location)


def test_cli_reports_every_config_problem(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "idp.yaml"
    bad.write_text("user_pool_id: nope\nclients: [{client_id: x, callback_urls: [1]}]\nsurprise: 1\n")
    assert main(["--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "user_pool_id: must look like" in err and "clients[0].callback_urls: must be a list of URLs" in err
    assert "surprise: unknown key" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_cli_serves_the_demo_pool(tmp_path: Path) -> None:
    port = _free_port()
    code = "import sys; from gateway.idp.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(ROOT / "config/idp.yaml"), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/us-east-1_LocalPool/.well-known/openid-configuration"
        document = None
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(url) as response:
                        document = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        assert document and document["issuer"] == f"http://127.0.0.1:{port}/us-east-1_LocalPool"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert "Local Cognito us-east-1_LocalPool" in out.decode()
    assert "Passw0rd" not in out.decode() + err.decode()
