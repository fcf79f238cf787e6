"""`python -m gateway sessions list|revoke` against a fleet: two gateway processes sharing a real
Redis, the local Cognito, and the command run as an operator runs it (a subprocess).

Revoking a user must end each of their sessions on every instance within a second (the record is
pushed by pub/sub, no instance polls), leave other users alone, revoke the refresh tokens at the
provider, and let the user sign in again afterwards. Both ways a fleet shares ends: sessions in
Redis (`store: redis`), and cookie sessions with a `redis_url`.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
import yaml

from gateway.session.crypto import SecretBox
from gateway.session.user_index import UserIndex

from tests.fixtures.browser import Browser
from tests.fixtures.redis import RedisServer
from tests.fixtures.servers import free_port
from tests.integration.test_fleet import JSON, new_browser_session, until_ready, whoami

ROOT = Path(__file__).resolve().parents[2]
SECRET = secrets.token_urlsafe(32)  # made here: a secret written in the repository is refused beyond loopback
MAX_LIFETIME = 3600
STORES = {
    "redis": lambda url: {"store": "redis", "redis_url": url},
    "cookie+redis_url": lambda url: {"store": "cookie", "redis_url": url},
}


@dataclass
class Cli:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def sessions(config: Path, action: str, user: str) -> Cli:
    """`python -m gateway sessions ACTION --config CONFIG --user USER`, while this loop keeps serving the local Cognito."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "sessions", action, "--config", str(config), "--user", user,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Cli(process.returncode, stdout.decode(), stderr.decode())


def clients(*gateways: str) -> list[dict[str, Any]]:
    return [{
        "client_id": "gw-public",
        "callback_urls": [f"{url}/oauth2/callback" for url in gateways],
        "logout_urls": [f"{url}/" for url in gateways],
        "scopes": ["openid", "email", "profile"],
    }]  # fmt: skip


def config_for(url: str, idp: Any, upstream: str, session: dict[str, Any]) -> dict[str, Any]:
    return {
        "public_url": url,
        "upstreams": [{"path": "/", "url": upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-public", "timeout": "3s"},
        "session": {"secrets": [SECRET], "max_lifetime": f"{MAX_LIFETIME}s", **session},
    }


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / f"sessions-{secrets.token_hex(4)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def status(browser: Browser, url: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=browser.session.cookie_jar) as http:
        return (await whoami(http, url))[0]


async def sub_of(browser: Browser, url: str) -> str:
    async with browser.session.get(url + "/oauth2/userinfo", headers=JSON) as response:
        assert response.status == 200
        return str((await response.json())["sub"])


async def refresh_answer(idp: Any, refresh_token: str) -> tuple[int, str]:
    """What the local Cognito says to this refresh token, asked directly (not through a gateway)."""
    form = {"grant_type": "refresh_token", "client_id": "gw-public", "refresh_token": refresh_token}
    async with aiohttp.ClientSession() as http:
        async with http.post(idp.token_url, data=form) as response:
            body = await response.json()
            return response.status, str(body.get("error", ""))


@pytest.mark.parametrize("store", list(STORES))
async def test_revoking_a_user_ends_their_sessions_on_every_instance_and_at_the_provider(
    store: str, idp_factory, gateway_process, demo_upstream, redis_server: RedisServer, tmp_path: Path
):
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    idp = await idp_factory(clients=clients(*urls))
    configs = [config_for(url, idp, demo_upstream, STORES[store](redis_server.url)) for url in urls]
    # Started from another thread: this loop keeps serving the local Cognito they load their keys from.
    for config, port in zip(configs, ports):
        await asyncio.to_thread(gateway_process, config, port=port)
    for url in urls:
        await until_ready(url)
    config_file = write(tmp_path, configs[0])

    async with AsyncExitStack() as closing:
        alice_a, alice_b, bob, alice_again = [Browser(await closing.enter_async_context(new_browser_session())) for _ in range(4)]
        await alice_a.sign_in(urls[0] + "/")  # two browsers of alice's, one through each instance
        await alice_b.sign_in(urls[1] + "/")
        await bob.sign_in(urls[0] + "/", username="bob")
        for browser in (alice_a, alice_b, bob):
            assert [await status(browser, url) for url in urls] == [200, 200]
        alice, bobs_sub = await sub_of(alice_a, urls[0]), await sub_of(bob, urls[1])
        index = UserIndex(redis.from_url(redis_server.url), SecretBox((SECRET,), "index"), MAX_LIFETIME)
        refresh_tokens = [entry.refresh_token for entry in await index.sessions(alice)]
        await index.client.aclose()
        assert len(refresh_tokens) == 2 and all(refresh_tokens)
        never_shown = [*refresh_tokens, SECRET, *alice_a.cookies().values(), *alice_b.cookies().values()]

        listed = await sessions(config_file, "list", "alice")
        assert listed.returncode == 0, listed.output
        lines = listed.stdout.splitlines()
        assert len(lines) == 3 and lines[-1] == f"alice (sub {alice}): 2 sessions", listed.stdout
        assert all(line.startswith("session ") and "user alice" in line and line.endswith("refresh token: yes  active") for line in lines[:2])
        assert bobs_sub not in listed.output and "bob" not in listed.output
        assert not [value for value in never_shown if value in listed.output]
        assert (await sessions(config_file, "list", alice)).stdout == listed.stdout.replace(f"alice (sub {alice})", alice)

        revoked = await sessions(config_file, "revoke", "alice")
        done_at = time.monotonic()
        assert revoked.returncode == 0, revoked.output
        assert revoked.stdout == (
            f"alice (sub {alice}): 2 sessions ended on every instance; 2 refresh tokens revoked at the provider\n"
        ), revoked.output
        assert revoked.stderr == "" and not [value for value in never_shown if value in revoked.output]

        # Both of alice's browsers, on both instances, within a second of the command; bob's stays.
        pending = {(name, url) for name in ("a", "b") for url in urls}
        browsers = {"a": alice_a, "b": alice_b}
        while pending:
            for name, url in list(pending):
                if await status(browsers[name], url) == 401:
                    pending.discard((name, url))
            assert time.monotonic() - done_at < 1.0 or not pending, f"still served after 1 s: {sorted(pending)}"
            await asyncio.sleep(0.02)
        for browser in browsers.values():
            for url in urls:  # a browser's navigation: sent to sign in (not followed: the Hosted UI would sign alice in again)
                async with browser.session.get(url + "/", allow_redirects=False) as response:
                    assert response.status == 302 and "/oauth2/start" in response.headers["Location"]
        assert [await status(bob, url) for url in urls] == [200, 200]

        for token in refresh_tokens:
            assert await refresh_answer(idp, token) == (400, "invalid_grant")
        after = await sessions(config_file, "list", "alice")
        assert (after.returncode, after.stdout) == (0, f"alice (sub {alice}): no sessions\n")

        # A session begun after the revocation is not ended by it (started_at is sealed in whole
        # seconds: one begun within the revocation's own second is ended too, on the safe side).
        await asyncio.sleep(max(0.0, 1.05 - (time.time() % 1.0)))
        await alice_again.sign_in(urls[1] + "/")
        assert [await status(alice_again, url) for url in urls] == [200, 200]
        again = await sessions(config_file, "list", "alice")
        assert again.stdout.splitlines()[-1] == f"alice (sub {alice}): 1 session"


async def test_revoking_an_unknown_name_records_it_as_a_sub_and_says_how_names_are_found(redis_server: RedisServer, tmp_path: Path):
    config = write(tmp_path, {
        "public_url": "http://127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "http://127.0.0.1:1/pool", "client_id": "gw-public"},
        "session": {"secrets": [SECRET], "store": "redis", "redis_url": redis_server.url},
    })  # fmt: skip
    revoked = await sessions(config, "revoke", "carol")
    assert revoked.returncode == 0, revoked.output
    assert revoked.stdout.splitlines() == [
        "carol: no indexed sessions; any session of carol begun before now is ended on every instance",
        "(a username is known only from sessions signed in while Redis was configured: if carol is a username, give its sub)",
    ]
    assert await redis_server.client.zscore("gw:ended", "u:carol") is not None
    listed = await sessions(config, "list", "carol")
    assert (listed.returncode, listed.stdout) == (0, "carol: no sessions\n")


async def test_without_redis_one_line_says_why_and_where_to_read(tmp_path: Path):
    config = write(tmp_path, {
        "public_url": "http://127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "http://127.0.0.1:1/pool", "client_id": "gw-public"}, "session": {"secrets": [SECRET]},
    })  # fmt: skip
    for action in ("list", "revoke"):
        result = await sessions(config, action, "alice")
        assert (result.returncode, result.stdout) == (2, ""), result.output
        assert len(result.stderr.splitlines()) == 1
        assert "needs one" in result.stderr and "session.store: redis" in result.stderr and "session.redis_url" in result.stderr
        assert 'docs/security.md "Ending sessions"' in result.stderr


async def test_redis_down_is_one_line_and_exit_1(tmp_path: Path):
    port = free_port()  # nothing listens there
    config = write(tmp_path, {
        "public_url": "http://127.0.0.1:8080", "upstreams": [{"url": "http://127.0.0.1:8000"}],
        "provider": {"issuer": "http://127.0.0.1:1/pool", "client_id": "gw-public"},
        "session": {"secrets": [SECRET], "redis_url": f"redis://:{SECRET}@127.0.0.1:{port}/0"},
    })  # fmt: skip
    for action, done in (("list", "nothing was read"), ("revoke", "nothing was revoked")):
        result = await sessions(config, action, "alice")
        assert (result.returncode, result.stdout) == (1, ""), result.output
        assert result.stderr == f"sessions: redis unreachable at redis://***@127.0.0.1:{port}/0 (ConnectionError): {done}\n"
