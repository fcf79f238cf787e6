"""Side-by-side load benchmark: the same wrk load on the upstream, a bare aiohttp proxy, nginx and the
gateway in each of its modes (plain proxy, signed in with the cookie and the Redis store, Bearer API
calls, forward-auth for nginx's `auth_request`), each gateway row also with `--workers 2`.

    .venv/bin/python bench/run.py [--duration 10] [--rounds 3] [--connections 50] [--threads 1]
                                  [--rows direct,bare,cookie,...] [--profile cookie] [--out bench/results]

Rounds are interleaved (round 1: every row, round 2: every row, ...) and the table shows each row's
median; a row's ratio is its median req/s over the "bare aiohttp proxy" median of the same run.
Everything listens on 127.0.0.1 (ports picked free), runs for a bounded time and is stopped at the end,
also on Ctrl-C, SIGTERM or an error (each child runs in its own process group, which is signalled).
A new row is one more `Target` in TARGETS (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402  (bench/stack.py, beside this file)
from stack import BENCH, ROOT, Processes, free_port  # noqa: E402

BASELINE = "bare aiohttp proxy"
APP_PATH = "/app/bench"  # the signed-in rows' path: default rule (authenticate), proxied to the upstream
API_PATH = "/api/bench"  # the Bearer row's path: rule `bearer: true`


@dataclass(frozen=True)
class Settings:
    duration: int = 10
    connections: int = 50
    threads: int = 1
    warmup: int = 2
    rounds: int = 3
    workers: int = 2  # processes of the "N workers" gateway variants
    out: Path = BENCH / "results"
    profile: str | None = None  # a row key: one more, profiled run of that row after the rounds
    gateway_ref: str | None = None  # run the gateway of this git ref instead of the work tree's


@dataclass
class Result:
    """One measurement: one row in one round."""

    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses


@dataclass
class Row:
    """A row of the table: the medians of its rounds."""

    key: str
    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    rounds: list[Result] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    """What wrk loads: a URL, plus headers such as a session cookie for the signed-in rows."""

    url: str
    headers: tuple[str, ...] = ()
    pid: int | None = None  # the process (group leader) to profile: the gateway of a gateway row


@dataclass(frozen=True)
class Shared:
    """Services that live for the whole run, shared by every row: started once, stopped at the end."""

    upstream: str
    issuer: str | None = None
    redis_url: str | None = None


class Bench:
    """Owns the temp dir, the shared services and every process started; closing it stops them all."""

    def __init__(self, stack_: ExitStack, settings: Settings) -> None:
        self.settings = settings
        self.tmp = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="gw-bench-")))
        self.processes = Processes(self.tmp)
        stack_.callback(self.processes.stop_all)
        self.gateway_cwd = stack.gateway_source(settings.gateway_ref, self.tmp)
        self.ports: dict[str, int] = {}  # row key -> the gateway's port, fixed for the run (IdP callbacks)
        self.shared = Shared(upstream="")

    def spawn(self, name: str, cmd: list[str], gateway: bool = False) -> subprocess.Popen[bytes]:
        return self.processes.start(name, cmd, cwd=self.gateway_cwd if gateway else None)

    def wait_ready(self, name: str, process: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
        self.processes.wait_ready(name, process, url, timeout)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Processes spawned inside are stopped on leaving: one row's servers don't idle through the next."""
        before = len(self.processes.started)
        try:
            yield
        finally:
            inner = self.processes.started[before:]
            del self.processes.started[before:]
            for _, process in reversed(inner):
                self.processes.stop(process)

    def start_gateway(self, key: str, config: str, workers: int, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
        """`python -m gateway run` with `config` on the row's fixed port (or `port`), once ready."""
        port = self.ports[key] if port is None else port
        path = self.tmp / f"gateway-{key}.yaml"
        path.write_text(config)
        cmd = [sys.executable, "-m", "gateway", "run", "--config", str(path), "--workers", str(workers)]
        process = self.spawn(f"gateway-{key}", cmd, gateway=True)
        self.wait_ready(f"gateway-{key}", process, f"http://127.0.0.1:{port}/readyz")
        if workers > 1:
            time.sleep(0.5)  # /readyz answered by one worker; give the others their moment too
        return process, port


# --- targets: each starts what it needs behind the shared upstream and returns what wrk loads ----------


def direct(bench: Bench, key: str) -> Endpoint:
    return Endpoint(bench.shared.upstream + APP_PATH.lstrip("/"))


def bare_proxy(bench: Bench, key: str) -> Endpoint:
    """aiohttp's own floor: the smallest streaming proxy (bench/bare_proxy.py), one process."""
    port = free_port()
    cmd = [sys.executable, str(BENCH / "bare_proxy.py"), "--port", str(port), "--upstream", bench.shared.upstream]
    process = bench.spawn("bare-proxy", cmd)
    bench.wait_ready("bare-proxy", process, f"http://127.0.0.1:{port}/")
    return Endpoint(f"http://127.0.0.1:{port}{APP_PATH}", pid=process.pid)


def gateway_plain(workers: int) -> Callable[[Bench, str], Endpoint]:
    def start(bench: Bench, key: str) -> Endpoint:
        """The gateway as a plain reverse proxy: no provider, so no sign-in and no session work."""
        config = stack.gateway_config(bench.ports[key], bench.shared.upstream)
        process, port = bench.start_gateway(key, config, workers)
        return Endpoint(f"http://127.0.0.1:{port}{APP_PATH}", pid=process.pid)

    return start


def gateway_signed_in(workers: int, redis: bool) -> Callable[[Bench, str], Endpoint]:
    def start(bench: Bench, key: str) -> Endpoint:
        """Signed in once through the Hosted UI flow; wrk sends that session cookie on every request."""
        assert bench.shared.issuer
        redis_url = bench.shared.redis_url if redis else None
        config = stack.gateway_config(bench.ports[key], bench.shared.upstream, issuer=bench.shared.issuer, redis_url=redis_url)
        process, port = bench.start_gateway(key, config, workers)
        cookie = stack.session_cookie(f"http://127.0.0.1:{port}{APP_PATH}")
        return Endpoint(f"http://127.0.0.1:{port}{APP_PATH}", (f"Cookie: {cookie}",), pid=process.pid)

    return start


def gateway_bearer(workers: int) -> Callable[[Bench, str], Endpoint]:
    def start(bench: Bench, key: str) -> Endpoint:
        """API calls with `Authorization: Bearer <access token>` on a `bearer: true` rule; no session."""
        assert bench.shared.issuer
        config = stack.gateway_config(bench.ports[key], bench.shared.upstream, issuer=bench.shared.issuer)
        process, port = bench.start_gateway(key, config, workers)
        token = stack.access_token(bench.shared.issuer)
        return Endpoint(f"http://127.0.0.1:{port}{API_PATH}", (f"Authorization: Bearer {token}",), pid=process.pid)

    return start


def gateway_auth_direct(workers: int) -> Callable[[Bench, str], Endpoint]:
    def start(bench: Bench, key: str) -> Endpoint:
        """`GET /oauth2/auth` as nginx's auth_request subrequest asks it, from a trusted peer: decisions/s."""
        assert bench.shared.issuer
        config = stack.gateway_config(bench.ports[key], bench.shared.upstream, issuer=bench.shared.issuer,
                                      trusted_proxies=["127.0.0.1/32"])  # fmt: skip
        process, port = bench.start_gateway(key, config, workers)
        cookie = stack.session_cookie(f"http://127.0.0.1:{port}{APP_PATH}")
        headers = (f"Cookie: {cookie}", f"X-Original-URI: {APP_PATH}", "X-Original-Method: GET",
                   f"X-Forwarded-Host: 127.0.0.1:{port}", "X-Forwarded-Proto: http", "X-Forwarded-For: 127.0.0.1")  # fmt: skip
        return Endpoint(f"http://127.0.0.1:{port}/oauth2/auth", headers, pid=process.pid)

    return start


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {tmp}/nginx-{key}.pid;
error_log {tmp}/nginx-{key}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/nginx-{key}-access.log;  # the gateway logs each request too
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{ server {upstream}; keepalive 64; }}
{extra_upstreams}
    server {{
        listen 127.0.0.1:{port};
{server}
    }}
}}
"""

NGINX_PROXY = """\
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
"""

# docs/deployment.md's forward-auth server block, minus headers-more's more_clear_input_headers (a
# bench has no hostile clients), with keep-alive connections to the gateway and the app.
NGINX_AUTH_REQUEST = """\
        large_client_header_buffers 4 16k;
        proxy_buffer_size 32k;
        proxy_buffers 8 32k;
        location /oauth2/ {
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location = /oauth2/auth {
            internal;
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location @sign_in {
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location / {
            auth_request /oauth2/auth;
            error_page 401 = @sign_in;
            auth_request_set $auth_user $upstream_http_x_forwarded_user;
            auth_request_set $auth_email $upstream_http_x_forwarded_email;
            auth_request_set $auth_groups $upstream_http_x_forwarded_groups;
            auth_request_set $auth_username $upstream_http_x_forwarded_preferred_username;
            proxy_set_header X-Forwarded-User $auth_user;
            proxy_set_header X-Forwarded-Email $auth_email;
            proxy_set_header X-Forwarded-Groups $auth_groups;
            proxy_set_header X-Forwarded-Preferred-Username $auth_username;
            auth_request_set $auth_cookie_0 $upstream_http_x_auth_set_cookie_0;
            auth_request_set $auth_cookie_1 $upstream_http_x_auth_set_cookie_1;
            add_header Set-Cookie $auth_cookie_0 always;
            add_header Set-Cookie $auth_cookie_1 always;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
"""


def start_nginx(bench: Bench, key: str, server: str, port: int, extra_upstreams: str = "") -> Endpoint:
    conf = bench.tmp / f"nginx-{key}.conf"
    host_port = bench.shared.upstream.removeprefix("http://").rstrip("/")
    conf.write_text(NGINX_CONF.format(workers=1, tmp=bench.tmp, key=key, upstream=host_port, port=port,
                                      server=server, extra_upstreams=extra_upstreams))  # fmt: skip
    # -e: nginx opens its compiled-in error log before reading the config unless told otherwise.
    cmd = [nginx_binary(), "-p", str(bench.tmp), "-c", str(conf), "-e", str(bench.tmp / f"nginx-{key}-error.log")]
    process = bench.spawn(f"nginx-{key}", cmd)
    bench.wait_ready(f"nginx-{key}", process, f"http://127.0.0.1:{port}/healthz")
    return Endpoint(f"http://127.0.0.1:{port}{APP_PATH}", pid=process.pid)


def nginx(bench: Bench, key: str) -> Endpoint:
    """Debian's nginx as the reference proxy (one worker), keep-alive connections to the upstream."""
    return start_nginx(bench, key, NGINX_PROXY, free_port())


def nginx_auth_request(workers: int) -> Callable[[Bench, str], Endpoint]:
    def start(bench: Bench, key: str) -> Endpoint:
        """nginx proxies to the upstream after asking the gateway's /oauth2/auth (docs/deployment.md);
        signed in through nginx, so the gateway's public_url is nginx's."""
        assert bench.shared.issuer
        nginx_port, gateway_port = bench.ports[key], bench.ports[key + ":gateway"]
        config = stack.gateway_config(gateway_port, bench.shared.upstream, issuer=bench.shared.issuer,
                                      public_url=f"http://127.0.0.1:{nginx_port}", trusted_proxies=["127.0.0.1/32"])  # fmt: skip
        process, _ = bench.start_gateway(key, config, workers, port=gateway_port)
        gateway_upstream = f"    upstream gateway {{ server 127.0.0.1:{gateway_port}; keepalive 64; }}"
        endpoint = start_nginx(bench, key, NGINX_AUTH_REQUEST, nginx_port, gateway_upstream)
        cookie = stack.session_cookie(endpoint.url)
        return Endpoint(endpoint.url, (f"Cookie: {cookie}",), pid=process.pid)

    return start


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"  # Debian puts it in sbin, off a user's PATH


@dataclass(frozen=True)
class Target:
    key: str  # short name for --rows / --profile
    name: str  # the table's row name
    start: Callable[[Bench, str], Endpoint]
    needs: frozenset[str] = frozenset()  # "idp", "redis"
    gateway_ports: int = 0  # ports fixed for the run (IdP callback URLs): 1 per gateway, +1 for nginx in front


def gateway_targets(workers: int) -> list[Target]:
    suffix, key = ("", "") if workers == 1 else (f", {workers} workers", f"-w{workers}")
    idp, both = frozenset({"idp"}), frozenset({"idp", "redis"})
    return [
        Target("plain" + key, "gateway (plain proxy)" + suffix, gateway_plain(workers)),
        Target("cookie" + key, "gateway signed in (cookie)" + suffix, gateway_signed_in(workers, False), idp, 1),
        Target("redis" + key, "gateway signed in (redis)" + suffix, gateway_signed_in(workers, True), both, 1),
        Target("bearer" + key, "gateway bearer" + suffix, gateway_bearer(workers), idp, 1),
        Target("auth-direct" + key, "gateway /oauth2/auth direct" + suffix, gateway_auth_direct(workers), idp, 1),
        Target("auth-nginx" + key, "nginx auth_request → /oauth2/auth" + suffix, nginx_auth_request(workers), idp, 2),
    ]


def all_targets(workers: int) -> list[Target]:
    return [
        Target("direct", "direct", direct),
        Target("bare", BASELINE, bare_proxy),
        Target("nginx", "nginx", nginx),
        *gateway_targets(1),
        *gateway_targets(workers),
    ]


# The targets of the issue, as req/s ratios: (row key, of row key, at least). All are to the bare
# aiohttp proxy, but /oauth2/auth's decisions/s, which is to the signed-in proxied rate.
TARGET_RATIOS: tuple[tuple[str, str, float], ...] = (
    ("plain", "bare", 1.0),
    ("cookie", "bare", 0.85),
    ("redis", "bare", 0.7),
    ("bearer", "bare", 0.8),
    ("auth-direct", "cookie", 2.0),
)


# --- load and results -------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk output has no match for {pattern!r}:\n{text}")
    return match.group(1)


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(target: str, text: str) -> Result:
    """req/s, p50, p99 and error counts from `wrk --latency` output."""
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return Result(
        target=target,
        requests_per_s=float(_find(r"Requests/sec:\s+([\d.]+)", text)),
        p50_ms=_ms(_find(r"^\s+50(?:\.0+)?%\s+(\S+)", text)),
        p99_ms=_ms(_find(r"^\s+99(?:\.0+)?%\s+(\S+)", text)),
        requests=int(_find(r"(\d+) requests in", text)),
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def wrk_command(endpoint: Endpoint, settings: Settings, duration: int) -> list[str]:
    threads = min(settings.threads, settings.connections)  # wrk needs connections >= threads
    headers = [flag for header in endpoint.headers for flag in ("-H", header)]
    return ["wrk", f"-t{threads}", f"-c{settings.connections}", f"-d{duration}s", "--latency", *headers, endpoint.url]


def run_wrk(endpoint: Endpoint, settings: Settings, duration: int) -> str:
    cmd = wrk_command(endpoint, settings, duration)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True)
    return result.stdout


def measure(bench: Bench, target: Target) -> Result:
    with bench.scope():
        endpoint = target.start(bench, target.key)
        if bench.settings.warmup:
            run_wrk(endpoint, bench.settings, bench.settings.warmup)  # connection pools and caches filled first
        result = parse_wrk(target.name, run_wrk(endpoint, bench.settings, bench.settings.duration))
    print(f"  {target.name:<46} {result.requests_per_s:>9.0f} req/s  p99 {result.p99_ms:6.2f} ms"
          f"{f'  ERRORS {result.errors}' if result.errors else ''}", flush=True)  # fmt: skip
    return result


def median_row(target: Target, results: list[Result]) -> Row:
    return Row(
        key=target.key,
        target=target.name,
        requests_per_s=round(statistics.median(r.requests_per_s for r in results), 1),
        p50_ms=round(statistics.median(r.p50_ms for r in results), 3),
        p99_ms=round(statistics.median(r.p99_ms for r in results), 3),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        rounds=results,
    )


def _rate(rows: list[Row], key: str) -> float | None:
    row = next((r for r in rows if r.key == key), None)
    return row.requests_per_s if row and row.requests_per_s else None


def ratio_to(rows: list[Row], row: Row, key: str) -> float | None:
    base = _rate(rows, key)
    return row.requests_per_s / base if base else None


def target_checks(rows: list[Row]) -> list[dict[str, object]]:
    """Each target of TARGET_RATIOS whose rows were measured: the ratio and whether it is met."""
    names = {r.key: r.target for r in rows}
    checks = []
    for key, of, at_least in TARGET_RATIOS:
        row = next((r for r in rows if r.key == key), None)
        value = ratio_to(rows, row, of) if row else None
        if value is None:
            continue
        checks.append({"row": names[key], "key": key, "of": names[of], "at_least": at_least,
                       "ratio": round(value, 3), "met": value >= at_least})  # fmt: skip
    return checks


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(rows: list[Row]) -> str:
    """Markdown table: medians, the ratio to the bare aiohttp proxy and nginx, the target if any."""
    checks = {c["key"]: c for c in target_checks(rows)}
    lines = [
        f"| target | req/s | p50 ms | p99 ms | vs {BASELINE} | vs nginx | target | errors | req/s by round |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        check = checks.get(r.key)
        goal = "-"
        if check:
            of = "" if check["key"] != "auth-direct" else " of signed in (cookie)"
            goal = f"≥{check['at_least']}x{of}: {check['ratio']:.2f}x {'met' if check['met'] else '**not met**'}"
        by_round = " / ".join(f"{x.requests_per_s:.0f}" for x in r.rounds)
        lines.append(
            f"| {r.target} | {r.requests_per_s:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{_fmt_ratio(ratio_to(rows, r, 'bare'))} | {_fmt_ratio(ratio_to(rows, r, 'nginx'))} | {goal} | "
            f"{r.errors} | {by_round} |"
        )
    return "\n".join(lines)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(cmd: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str | None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else None


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, object]:
    """The machine the numbers come from: CPU, cores, RAM, OS, and the versions of what ran."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.MULTILINE)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor() or "unknown",
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "os": os_name.group(1) if os_name else platform.system(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": _package_version("aiohttp"),
        "uvloop": _package_version("uvloop"),
        "wrk": _version(["wrk", "-v"]),
        "nginx": _version([nginx_binary(), "-v"], r"nginx/(\S+)"),
        "redis": _version(["redis-server", "--version"], r"v=(\S+)"),
        "git_commit": commit or None,
        "gateway_work_tree_modified": bool(dirty),
    }


def environment(settings: Settings) -> dict[str, object]:
    load = f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration}s --latency"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load": load,
        "warmup_s": settings.warmup,
        "rounds": settings.rounds,
        "body_bytes": 1024,
        "gateway": f"git ref {settings.gateway_ref}" if settings.gateway_ref else "work tree",
        "machine": machine(),
    }


def write_results(rows: list[Row], settings: Settings, env: dict[str, object]) -> None:
    settings.out.mkdir(parents=True, exist_ok=True)
    checks = target_checks(rows)
    data = {"environment": env, "results": [asdict(r) for r in rows], "targets": checks}
    (settings.out / "results.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    m = env["machine"]
    assert isinstance(m, dict)
    header = (
        f"# Benchmark {env['date']}\n\n"
        f"`{env['load']}`, {env['warmup_s']} s warm-up, median of {env['rounds']} interleaved round(s), "
        f"1 KB body; gateway: {env['gateway']} ({m['git_commit']}"
        f"{', gateway/ modified' if m['gateway_work_tree_modified'] and not settings.gateway_ref else ''}).\n"
        f"{m['cpu_model']}, {m['cpus_usable']} CPUs, {m['ram_gib']} GiB, {m['os']} (kernel {m['kernel']}), "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, wrk {m['wrk']}, "
        f"nginx {m['nginx']}, redis {m['redis']}\n\n"
    )
    (settings.out / "results.md").write_text(header + table(rows) + "\n")
    print(f"\nwrote {settings.out / 'results.json'} and {settings.out / 'results.md'}")
    plot(rows, settings.out / "results.png", env)


def plot(rows: list[Row], path: Path, env: dict[str, object]) -> None:
    """Horizontal bars: each row's req/s over the bare aiohttp proxy's, with the target as a marker."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not importable: no plot (`make bench` installs the bench extra)")
        return
    base = _rate(rows, "bare")
    if not base:
        print(f"no {BASELINE} row: no plot of ratios")
        return
    checks = {c["key"]: c for c in target_checks(rows)}
    names = [r.target for r in rows]
    ratios = [r.requests_per_s / base for r in rows]
    colors, marks = [], []
    for r in rows:
        check = checks.get(r.key)
        if check is None:
            colors.append("#9aa5b1")
            marks.append(None)
            continue
        colors.append("#2a9d59" if check["met"] else "#d1495b")
        of_rate = _rate(rows, str(next(of for key, of, _ in TARGET_RATIOS if key == r.key)))
        assert of_rate is not None and isinstance(check["at_least"], float)
        marks.append(check["at_least"] * of_rate / base)  # the target, in units of the bare proxy's rate
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.6))
    positions = list(range(len(rows)))
    ax.barh(positions, ratios, color=colors)
    for y, (value, mark, row) in enumerate(zip(ratios, marks, rows)):
        at = max(value, mark or 0) + 0.02
        ax.text(at, y, f" {value:.2f}x  ({row.requests_per_s:.0f}/s)", va="center", fontsize=8)
    ys = [y for y, m in zip(positions, marks) if m is not None]
    xs = [m for m in marks if m is not None]
    if xs:
        ax.scatter(xs, ys, marker="|", s=400, linewidths=2.5, color="black", zorder=3, label="target")
        ax.legend(loc="lower right")
    ax.axvline(1.0, color="#555", linestyle="--", linewidth=0.8)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(ratios + xs) * 1.3)
    ax.set_xlabel(f"req/s ÷ {BASELINE} req/s (median of {env['rounds']} rounds; higher is better)")
    m = env["machine"]
    assert isinstance(m, dict)
    ax.set_title(f"{env['load']}, 1 KB body, {m['cpus_usable']} CPUs ({m['cpu_model']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


# --- profiling -------------------------------------------------------------------------------------


def py_spy() -> str:
    """py-spy from the venv, installed there on first use (not a project dependency)."""
    found = Path(sys.executable).with_name("py-spy")
    if not found.exists():
        print("installing py-spy into the venv (pip install py-spy)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(found)


def profile(bench: Bench, target: Target) -> None:
    """One more (unmeasured) run of `target` with py-spy sampling its gateway for the measured duration.

    Writes profile-<key>.folded (collapsed stacks: speedscope.app and flamegraph.pl read it),
    profile-<key>.speedscope.json and profile-<key>.txt (the top functions by own and total time).
    """
    settings = bench.settings
    spy = py_spy()
    settings.out.mkdir(parents=True, exist_ok=True)
    folded = settings.out / f"profile-{target.key}.folded"
    with bench.scope():
        endpoint = target.start(bench, target.key)
        if endpoint.pid is None:
            raise SystemExit(f"row {target.key!r} has no process to profile")
        if settings.warmup:
            run_wrk(endpoint, settings, settings.warmup)
        cmd = [spy, "record", "--pid", str(endpoint.pid), "--subprocesses", "--nonblocking", "--rate", "200",
               "--duration", str(settings.duration), "--format", "raw", "--output", str(folded)]  # fmt: skip
        with open(bench.tmp / "py-spy.log", "wb") as log:
            spy_process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                time.sleep(0.5)  # attached before the load starts
                result = parse_wrk(target.name, run_wrk(endpoint, settings, settings.duration))
                spy_process.wait(timeout=settings.duration + 30)
            finally:
                if spy_process.poll() is None:
                    os.killpg(spy_process.pid, signal.SIGKILL)
                    spy_process.wait()
    if not folded.exists():
        raise SystemExit(f"py-spy wrote nothing:\n{(bench.tmp / 'py-spy.log').read_text(errors='replace')[-2000:]}")
    stacks = read_folded(folded)
    summary = profile_summary(stacks, target.name, result)
    (settings.out / f"profile-{target.key}.txt").write_text(summary)
    write_speedscope(stacks, settings.out / f"profile-{target.key}.speedscope.json", target.name)
    print(f"\nprofile of {target.name} (under py-spy: {result.requests_per_s:.0f} req/s)\n")
    print("\n".join(summary.splitlines()[:40]))
    print(f"\nwrote {folded}, profile-{target.key}.speedscope.json and profile-{target.key}.txt in {settings.out}")


def read_folded(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _function(frame: str) -> str:
    """`handle (aiohttp/web_protocol.py:512)` -> `handle (aiohttp/web_protocol.py)`: one entry per function."""
    return re.sub(r":\d+\)$", ")", frame)


def _is_process_frame(frame: str) -> bool:
    return frame.startswith(("process ", "thread "))  # py-spy's --subprocesses / thread root frames


def profile_summary(stacks: list[tuple[list[str], int]], name: str, result: Result, top: int = 30) -> str:
    """Top functions by own samples (the leaf frame) and by total samples (anywhere on the stack)."""
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    for frames, count in stacks:
        functions = [_function(f) for f in frames if not _is_process_frame(f)]
        if not functions:
            continue
        own[functions[-1]] += count
        for function in set(functions):
            inclusive[function] += count
        where = re.search(r"\(([^)]*)\)$", functions[-1])
        by_file[_area(where.group(1) if where else functions[-1])] += count
    lines = [
        f"py-spy profile of: {name} ({total} samples at 200 Hz; {result.requests_per_s:.0f} req/s while sampled)",
        "",
        "own time by area (leaf frame's file):",
        *(f"  {100 * c / total:5.1f}%  {area}" for area, c in by_file.most_common(15)),
        "",
        f"top {top} functions by own time (leaf frame):",
        *(f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)),
        "",
        f"top {top} functions by total time (on the stack):",
        *(f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)),
    ]
    return "\n".join(lines) + "\n"


def _area(path: str) -> str:
    """Group a file into gateway/<package>, aiohttp, asyncio, ... for the by-area summary."""
    path = path.split(":")[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3":
                return "stdlib: " + path.split("/", 1)[-1].split("/")[0].removesuffix(".py")
            break
    parts = path.split("/")
    if parts[0] == "gateway" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else path


def write_speedscope(stacks: list[tuple[list[str], int]], path: Path, name: str) -> None:
    """The collapsed stacks as a speedscope "sampled" profile (https://www.speedscope.app)."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for frames, count in stacks:
        samples.append([index.setdefault(f, len(index)) for f in frames])
        weights.append(count)
    data = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f} for f in index]},
        "profiles": [{"type": "sampled", "name": name, "unit": "none", "startValue": 0,
                      "endValue": sum(weights), "samples": samples, "weights": weights}],  # fmt: skip
        "exporter": "bench/run.py",
    }
    path.write_text(json.dumps(data))


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[Settings, list[Target], Target | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per row and round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians (3)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections (50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first (2; 0 = none)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the multi-worker gateway rows (2)")
    parser.add_argument("--rows", "--targets", dest="rows",
                        help="comma-separated row keys or names (default: all; see --list)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the rows (key: name) and exit")
    parser.add_argument("--profile", metavar="ROW", help="after the rounds, profile this row's gateway with py-spy")
    parser.add_argument("--gateway-ref", metavar="REF", help="bench the gateway/ of this git ref, not the work tree's")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where results go (bench/results)")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers is the multi-worker variant: 2 or more")
    targets = all_targets(args.workers)
    if args.list:
        print("\n".join(f"{t.key:<16} {t.name}" for t in targets))
        raise SystemExit(0)
    by_name = {t.key: t for t in targets} | {t.name: t for t in targets}
    if args.rows:
        wanted = [name.strip() for name in args.rows.split(",") if name.strip()]
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            parser.error(f"unknown rows {unknown}; --list shows them")
        keys = {by_name[w].key for w in wanted}
        targets = [t for t in targets if t.key in keys]
    profiled = None
    if args.profile:
        if args.profile not in by_name:
            parser.error(f"unknown row {args.profile!r}; --list shows them")
        profiled = by_name[args.profile]
    settings = Settings(args.duration, args.connections, args.threads, args.warmup, args.rounds, args.workers,
                        args.out, args.profile, args.gateway_ref)  # fmt: skip
    return settings, targets, profiled


def check_tools(targets: list[Target]) -> None:
    missing = [tool for tool in ("wrk",) if shutil.which(tool) is None]
    if not Path(nginx_binary()).exists():
        missing.append("nginx")
    if any("redis" in t.needs for t in targets) and shutil.which("redis-server") is None:
        missing.append("redis-server")
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install wrk nginx redis-server)")


def start_shared(bench: Bench, targets: list[Target]) -> None:
    """The upstream, and the local Cognito and Redis when a row needs them; ports of every gateway."""
    port = free_port()
    process = bench.spawn("upstream", [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)])
    upstream = f"http://127.0.0.1:{port}/"
    bench.wait_ready("upstream", process, upstream)
    for target in targets:
        bench.ports[target.key] = free_port()
        if target.gateway_ports > 1:
            bench.ports[target.key + ":gateway"] = free_port()
    needs = {n for t in targets for n in t.needs}
    issuer = redis_url = None
    if "idp" in needs:
        callback_ports = [bench.ports[t.key] for t in targets if t.gateway_ports]
        issuer = stack.start_idp(bench.processes, bench.tmp, callback_ports, cwd=bench.gateway_cwd)
    if "redis" in needs:
        redis_url = stack.start_redis(bench.processes, bench.tmp)
    bench.shared = Shared(upstream, issuer, redis_url)


def main(argv: list[str] | None = None) -> int:
    settings, targets, profiled = parse_args(argv)
    check_tools(targets + ([profiled] if profiled else []))
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops every process either way; SIGINT is reset
    # because a parent (a shell's background job, CI) may have started us with it ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack.raise_fd_limit(65536)
    env = environment(settings)
    by_round: dict[str, list[Result]] = {t.key: [] for t in targets}
    with ExitStack() as exits:
        bench = Bench(exits, settings)
        everything = targets + ([profiled] if profiled and profiled not in targets else [])
        start_shared(bench, everything)
        print(f"{env['load']}, {settings.warmup} s warm-up, {settings.rounds} round(s) of {len(targets)} rows, "
              f"upstream {bench.shared.upstream}", flush=True)  # fmt: skip
        for number in range(1, settings.rounds + 1):
            print(f"round {number}/{settings.rounds}", flush=True)
            for target in targets:
                by_round[target.key].append(measure(bench, target))
        rows = [median_row(t, by_round[t.key]) for t in targets]
        print("\n" + table(rows))
        write_results(rows, settings, env)
        if profiled:
            profile(bench, profiled)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
