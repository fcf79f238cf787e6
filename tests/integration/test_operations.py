"""What an operator sees: metrics scraped after a real sign-in and refresh, log lines in both formats
that never hold a secret, and request ids from the client to the app and back.

Real processes: `python -m gateway run` (one process and --workers 2) against the local Cognito and
the demo app; its stderr is the log under test.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import aiohttp
import pytest

from tests.fixtures.browser import Browser
from tests.fixtures.idp import CONFIDENTIAL_SECRET, PASSWORD, callback_params
from tests.fixtures.servers import GatewayProcess, free_port
from tests.fixtures.stack import SESSION_SECRET, cookie_header, gateway_clients, session_in

REFRESH_AT_EXPIRY = {"before_expiry": "0s", "timeout": "2s"}


def scrape(text: str) -> dict[str, float]:
    """`name{labels} value` lines, keyed by `name{labels}` as printed."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def fetch_metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return scrape(await response.text())


async def start(idp_factory, gateway_process, demo_upstream, *, workers: int, log_format: str) -> tuple[GatewayProcess, int, str, dict[str, Any]]:
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    idp = await idp_factory(clients=gateway_clients(url), token_lifetimes={"access": 2, "id": 2})
    config = {
        "public_url": url,
        "metrics_listen": f"127.0.0.1:{metrics_port}",
        "logging": {"format": log_format},
        "upstreams": [{"path": "/", "url": demo_upstream}],
        "provider": {"issuer": idp.issuer, "client_id": "gw-confidential", "client_secret": CONFIDENTIAL_SECRET},
        "session": {"secrets": [SESSION_SECRET]},  # the test opens the session to know its tokens
        "refresh": REFRESH_AT_EXPIRY,
        "rules": [{"path": "/api/*", "bearer": True}],
    }
    gateway = await asyncio.to_thread(gateway_process, config, workers, port)
    return gateway, metrics_port, url, config


async def walk_through_everything(url: str, browser: Browser) -> list[str]:
    """Sign in, use, refresh, fail in several ways, sign out; returns every secret value involved."""
    seen: list[str] = [CONFIDENTIAL_SECRET, PASSWORD, SESSION_SECRET]
    page = await browser.sign_in(url + "/")
    assert page.status == 200
    callback = next(u for u in page.history if "/oauth2/callback" in u)
    code, state = callback_params(callback)["code"], callback_params(callback)["state"]
    seen += [code, state, *browser.cookies().values()]
    first = session_in(browser.cookies())
    seen += [first["at"], first["id"], first["rt"]]
    await asyncio.sleep(max(0.0, first["exp"] - time.time()) + 0.3)
    refreshed = await browser.open(url + "/api/whoami")
    assert refreshed.status == 200
    second = session_in(browser.cookies())
    assert second["at"] != first["at"], "the request after expiry refreshed the tokens"
    seen += [second["at"], second["id"], *browser.cookies().values()]
    leaked_in_query = "q-" + secrets.token_urlsafe(24)
    bearer = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0." + secrets.token_urlsafe(32)
    seen += [leaked_in_query, bearer, bearer.split(".")[2]]
    async with aiohttp.ClientSession() as http:
        failures = [
            http.get(f"{url}{callback.partition(url)[2]}"),  # the callback replayed: its login state is used up
            http.get(f"{url}/oauth2/callback?code={secrets.token_urlsafe(16)}&state=forged"),
            http.get(f"{url}/api/whoami", headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"}),
        ]
        for request in failures:  # the gateway's own error pages
            async with request as response:
                body = await response.text()
                assert response.status in (400, 401) and not [s for s in seen if s in body], f"a secret in the answer to {response.url}"
        # A client putting a token in a query: the app gets it (its business), the log must not.
        async with http.get(f"{url}/api/whoami?access_token={leaked_in_query}&page=2", headers={"Cookie": cookie_header(browser.cookies())}) as response:
            assert response.status == 200
    # Malformed requests: aiohttp's parser refuses them and would log the offending bytes.
    malformed = "m-" + secrets.token_urlsafe(24)
    seen.append(malformed)
    host, port = url.removeprefix("http://").split(":")
    for head in (f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {malformed}\r\n\r\n",
                 f"GET / HTTP/1.1\r\nHost: x\r\nCookie: _gw_session_0={malformed}\x7f\r\n\r\n"):  # fmt: skip
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head.encode("latin-1"))
        answer = await reader.read(4096)
        assert answer.startswith(b"HTTP/1.0 400") and malformed.encode() not in answer
        writer.close()
    signed_out = await browser.open(url + "/oauth2/sign_out", from_page=url + "/")
    assert signed_out.status in (200, 302)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "log_format"), [(1, "json"), (2, "text")])
async def test_metrics_and_logs_after_sign_in_refresh_sign_out_and_failures(
    idp_factory, gateway_process, demo_upstream, browser, workers: int, log_format: str
) -> None:
    gateway, metrics_port, url, config = await start(idp_factory, gateway_process, demo_upstream, workers=workers, log_format=log_format)
    seen = await walk_through_everything(url, browser)

    metrics = await fetch_metrics(metrics_port)
    assert metrics['gateway_sign_in_starts_total{outcome="redirected"}'] >= 1
    assert metrics['gateway_callbacks_total{outcome="signed_in"}'] == 1
    assert metrics['gateway_callbacks_total{outcome="invalid_state"}'] == 2
    assert metrics['gateway_refreshes_total{outcome="refreshed"}'] == 1
    assert metrics["gateway_sign_outs_total"] == 1
    assert metrics['gateway_requests_total{decision="deny",status="401"}'] == 1
    assert metrics['gateway_requests_total{decision="allow",status="200"}'] >= 3
    assert metrics['gateway_requests_total{decision="sign_in",status="302"}'] >= 1
    assert metrics['gateway_jwks_fetches_total{outcome="ok"}'] >= 1
    assert metrics['gateway_request_duration_seconds_count{decision="allow"}'] >= 3
    assert metrics[f'gateway_upstream_duration_seconds_count{{upstream="{config["upstreams"][0]["url"]}"}}'] >= 3
    assert metrics["gateway_websockets_open"] == 0
    async with aiohttp.ClientSession() as http:  # never on the public listener
        async with http.get(url + "/metrics") as response:
            assert "gateway_requests_total" not in await response.text()

    assert gateway.terminate() == 0  # flushes the batched access lines
    log = gateway.log()
    leaked = [s for s in seen if s and s in log]
    assert not leaked, f"{len(leaked)} secret value(s) in the log"
    lines = [line for line in log.splitlines() if line.strip()]
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is one object
        access = [r for r in records if r["type"] == "access"]
        assert {"time", "request_id", "method", "path", "status", "duration_ms", "rule", "decision", "sub", "upstream"} <= set(access[0])
        assert any(r["path"].startswith("/oauth2/callback?code=REDACTED&state=REDACTED") for r in access)
        assert any(r["decision"] == "allow" and r["sub"] and r["rule"] == "/api/*" for r in access)
        assert any(r["type"] == "event" and "signed in" in r["message"] and r.get("request_id") for r in records)
    else:
        assert any("/api/whoami?access_token=REDACTED&page=2" in line for line in lines)


async def test_request_ids_go_upstream_and_back(gateway_process, demo_upstream) -> None:
    gateway = await asyncio.to_thread(gateway_process, {"upstreams": [{"path": "/", "url": demo_upstream}], "logging": {"format": "json"}})
    async with aiohttp.ClientSession() as http:
        async def ids(sent: str | None) -> tuple[str, str]:
            headers = {"X-Request-Id": sent} if sent is not None else {}
            async with http.get(gateway.url + "/api/whoami", headers=headers) as response:
                upstream = dict((k.lower(), v) for k, v in (await response.json())["headers"])
                return response.headers["X-Request-Id"], upstream["x-request-id"]

        assert await ids("trace-0123456789") == ("trace-0123456789", "trace-0123456789")
        made, upstream = await ids("bad id\twith spaces")
        assert made == upstream and len(made) == 32 and " " not in made
        async with http.get(gateway.url + "/healthz") as response:  # the gateway's own answers too
            assert len(response.headers["X-Request-Id"]) == 32
    assert gateway.terminate() == 0
    access = [json.loads(line) for line in gateway.log().splitlines() if '"type": "access"' in line]
    assert {r["request_id"] for r in access} >= {"trace-0123456789", made}


@pytest.mark.parametrize("key", ["listen", "metrics_listen"])
def test_a_port_taken_is_one_line_naming_the_key(tmp_path, key: str) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, free = taken.getsockname()[1], free_port()
        ports = {"listen": busy, "metrics_listen": free} if key == "listen" else {"listen": free, "metrics_listen": busy}
        config = tmp_path / "gateway.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{ports['listen']}\nmetrics_listen: 127.0.0.1:{ports['metrics_listen']}\n"
            "upstreams: [{path: /, url: 'http://127.0.0.1:9'}]\n"
        )
        result = subprocess.run([sys.executable, "-m", "gateway", "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"{key}: cannot listen on 127.0.0.1:{busy}: Address already in use"
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr
