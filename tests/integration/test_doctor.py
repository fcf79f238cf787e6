"""`python -m gateway doctor` against real providers: the local Cognito, oidc-provider, Redis.

Each misconfiguration is made on the provider's side (or in the gateway's config) as an operator
would get it wrong, and doctor must name it on the right line and exit 1. The only stand-in server
is a proxy that shifts the `Date` header: no real provider can be given a wrong clock on demand.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.fixtures.idp import CALLBACK, CONFIDENTIAL_SECRET, POOL_ID, SIGNED_OUT, IdpFactory, RunningIdp, default_idp_config
from tests.fixtures.servers import free_port, start_runner

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = SIGNED_OUT.rstrip("/")  # the test pool registers PUBLIC_URL/oauth2/callback and PUBLIC_URL/
SESSION_SECRET = secrets.token_urlsafe(32)  # made here: a secret written in the repository is refused beyond loopback
CHECKS = ("discovery", "jwks", "client_id", "callback", "secret", "sign-out", "clock")


@dataclass
class Doctor:
    returncode: int
    stdout: str
    stderr: str

    def line(self, check: str) -> str:
        """The finding about `check` (exactly one)."""
        found = [line for line in self.stdout.splitlines() if line[5:].startswith(f"{check}:")]
        assert len(found) == 1, self.stdout
        return found[0]

    def verdicts(self) -> dict[str, str]:
        return {line[5:].split(":", 1)[0]: line[:5].strip() for line in self.stdout.splitlines()[:-1]}


async def run_doctor(tmp_path: Path, provider: dict[str, Any], public_url: str = PUBLIC_URL, **extra: Any) -> Doctor:
    config = {
        "listen": "127.0.0.1:8080", "public_url": public_url, "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"timeout": "3s", **provider}, "session": {"secrets": [SESSION_SECRET]}, **extra,
    }  # fmt: skip
    path = tmp_path / f"gateway-{secrets.token_hex(4)}.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "gateway", "doctor", "--config", str(path)]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    for secret in (SESSION_SECRET, provider.get("client_secret") or SESSION_SECRET):
        assert secret not in done.stdout + done.stderr  # never a secret, whatever the finding
    assert "Traceback" not in done.stderr, done.stderr
    return Doctor(done.returncode, done.stdout, done.stderr)


def confidential(idp: RunningIdp, **overrides: Any) -> dict[str, Any]:
    return {"issuer": idp.issuer, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET, **overrides}


async def test_a_right_setup_passes_every_check(idp: RunningIdp, tmp_path: Path) -> None:
    result = await run_doctor(tmp_path, confidential(idp))
    assert result.returncode == 0, result.stdout
    assert result.verdicts() == {check: "ok" for check in CHECKS}
    assert result.line("discovery") == f"ok   discovery: {idp.issuer}/.well-known/openid-configuration"
    assert "accepts the credentials of client test-confidential" in result.line("secret")
    assert f"sends browsers back to {SIGNED_OUT}" in result.line("sign-out")
    assert result.stdout.splitlines()[-1].endswith(": OK")


async def test_a_public_client_is_said_to_be_one(idp: RunningIdp, tmp_path: Path) -> None:
    result = await run_doctor(tmp_path, {"issuer": idp.issuer, "client_id": "test-public"})
    assert result.returncode == 0, result.stdout
    assert result.line("secret").startswith("ok   secret: none set: client test-public is a public client")


@pytest.mark.parametrize(
    ("setup", "check", "expected"),
    [
        pytest.param({"public_url": "http://127.0.0.1:8081"}, "callback",
                     "FAIL callback: the provider refuses redirect_uri http://127.0.0.1:8081/oauth2/callback for client "
                     "test-confidential (redirect_mismatch) — add it to the app client's callback URLs", id="callback-not-registered"),
        pytest.param({"client_secret": "not-the-secret-of-this-client-000"}, "secret",
                     "FAIL secret: the token endpoint refuses the credentials of client test-confidential (invalid_client) "
                     "— check provider.client_secret", id="wrong-secret"),
        pytest.param({"client_secret": None}, "secret",
                     "FAIL secret: the token endpoint refuses client test-confidential without a secret (invalid_client) "
                     "— it is a confidential client: set provider.client_secret", id="secret-missing"),
        pytest.param({"client_id": "no-such-client"}, "client_id",
                     "FAIL client_id: the provider does not know client no-such-client (invalid_request) "
                     "— check provider.client_id (is it an app client of this provider?)", id="unknown-client"),
    ],
)  # fmt: skip
async def test_each_misconfiguration_fails_on_its_line(
    idp: RunningIdp, tmp_path: Path, setup: dict[str, Any], check: str, expected: str
) -> None:
    setup = dict(setup)
    public_url = setup.pop("public_url", PUBLIC_URL)
    result = await run_doctor(tmp_path, confidential(idp, **setup), public_url=public_url)
    assert result.returncode == 1
    assert result.line(check) == expected
    assert result.line("discovery").startswith("ok") and result.line("jwks").startswith("ok")
    assert result.stdout.splitlines()[-1].endswith(("1 problem", "2 problems"))


async def test_an_unknown_client_is_one_finding_not_three(idp: RunningIdp, tmp_path: Path) -> None:
    result = await run_doctor(tmp_path, confidential(idp, client_id="no-such-client"))
    verdicts = result.verdicts()
    assert (verdicts["client_id"], verdicts["callback"], verdicts["secret"], verdicts["sign-out"]) == ("FAIL", "skip", "skip", "skip")


async def test_a_sign_out_url_not_registered_fails(idp_factory: IdpFactory, tmp_path: Path) -> None:
    pool = default_idp_config()
    pool["clients"][1]["logout_urls"] = ["http://127.0.0.1:8080/signed-out"]  # the gateway returns to PUBLIC_URL/
    idp = await idp_factory(pool)
    result = await run_doctor(tmp_path, confidential(idp))
    assert result.returncode == 1 and result.line("callback").startswith("ok")
    assert result.line("sign-out") == (
        f"FAIL sign-out: the provider does not send browsers back to {SIGNED_OUT} for client test-confidential "
        "(redirect_mismatch) — add it to the app client's sign-out URLs"
    )


async def test_a_provider_that_is_down_fails_fast(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}/{POOL_ID}"  # nothing listens there
    started = time.monotonic()
    result = await run_doctor(tmp_path, {"issuer": issuer, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET})
    assert result.returncode == 1 and time.monotonic() - started < 10
    assert result.line("discovery").startswith(f"FAIL discovery: cannot reach {issuer}/.well-known/openid-configuration")
    assert {check: result.verdicts()[check] for check in ("jwks", "client_id", "callback", "secret", "sign-out")} == dict.fromkeys(
        ("jwks", "client_id", "callback", "secret", "sign-out"), "skip"
    )


# --- the clock ------------------------------------------------------------------------------------------


def skewed_proxy(target: Callable[[], str], skew: float) -> web.Application:
    """Forwards everything to the local Cognito, and answers with a Date `skew` seconds off."""
    hop_by_hop = {"date", "content-length", "transfer-encoding", "content-encoding", "connection", "server"}

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with aiohttp.ClientSession(auto_decompress=False) as http, http.request(
            request.method, target() + request.path_qs, headers=headers, data=await request.read(), allow_redirects=False
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in hop_by_hop}
        kept["Date"] = email.utils.formatdate(time.time() + skew, usegmt=True)
        return web.Response(status=answer.status, headers=kept, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@pytest.fixture
async def idp_with_clock(idp_factory: IdpFactory) -> AsyncIterator[Callable[[float], Awaitable[str]]]:
    """`await idp_with_clock(skew)`: the issuer of a local Cognito whose every answer says its clock is `skew` s off."""
    runners: list[web.AppRunner] = []

    async def start(skew: float) -> str:
        target: list[str] = []
        runner, url = await start_runner(skewed_proxy(lambda: target[0], skew))
        runners.append(runner)
        idp = await idp_factory(issuer=f"{url}/{POOL_ID}")  # its Hosted UI URLs point at the proxy too
        target.append(idp.url)
        return idp.issuer

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_clock_beyond_the_leeway_fails(idp_with_clock: Callable[[float], Awaitable[str]], tmp_path: Path) -> None:
    issuer = await idp_with_clock(30.0)
    result = await run_doctor(tmp_path, {"issuer": issuer, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET})
    assert result.returncode == 1
    line = result.line("clock")
    # A Date header has whole seconds, and the request takes a moment: 30 s reads as 29-31 s.
    skew = re.match(r"FAIL clock: this machine is ([\d.]+) s behind 127\.0\.0\.1:", line)
    assert skew is not None and 29 <= float(skew[1]) <= 31 and "sync it (NTP)" in line, line
    assert {check for check, verdict in result.verdicts().items() if verdict != "ok"} == {"clock"}  # the proxy changes nothing else


async def test_a_clock_a_few_seconds_off_is_a_warning(idp_with_clock: Callable[[float], Awaitable[str]], tmp_path: Path) -> None:
    issuer = await idp_with_clock(-3.5)
    result = await run_doctor(tmp_path, {"issuer": issuer, "client_id": "test-confidential", "client_secret": CONFIDENTIAL_SECRET})
    assert result.returncode == 0, result.stdout
    assert result.line("clock").startswith("warn clock: this machine is ") and " s ahead of 127.0.0.1:" in result.line("clock")


# --- a generic OpenID provider, and Redis --------------------------------------------------------------


async def test_oidc_provider_right_and_wrong_secret(oidc_provider_factory: Any, tmp_path: Path) -> None:
    client_secret = secrets.token_urlsafe(32)
    op = oidc_provider_factory([{
        "client_id": "gateway", "client_secret": client_secret, "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": [CALLBACK], "post_logout_redirect_uris": [SIGNED_OUT],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
    }])  # fmt: skip
    provider = {"issuer": op.issuer, "client_id": "gateway", "client_secret": client_secret}
    right, wrong, elsewhere = await asyncio.gather(
        run_doctor(tmp_path, provider),
        run_doctor(tmp_path, {**provider, "client_secret": secrets.token_urlsafe(32)}),
        run_doctor(tmp_path, provider, public_url="http://127.0.0.1:8081"),
    )
    assert right.returncode == 0 and right.verdicts() == {check: "ok" for check in CHECKS}, right.stdout
    assert right.line("jwks").startswith("ok   jwks: 1 signing key (RS256)")
    assert wrong.returncode == 1 and wrong.line("secret").startswith("FAIL secret: the token endpoint refuses the credentials of client gateway (invalid_client)")
    assert elsewhere.returncode == 1 and "(invalid_redirect_uri)" in elsewhere.line("callback")
    assert elsewhere.line("sign-out").startswith("FAIL sign-out: the provider does not send browsers back to http://127.0.0.1:8081/")


async def test_redis_answers_or_not(idp: RunningIdp, redis_server: Any, tmp_path: Path) -> None:
    dead = f"redis://:{SESSION_SECRET}@127.0.0.1:{free_port()}/0"  # a password in the URL is never shown either
    up, down = await asyncio.gather(
        run_doctor(tmp_path, confidential(idp), session={"store": "redis", "redis_url": redis_server.url, "secrets": [SESSION_SECRET]}),
        run_doctor(tmp_path, confidential(idp), session={"store": "redis", "redis_url": dead, "secrets": [SESSION_SECRET]}),
    )
    assert up.returncode == 0 and up.line("redis") == f"ok   redis: {redis_server.url} answers PING"
    assert down.returncode == 1 and down.line("redis").startswith("FAIL redis: redis://***@127.0.0.1:")
