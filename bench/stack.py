"""What the benchmarks share: child processes in their own process groups, free ports, the local
Cognito's and Redis's command lines, and a scripted sign-in (session cookie) and token grant.

Every child is started in a new session (its own process group) and stopped by signalling that
group: a gateway with `--workers 2` or nginx with its workers goes away whole. Children also get
SIGKILL from the kernel if the bench process itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import hashlib
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

POOL_ID = "us-east-1_BenchPool"
CLIENT_ID = "bench-gateway"
USERNAME = "bench-user"
PASSWORD = "Bench-Passw0rd!"
SESSION_SECRET = "bench-only-session-secret-0123456789abcdef"
SESSION_COOKIE = "_gw_session"
# The redirect_uri of the direct code grant that yields the Bearer token: registered, never opened.
TOKEN_CALLBACK = "http://127.0.0.1:9/bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit(wanted: int | None = None) -> int:
    """Soft RLIMIT_NOFILE up to `wanted` (default: the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    target = ceiling if wanted is None else min(wanted, ceiling)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup() -> None:  # runs in the child between fork and exec, after setsid
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def rss_mib(pid: int) -> float:
    """VmRSS of one process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def group_pids(pgid: int) -> list[int]:
    """Every live process of one process group (the gateway and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


class Processes:
    """Children started by a bench; `stop`/`stop_all` end each one's process group, and only those."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, cwd=cwd or ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True, preexec_fn=_child_setup,
            )  # fmt: skip
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def wait_ready(self, name: str, process: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} not ready at {url} after {timeout}s:\n{self.log_tail(name)}")

    def stop(self, process: subprocess.Popen[bytes], grace: float = 10) -> None:
        """SIGINT to the child's process group; SIGKILL to what is left after `grace` seconds.

        SIGINT, not SIGTERM: the gateway stops at once on it, where SIGTERM would first keep serving
        for its drain_delay (docs/operations.md); every other server here stops on either.
        """
        pgid = process.pid  # start_new_session: the child leads its own group
        _signal_group(pgid, signal.SIGINT)
        deadline = time.monotonic() + grace
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        while group_pids(pgid) and time.monotonic() < deadline:  # workers draining after their parent
            time.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        if process.poll() is None:
            process.wait()

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            self.stop(process)
        self.started.clear()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# --- configs ------------------------------------------------------------------------------------


def idp_config(port: int, callback_ports: list[int]) -> str:
    """The local Cognito: one user, one public client whose callbacks are every gateway of the run."""
    callbacks = [f"http://127.0.0.1:{p}/oauth2/callback" for p in callback_ports] + [TOKEN_CALLBACK]
    config = {
        "listen": f"127.0.0.1:{port}",
        "user_pool_id": POOL_ID,
        "token_lifetimes": {"access": 3600, "id": 3600, "login_session": 3600},  # longer than any run
        "clients": [{"client_id": CLIENT_ID, "callback_urls": callbacks,
                     "logout_urls": [f"http://127.0.0.1:{p}/" for p in callback_ports],
                     "scopes": ["openid", "email", "profile"]}],
        "users": [{"username": USERNAME, "password": PASSWORD, "email": "bench@example.com"}],
    }  # fmt: skip
    return yaml.safe_dump(config)


def gateway_source(ref: str | None, workdir: Path) -> Path:
    """Where `python -m gateway` runs from: this checkout, or `ref`'s committed gateway/ (git archive).

    With a ref, the gateway under test is that commit's, whatever the work tree holds (a rewrite
    in progress, or a before/after comparison).
    """
    if ref is None:
        return ROOT
    target = workdir / "gateway-src"
    target.mkdir()
    archive = subprocess.run(["git", "archive", ref, "gateway"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start_idp(processes: Processes, workdir: Path, callback_ports: list[int], cwd: Path | None = None) -> str:
    """Start the local Cognito; returns its issuer URL."""
    port = free_port()
    config = workdir / "idp.yaml"
    config.write_text(idp_config(port, callback_ports))
    process = processes.start("idp", [sys.executable, "-m", "gateway", "idp", "--config", str(config)], cwd=cwd)
    issuer = f"http://127.0.0.1:{port}/{POOL_ID}"
    processes.wait_ready("idp", process, f"{issuer}/.well-known/openid-configuration")
    return issuer


def start_redis(processes: Processes, workdir: Path) -> str:
    """A throwaway redis-server: no persistence, loopback only. Returns its URL."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "yes"]  # fmt: skip
    process = processes.start("redis", argv)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited {process.returncode}:\n{processes.log_tail('redis')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server not answering PING after 10 s")


def gateway_config(
    port: int,
    upstream: str,
    *,
    issuer: str | None = None,
    public_url: str | None = None,
    redis_url: str | None = None,
    trusted_proxies: list[str] | None = None,
    limits: dict[str, object] | None = None,
) -> str:
    """A gateway config from documented keys only. Without `issuer`: a plain proxy (no provider)."""
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}",
        "shutdown_grace": "2s",  # wrk has closed its connections when a row stops
        "metrics_listen": f"127.0.0.1:{free_port()}",  # measured as run in production: counting
        "upstreams": [{"path": "/", "url": upstream.rstrip("/")}],
    }
    if limits:
        config["limits"] = limits
    if issuer is not None:
        config["public_url"] = public_url or f"http://127.0.0.1:{port}"
        config["provider"] = {"issuer": issuer, "client_id": CLIENT_ID}
        session: dict[str, object] = {"secrets": [SESSION_SECRET], "max_lifetime": "12h"}
        if redis_url:
            session.update(store="redis", redis_url=redis_url)
        config["session"] = session
        config["rules"] = [
            {"path": "/healthz", "allow": "anyone"},
            {"path": "/api/**", "unauthenticated": "deny", "bearer": True},
        ]
        config["default"] = {"unauthenticated": "authenticate"}
    if trusted_proxies:
        config["trusted_proxies"] = trusted_proxies
    return yaml.safe_dump(config, sort_keys=False)


# --- signing in -----------------------------------------------------------------------------------


class FormParser(HTMLParser):
    """The first form of a page: its action and its fields (the Hosted UI's sign-in form)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = attributes.get("action", "")
        elif tag == "input" and self.action is not None and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value", "")


def is_session_cookie(name: str) -> bool:
    """`_gw_session` (the Redis store's id) or a chunk `_gw_session_N` (the cookie store); not login state."""
    prefix = SESSION_COOKIE + "_"
    return name == SESSION_COOKIE or (name.startswith(prefix) and name[len(prefix) :].isdigit())


async def _browse(session: aiohttp.ClientSession, url: str, stop_at: str | None = None) -> tuple[str, str]:
    """Follow redirects and fill the Hosted UI sign-in form as a browser would.

    Returns (final URL, body). With `stop_at`, returns as soon as a redirect points there (its
    Location is the "final URL"), without requesting it.
    """
    method, data, site = "GET", None, "none"
    for _ in range(15):
        headers = {"Accept": "text/html,*/*;q=0.8", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": site}
        async with session.request(method, url, data=data, headers=headers, allow_redirects=False) as response:
            body = await response.text()
            status, location = response.status, response.headers.get("Location")
        site = "same-site"
        if status in (301, 302, 303, 307) and location:
            url, method, data = urljoin(url, location), "GET", None
            if stop_at and url.startswith(stop_at):
                return url, ""
            continue
        if status == 200 and 'name="password"' in body and method == "GET":
            form = FormParser()
            form.feed(body)
            url, method = urljoin(url, form.action or url), "POST"
            data = {**form.fields, "username": USERNAME, "password": PASSWORD}
            continue
        if status == 200:
            return url, body
        raise RuntimeError(f"sign-in stopped at {method} {url}: {status} {body[:300]!r}")
    raise RuntimeError("sign-in: too many redirects")


async def _session_cookie(app_url: str) -> str:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies on 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=20)) as session:
        await _browse(session, app_url)
        cookies = sorted((c.key, c.value) for c in jar if is_session_cookie(c.key))
    if not cookies:
        raise RuntimeError(f"signed in at {app_url} but got no {SESSION_COOKIE} cookie")
    return "; ".join(f"{k}={v}" for k, v in cookies)


def session_cookie(app_url: str) -> str:
    """Sign in through the gateway (Hosted UI flow, from `app_url` back to it); the `Cookie:` value."""
    return asyncio.run(_session_cookie(app_url))


async def _access_token(issuer: str) -> str:
    idp = issuer.rsplit("/", 1)[0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": TOKEN_CALLBACK,
                       "scope": "openid email profile", "state": secrets.token_urlsafe(8),
                       "code_challenge": challenge, "code_challenge_method": "S256"})  # fmt: skip
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=20)) as session:
        location, _ = await _browse(session, f"{idp}/oauth2/authorize?{query}", stop_at=TOKEN_CALLBACK)
        code = parse_qs(urlsplit(location).query).get("code", [""])[0]
        if not code:
            raise RuntimeError(f"no code in {location}")
        form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                "redirect_uri": TOKEN_CALLBACK, "code_verifier": verifier}  # fmt: skip
        async with session.post(f"{idp}/oauth2/token", data=form) as response:
            answer = await response.json()
    token = answer.get("access_token")
    if not isinstance(token, str):
        raise RuntimeError(f"token endpoint answered {answer}")
    return token


def access_token(issuer: str) -> str:
    """A Cognito access token for the bench user and client (code grant with PKCE at the local Cognito)."""
    return asyncio.run(_access_token(issuer))
