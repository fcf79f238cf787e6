"""Soak: many signed-in users through ONE gateway process while their tokens keep expiring.

    .venv/bin/python bench/soak.py [--users 1000] [--duration 60] [--token-lifetime 10] [--before-expiry 4]
                                   [--interval 2.5] [--burst 0.05] [--no-rotation] [--json FILE]

Starts, on 127.0.0.1 ephemeral ports: the local Cognito (`python -m gateway idp`, one user per simulated
user, access and id tokens living `--token-lifetime` seconds, `admin_api` on), a small upstream app
(this file, `serve-upstream`), and one gateway process (`python -m gateway run`) with
`refresh.before_expiry` = `--before-expiry`. Every user signs in through the real Hosted UI flow
(gateway /oauth2/start -> authorize -> login form -> callback -> back to the app), then requests the
app every `--interval` seconds on average (0.5x to 1.5x, jittered), sometimes `--burst-size` requests at
once: first `--warmup` seconds (default 60 s + 2 token lifetimes, see `Settings.warmup_s`), then the
measured `--duration` seconds. Then it checks, and exits 1 on any miss:

1. zero failed requests: every answer is a 200 from the upstream, which saw the right user
   (`X-Forwarded-User` and the forwarded access token's `username` are this user's, never another's)
   and an access token that had not expired;
2. exactly one refresh per user per expiry (see `check_refreshes`);
3. flat memory: the gateway's RSS (VmRSS from /proc/<pid>/status) at the end is within
   `--rss-growth-mib` MiB *and* `--rss-growth-pct` % of its RSS at the end of the warm-up.

It prints a short summary (users, duration, requests, failures, refreshes expected vs seen, RSS start /
peak / end). Everything is bounded in time and every process it started is stopped at the end, also on
an error or Ctrl-C (children also get SIGKILL from the kernel if this process dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import FormParser  # noqa: E402  (bench/stack.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]
POOL_ID = "us-east-1_SoakPool"
CLIENT_ID = "soak-gateway"
PASSWORD = "Soak-Passw0rd!"
SESSION_SECRET = "soak-only-session-secret-0123456789abcdef"
SESSION_COOKIE = "_gw_session"
APP_PATH = "/soak"


@dataclass(frozen=True)
class Settings:
    users: int = 1000
    duration: float = 60.0  # seconds of measured load, after the warm-up
    token_lifetime: int = 10  # access and id token lifetime at the local Cognito
    before_expiry: float = 4.0  # the gateway's refresh.before_expiry
    # Mean seconds between one user's requests: 1,000 users make ~440 requests/s (bursts included)
    # and ~140 refreshes/s, about 1.2 cores for the four processes: sized for a shared 2-core machine.
    interval: float = 2.5
    burst: float = 0.05  # chance that a tick sends `burst_size` concurrent requests instead of one
    burst_size: int = 3
    rotation: bool = True  # refresh_token_rotation at the local Cognito (single-use refresh tokens)
    warmup: float | None = None  # seconds of load before the RSS baseline; default: see warmup_s
    rss_growth_mib: float = 30.0
    rss_growth_pct: float = 15.0
    sign_in_concurrency: int = 16
    connections: int = 200  # client connections to the gateway at most
    request_timeout: float = 10.0
    workdir: Path | None = None  # configs and logs; default: a temporary directory, removed afterwards

    @property
    def warmup_s(self) -> float:
        """Default: the gateway's refresh-result TTL plus two token lifetimes.

        The gateway keeps each refresh result for RECENT_TTL (60 s) so that requests still carrying
        the old cookie reuse it; with tokens refreshed every few seconds that cache fills for a
        minute by design. Memory is "flat" only once it is full, so the baseline is taken after it.
        """
        if self.warmup is not None:
            return self.warmup
        return _recent_ttl() + 2.0 * self.token_lifetime

    def validate(self) -> None:
        if self.before_expiry < 1.5 * self.interval:
            raise ValueError("before_expiry must be at least 1.5 x interval, or tokens expire between requests")
        if self.token_lifetime - self.before_expiry < 2:
            raise ValueError("token_lifetime - before_expiry must be at least 2 s")
        if self.duration <= 0 or self.warmup_s < 0:
            raise ValueError("duration must be positive and warmup not negative")


def _recent_ttl() -> float:
    try:
        from gateway.auth.refresh import RECENT_TTL
    except ImportError:  # pragma: no cover - run from elsewhere
        return 60.0
    return float(RECENT_TTL)


# ---------------------------------------------------------------------------------------------- results


@dataclass
class TokenSeen:
    """One access token as the upstream saw it forwarded."""

    jti: str
    iat: int
    exp: int
    first_seen: float
    last_seen: float


@dataclass
class SimUser:
    name: str
    cookies: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, TokenSeen] = field(default_factory=dict)
    requests: int = 0


@dataclass
class Report:
    settings: dict[str, Any]
    users: int
    sign_in_s: float
    warmup_s: float
    duration_s: float  # measured load, after the warm-up
    requests: int
    requests_per_s: float
    failures: int
    failure_samples: list[str]
    failure_kinds: dict[str, int]
    refreshes_expected: int
    refreshes_seen: int
    refresh_calls: int  # every refresh_token call at the IdP, refused ones included
    authorization_codes: int
    refresh_problems: list[str]
    rss_start_mib: float
    rss_warm_mib: float
    rss_peak_mib: float
    rss_end_mib: float
    rss_problem: str | None
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds by process over the whole run
    gateway_log_warnings: int = 0
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)  # (s since load began, MiB), every 5 s

    @property
    def problems(self) -> list[str]:
        found = []
        if self.failures:
            found.append(f"{self.failures} failed requests {self.failure_kinds}, e.g. {self.failure_samples[:3]}")
        found += self.refresh_problems
        if self.rss_problem:
            found.append(self.rss_problem)
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [
            f"soak: {self.users} users, {self.duration_s:.0f} s of load measured after {self.warmup_s:.0f} s of warm-up "
            f"(+{self.sign_in_s:.1f} s signing in), "
            f"tokens live {self.settings['token_lifetime']} s, refresh {self.settings['before_expiry']} s before "
            f"expiry, rotation {'on' if self.settings['rotation'] else 'off'}",
            f"  requests   {self.requests} ({self.requests_per_s:.0f}/s), failures {self.failures}; "
            f"latency p50 {self.latency_p50_ms:.1f} ms, p99 {self.latency_p99_ms:.1f} ms, max {self.latency_max_ms:.0f} ms",
            f"  refreshes  expected {self.refreshes_expected}, seen {self.refreshes_seen} at the IdP "
            f"({self.refresh_calls} refresh calls, {self.authorization_codes} sign-ins)",
            f"  gateway RSS start {self.rss_start_mib:.1f} MiB, after warm-up {self.rss_warm_mib:.1f}, "
            f"peak {self.rss_peak_mib:.1f}, end {self.rss_end_mib:.1f}",
            "  CPU s      " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.cpu_s.items())
            + f"; gateway log warnings {self.gateway_log_warnings}",
        ]
        problems = self.problems
        lines.append("  PASS" if not problems else "  FAIL:\n" + "\n".join(f"    - {p}" for p in problems[:20]))
        return "\n".join(lines)


def check_refreshes(
    users: list[SimUser], by_user: dict[str, int], settings: Settings
) -> tuple[int, list[str]]:
    """What "exactly one refresh per user per expiry" means here, checked per user from two sides.

    The upstream records every access token the gateway forwarded for a user (its `jti`, `iat`,
    `exp`); the local Cognito counts the refresh grants it issued for that user. A user starts with
    the token of their sign-in; each refresh grant makes exactly one new token. So, for every user:

    - **grants = distinct tokens seen - 1**: no refresh was wasted (a duplicate or lost refresh would
      make more grants than new tokens), and no token came from anywhere but a refresh;
    - **no early or duplicate refresh**: sorted by `iat`, each token was issued no earlier than
      `exp - before_expiry - 1 s` of the token before it (1 s for the integer `iat`/`exp`). Two grants
      for the same expiring token would give two tokens issued within milliseconds of each other, the
      second far earlier than its predecessor's refresh window (since `lifetime - before_expiry > 1 s`);
    - **no late refresh**: no token was forwarded after its `exp` (checked per request, as a failure).

    Together: each token was replaced exactly once, inside its refresh window. The expected total
    is the sum over users of (distinct tokens - 1); `seen` is the IdP's count of grants. The IdP's count
    of *all* refresh_token calls must equal its grants too (no refused or faulted refresh).
    """
    problems: list[str] = []
    expected = 0
    for user in users:
        tokens = sorted(user.tokens.values(), key=lambda t: (t.iat, t.first_seen))
        grants = by_user.get(user.name, 0)
        expected += max(len(tokens) - 1, 0)
        if not tokens:
            problems.append(f"{user.name}: the upstream saw no access token")
            continue
        if grants != len(tokens) - 1:
            problems.append(f"{user.name}: {grants} refresh grants at the IdP for {len(tokens)} distinct access tokens")
        for before, after in zip(tokens, tokens[1:]):
            if after.iat < before.exp - settings.before_expiry - 1:
                problems.append(
                    f"{user.name}: token issued at {after.iat}, before the refresh window of the previous one "
                    f"(exp {before.exp}): an early or duplicate refresh"
                )
    unknown = set(by_user) - {u.name for u in users}
    if unknown:
        problems.append(f"refresh grants for users that are not in the soak: {sorted(unknown)[:5]}")
    return expected, problems


# --------------------------------------------------------------------------------------------- upstream


def create_upstream_app() -> web.Application:
    """The app behind the gateway: it answers who it saw and which access token came with them."""

    async def whoami(request: web.Request) -> web.Response:
        now = time.time()
        token = request.headers.get("X-Forwarded-Access-Token", "")
        try:
            segment = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (IndexError, ValueError):
            claims = {}
        body = {
            "user": request.headers.get("X-Forwarded-User"),
            "path": request.path,
            "now": now,
            "token": {k: claims.get(k) for k in ("jti", "iat", "exp", "username", "token_use")},
        }
        return web.json_response(body)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get(APP_PATH + "/{tail:.*}", whoami)
    return app


# -------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Processes:
    """Children started by the soak; `stop_all` ends each of them (and only them) by pid."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.close()
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def cpu_seconds(self) -> dict[str, float]:
        """utime + stime of each child still running, from /proc/<pid>/stat."""
        ticks = os.sysconf("SC_CLK_TCK")
        found = {}
        for name, process in self.started:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[name] = round((int(fields[11]) + int(fields[12])) / ticks, 1)
        return found

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def stop_all(self) -> None:
        for _, process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # the gateway's stop without its drain_delay
        deadline = time.monotonic() + 10
        for _, process in self.started:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def wait_ready(session: aiohttp.ClientSession, url: str, processes: Processes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def user_names(count: int) -> list[str]:
    return [f"soak-{i:05d}" for i in range(count)]


def write_configs(settings: Settings, workdir: Path, idp_port: int, gateway_port: int, upstream_port: int) -> tuple[Path, Path]:
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    lifetime = settings.token_lifetime
    idp = {
        "listen": f"127.0.0.1:{idp_port}",
        "user_pool_id": POOL_ID,
        "admin_api": True,
        "refresh_token_rotation": settings.rotation,
        "token_lifetimes": {"access": lifetime, "id": lifetime, "login_session": 600},
        "clients": [{"client_id": CLIENT_ID, "callback_urls": [f"{gateway_url}/oauth2/callback"],
                     "logout_urls": [f"{gateway_url}/"], "scopes": ["openid", "email", "profile"]}],
        "users": [{"username": name, "password": PASSWORD, "email": f"{name}@example.com"} for name in user_names(settings.users)],
    }  # fmt: skip
    gateway = {
        "listen": f"127.0.0.1:{gateway_port}",
        "public_url": gateway_url,
        "upstreams": [{"path": "/", "url": f"http://127.0.0.1:{upstream_port}"}],
        "provider": {"issuer": f"http://127.0.0.1:{idp_port}/{POOL_ID}", "client_id": CLIENT_ID},
        "session": {"secrets": [SESSION_SECRET]},
        "refresh": {"before_expiry": settings.before_expiry},
        "identity": {"pass_access_token": True},
    }
    idp_path, gateway_path = workdir / "idp.yaml", workdir / "gateway.yaml"
    idp_path.write_text(yaml.safe_dump(idp))
    gateway_path.write_text(yaml.safe_dump(gateway))
    return idp_path, gateway_path


# ----------------------------------------------------------------------------------------------- client


def is_session_cookie(name: str) -> bool:
    prefix = SESSION_COOKIE + "_"
    return name.startswith(prefix) and name[len(prefix) :].isdigit()


async def sign_in(connector: aiohttp.BaseConnector, gateway: str, user: SimUser, timeout: float) -> dict[str, Any]:
    """The Hosted UI flow as a browser runs it; returns the app's answer at the end of it."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies on 127.0.0.1
    async with aiohttp.ClientSession(
        connector=connector, connector_owner=False, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as session:
        url, method, data = f"{gateway}{APP_PATH}/{user.name}/home", "GET", None
        site = "none"
        for _ in range(12):
            headers = {"Accept": "text/html,*/*;q=0.8", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": site}
            async with session.request(method, url, data=data, headers=headers, allow_redirects=False) as response:
                body = await response.text()
                status, location = response.status, response.headers.get("Location")
                content_type = response.content_type
            site = "same-site"
            if status in (301, 302, 303, 307) and location:
                url, method, data = urljoin(url, location), "GET", None
                continue
            if status == 200 and content_type == "application/json":
                for cookie in jar:
                    if is_session_cookie(cookie.key):
                        user.cookies[cookie.key] = cookie.value
                return json.loads(body)
            if status == 200 and 'name="password"' in body and method == "GET":
                form = FormParser()
                form.feed(body)
                url, method = urljoin(url, form.action or url), "POST"
                data = {**form.fields, "username": user.name, "password": PASSWORD}
                continue
            raise RuntimeError(f"sign-in of {user.name} stopped at {method} {url}: {status} {body[:200]!r}")
        raise RuntimeError(f"sign-in of {user.name}: too many redirects")


class Load:
    def __init__(self, settings: Settings, gateway: str, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.gateway = gateway
        self.session = session
        self.failures: Counter[str] = Counter()
        self.failure_samples: list[str] = []
        self.latencies: list[float] = []
        self.requests = 0

    def fail(self, user: SimUser, reason: str) -> None:
        kind = reason.split(":")[0]
        self.failures[kind] += 1
        if len(self.failure_samples) < 20:
            self.failure_samples.append(f"{user.name}: {reason}")

    def record(self, user: SimUser, answer: dict[str, Any]) -> None:
        """Check one upstream answer and note its access token; return nothing, count failures."""
        token = answer.get("token") or {}
        if answer.get("user") != user.name:
            self.fail(user, f"wrong identity: upstream saw X-Forwarded-User {answer.get('user')!r}")
            return
        if token.get("username") != user.name or token.get("token_use") != "access":
            self.fail(user, f"wrong token: forwarded access token of {token.get('username')!r}")
            return
        if not isinstance(token.get("exp"), int) or token["exp"] <= answer["now"]:
            self.fail(user, f"expired token: forwarded {answer['now'] - token.get('exp', 0):.2f} s after its exp")
            return
        seen = user.tokens.get(token["jti"])
        if seen is None:
            user.tokens[token["jti"]] = TokenSeen(token["jti"], token["iat"], token["exp"], answer["now"], answer["now"])
        else:
            seen.first_seen, seen.last_seen = min(seen.first_seen, answer["now"]), max(seen.last_seen, answer["now"])

    async def request(self, user: SimUser) -> None:
        self.requests += 1
        user.requests += 1
        headers = {"Accept": "application/json", "Cookie": "; ".join(f"{k}={v}" for k, v in user.cookies.items())}
        started = time.monotonic()
        try:
            async with self.session.get(f"{self.gateway}{APP_PATH}/{user.name}/{user.requests}", headers=headers) as response:
                body = await response.read()
                self._update_cookies(user, response.headers.getall("Set-Cookie", []))
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.fail(user, f"transport: {type(exc).__name__} {exc}")
            return
        self.latencies.append(time.monotonic() - started)
        if status != 200:
            self.fail(user, f"status {status}: {body[:120]!r}")
            return
        try:
            answer = json.loads(body)
        except ValueError:
            self.fail(user, f"not JSON: {body[:120]!r}")
            return
        self.record(user, answer)

    @staticmethod
    def _update_cookies(user: SimUser, set_cookies: list[str]) -> None:
        for header in set_cookies:
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if not is_session_cookie(name):
                    continue
                if morsel["max-age"] == "0" or not morsel.value:
                    user.cookies.pop(name, None)
                else:
                    user.cookies[name] = morsel.value

    async def run_user(self, user: SimUser, end: float) -> None:
        """Ticks every interval x U(0.5, 1.5); one request per tick, sometimes a concurrent burst."""
        rng = random.Random(user.name)
        await asyncio.sleep(rng.uniform(0, self.settings.interval))  # users out of step with each other
        while time.monotonic() < end:
            tick = time.monotonic()
            count = self.settings.burst_size if rng.random() < self.settings.burst else 1
            if count == 1:
                await self.request(user)
            else:
                await asyncio.gather(*(self.request(user) for _ in range(count)))
            pause = self.settings.interval * rng.uniform(0.5, 1.5) - (time.monotonic() - tick)
            if pause > 0:
                await asyncio.sleep(min(pause, max(end - time.monotonic(), 0)))


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class RssSampler:
    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, MiB)

    async def run(self, every: float = 0.5) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)

    def sample(self) -> float:
        value = rss_mib(self.pid)
        self.samples.append((time.monotonic(), value))
        return value

    def at(self, moment: float) -> float:
        """The first sample at or after `moment` (the last one if none)."""
        return next((v for t, v in self.samples if t >= moment), self.samples[-1][1])


async def soak(settings: Settings, workdir: Path) -> Report:
    """One soak in this event loop (several may run side by side); its processes are stopped at the end."""
    settings.validate()
    processes = Processes(workdir)
    try:
        return await _soak(settings, workdir, processes)
    finally:
        try:  # in a thread: another soak in this loop must not stall while these processes drain
            await asyncio.to_thread(processes.stop_all)
        except BaseException:  # cancelled or interrupted meanwhile: stop them here and now
            processes.stop_all()
            raise


async def _soak(settings: Settings, workdir: Path, processes: Processes) -> Report:
    idp_port, gateway_port, upstream_port = free_port(), free_port(), free_port()
    idp_config, gateway_config = write_configs(settings, workdir, idp_port, gateway_port, upstream_port)
    idp_url, gateway_url = f"http://127.0.0.1:{idp_port}", f"http://127.0.0.1:{gateway_port}"
    python = sys.executable
    processes.start("idp", [python, "-m", "gateway", "idp", "--config", str(idp_config)])
    processes.start("upstream", [python, str(Path(__file__).resolve()), "serve-upstream", "--port", str(upstream_port)])
    async with aiohttp.ClientSession() as control:
        await wait_ready(control, f"{idp_url}/{POOL_ID}/.well-known/openid-configuration", processes)
        await wait_ready(control, f"http://127.0.0.1:{upstream_port}/healthz", processes)
        gateway = processes.start("gateway", [python, "-m", "gateway", "run", "--config", str(gateway_config)])
        await wait_ready(control, f"{gateway_url}/readyz", processes)
        rss = RssSampler(gateway.pid)
        rss_start = rss.sample()

        users = [SimUser(name) for name in user_names(settings.users)]
        connector = aiohttp.TCPConnector(limit=settings.connections)
        timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout, auto_decompress=False
        ) as session:
            load = Load(settings, gateway_url, session)
            sampler = asyncio.create_task(rss.run())
            try:
                began = time.monotonic()
                await asyncio.wait_for(_sign_in_all(settings, connector, gateway_url, users, load), 60 + settings.users * 0.1)
                signed_in = time.monotonic()
                warm_at = signed_in + settings.warmup_s
                end = warm_at + settings.duration
                watchdog = asyncio.create_task(_watch(processes))
                try:
                    loops = [asyncio.create_task(load.run_user(u, end)) for u in users]
                    await asyncio.wait_for(asyncio.gather(*loops), end - time.monotonic() + settings.request_timeout * 3 + 30)
                finally:
                    watchdog.cancel()
                finished = time.monotonic()
                rss.sample()
            finally:
                sampler.cancel()
        processes.check_alive()
        cpu = {**processes.cpu_seconds(), "load generator": round(time.process_time(), 1)}
        async with control.get(f"{idp_url}/_admin/stats/refresh") as response:
            refresh_stats = await response.json()
        async with control.get(f"{idp_url}/_admin/stats") as response:
            token_stats = (await response.json())["token_requests"]

    expected, refresh_problems = check_refreshes(users, refresh_stats["by_user"], settings)
    refresh_calls = token_stats.get("refresh_token", 0)
    if refresh_calls != refresh_stats["total"]:
        refresh_problems.append(f"{refresh_calls} refresh_token calls at the IdP but {refresh_stats['total']} grants (refused or faulted refreshes)")
    if refresh_stats["total"] != expected:
        refresh_problems.insert(0, f"refresh grants: expected {expected}, the IdP issued {refresh_stats['total']}")
    codes = token_stats.get("authorization_code", 0)
    if codes != settings.users:
        refresh_problems.append(f"{codes} authorization codes exchanged for {settings.users} users")

    log_lines = (workdir / "gateway.log").read_text(errors="replace").splitlines()
    errors = [line for line in log_lines if " ERROR " in line or line.startswith("Traceback")]
    warnings = sum(" WARNING " in line for line in log_lines)
    if errors:
        refresh_problems.append(f"{len(errors)} errors in the gateway log, e.g. {errors[0][:200]}")

    warm = rss.at(warm_at)
    end_rss = rss.samples[-1][1]
    steady = [v for t, v in rss.samples if t >= signed_in]
    allowed = min(settings.rss_growth_mib, warm * settings.rss_growth_pct / 100)
    rss_problem = None
    if end_rss - warm > allowed:
        rss_problem = (f"gateway RSS grew {end_rss - warm:.1f} MiB after warm-up ({warm:.1f} -> {end_rss:.1f} MiB), "
                       f"over the {allowed:.1f} MiB allowed")  # fmt: skip
    latencies = sorted(load.latencies) or [0.0]
    return Report(
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        users=settings.users,
        sign_in_s=round(signed_in - began, 2),
        warmup_s=round(min(finished, warm_at) - signed_in, 2),
        duration_s=round(max(finished - warm_at, 0), 2),
        requests=load.requests,
        requests_per_s=round(load.requests / max(finished - began, 1e-9), 1),
        failures=sum(load.failures.values()),
        failure_samples=load.failure_samples,
        failure_kinds=dict(load.failures),
        refreshes_expected=expected,
        refreshes_seen=refresh_stats["total"],
        refresh_calls=refresh_calls,
        authorization_codes=codes,
        refresh_problems=refresh_problems,
        rss_start_mib=round(rss_start, 1),
        rss_warm_mib=round(warm, 1),
        rss_peak_mib=round(max(steady or [end_rss]), 1),
        rss_end_mib=round(end_rss, 1),
        rss_problem=rss_problem,
        latency_p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
        latency_p99_ms=round(latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.99) - 1)] * 1000, 1),
        latency_max_ms=round(latencies[-1] * 1000, 1),
        cpu_s=cpu,
        gateway_log_warnings=warnings,
        rss_timeline=[(round(t - signed_in, 1), v) for t, v in rss.samples[::10] if t >= signed_in],
    )


async def _sign_in_all(settings: Settings, connector: aiohttp.BaseConnector, gateway: str, users: list[SimUser], load: Load) -> None:
    """Sign everyone in (bounded concurrency); each user starts nothing until all are signed in."""
    gate = asyncio.Semaphore(settings.sign_in_concurrency)

    async def one(user: SimUser) -> None:
        async with gate:
            answer = await sign_in(connector, gateway, user, settings.request_timeout)
        load.record(user, answer)  # the sign-in's own token, forwarded on the redirect back to the app
        if not user.cookies:
            raise RuntimeError(f"{user.name}: signed in but got no session cookie")

    await asyncio.gather(*(one(u) for u in users))
    if load.failures:
        raise RuntimeError(f"sign-in answers were wrong: {load.failure_samples[:3]}")


async def _watch(processes: Processes) -> None:
    """Fail fast if a server dies during the load (instead of counting thousands of failures)."""
    while True:
        await asyncio.sleep(1)
        processes.check_alive()


def run(settings: Settings) -> Report:
    """Run one soak; the work directory is temporary unless `settings.workdir` is given."""
    if settings.workdir is not None:
        settings.workdir.mkdir(parents=True, exist_ok=True)
        return _event_loop_run(soak(settings, settings.workdir))
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        return _event_loop_run(soak(settings, Path(tmp)))


def _event_loop_run(coro: Any) -> Any:
    """uvloop when available (as the gateway itself runs): the load generator shares the CPU too."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


# ------------------------------------------------------------------------------------------ command line


def _serve_upstream(port: int) -> None:
    async def serve() -> None:
        runner = web.AppRunner(create_upstream_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()  # until SIGTERM

    _event_loop_run(serve())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve-upstream"]:
        parser = argparse.ArgumentParser(prog="bench/soak.py serve-upstream")
        parser.add_argument("--port", type=int, required=True)
        _serve_upstream(parser.parse_args(argv[1:]).port)
        return 0
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds of measured load, after the warm-up")
    parser.add_argument("--token-lifetime", type=int, default=defaults.token_lifetime, help="seconds")
    parser.add_argument("--before-expiry", type=float, default=defaults.before_expiry, help="gateway refresh.before_expiry, seconds")
    parser.add_argument("--interval", type=float, default=defaults.interval, help="mean seconds between a user's requests")
    parser.add_argument("--burst", type=float, default=defaults.burst, help="share of ticks that send concurrent requests")
    parser.add_argument("--burst-size", type=int, default=defaults.burst_size)
    parser.add_argument("--no-rotation", dest="rotation", action="store_false", help="IdP keeps refresh tokens (no rotation)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before the RSS baseline (default: 60 s + 2 token lifetimes)")
    parser.add_argument("--rss-growth-mib", type=float, default=defaults.rss_growth_mib)
    parser.add_argument("--rss-growth-pct", type=float, default=defaults.rss_growth_pct)
    parser.add_argument("--sign-in-concurrency", type=int, default=defaults.sign_in_concurrency)
    parser.add_argument("--workdir", type=Path, default=None, help="keep configs and logs here")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "json"}
    settings = Settings(**options)
    try:
        settings.validate()
    except ValueError as exc:
        parser.error(str(exc))
    signal.signal(signal.SIGTERM, _interrupt)  # clean up on SIGTERM as on Ctrl-C
    try:
        report = run(settings)
    except KeyboardInterrupt:
        print("soak: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "ok": report.ok, "problems": report.problems}, indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
