"""Side-by-side load benchmark: the same wrk load against the upstream directly, the gateway, and nginx.

    .venv/bin/python bench/run.py [--duration 10] [--connections 50] [--threads 2] [--out bench/results]

Everything listens on 127.0.0.1 (ports picked free), runs for a bounded time and is stopped at the end,
also on Ctrl-C or an error. A new row is one more `Target` in TARGETS: a name and a function that
starts what it needs and returns the Endpoint (URL, headers) to load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    duration: int
    connections: int
    threads: int
    warmup: int
    workers: int
    out: Path


@dataclass
class Result:
    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses


@dataclass(frozen=True)
class Endpoint:
    """What wrk loads: a URL, plus headers such as a session cookie for the signed-in rows."""

    url: str
    headers: tuple[str, ...] = ()


class Bench:
    """Owns the temp dir and every process started; closing it stops them all."""

    def __init__(self, stack: ExitStack, settings: Settings) -> None:
        self.stack = stack
        self.settings = settings
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-bench-")))

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = self.stack.enter_context(open(self.tmp / f"{name}.log", "wb"))
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.stack.callback(stop, process)
        return process

    def wait_ready(self, name: str, process: subprocess.Popen[bytes], url: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} not ready at {url} after {timeout}s:\n{self.log_tail(name)}")

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Processes spawned inside are stopped on leaving: one target's servers don't idle through the next."""
        outer = self.stack
        with ExitStack() as inner:
            self.stack = inner
            try:
                yield
            finally:
                self.stack = outer

    def log_tail(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-2000:]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- targets: each starts what it needs behind `upstream` and returns what wrk loads ----------


def start_upstream(bench: Bench) -> str:
    port = free_port()
    process = bench.spawn("upstream", [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)])
    url = f"http://127.0.0.1:{port}/"
    bench.wait_ready("upstream", process, url)
    return url


def direct(bench: Bench, upstream: str) -> Endpoint:
    return Endpoint(upstream)


def bare_proxy(bench: Bench, upstream: str) -> Endpoint:
    """aiohttp's own floor: the smallest streaming proxy (bench/bare_proxy.py), one process."""
    port = free_port()
    cmd = [sys.executable, str(BENCH / "bare_proxy.py"), "--port", str(port), "--upstream", upstream]
    process = bench.spawn("bare-proxy", cmd)
    bench.wait_ready("bare-proxy", process, f"http://127.0.0.1:{port}/")
    return Endpoint(f"http://127.0.0.1:{port}/")


def gateway_plain(bench: Bench, upstream: str) -> Endpoint:
    """The gateway as a plain reverse proxy: no provider, so no sign-in and no session work."""
    port = free_port()
    config = bench.tmp / "gateway-plain.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nupstreams:\n  - path: /\n    url: {upstream.rstrip('/')}\n")
    cmd = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--workers", str(bench.settings.workers)]
    process = bench.spawn("gateway-plain", cmd)
    bench.wait_ready("gateway-plain", process, f"http://127.0.0.1:{port}/healthz")
    return Endpoint(f"http://127.0.0.1:{port}/")


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/nginx-access.log;  # the gateway logs each request too
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{ server {upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def nginx(bench: Bench, upstream: str) -> Endpoint:
    """Debian's nginx as the reference proxy, with keep-alive connections to the upstream like the gateway."""
    port = free_port()
    conf = bench.tmp / "nginx.conf"
    host_port = upstream.removeprefix("http://").rstrip("/")
    conf.write_text(NGINX_CONF.format(workers=bench.settings.workers, tmp=bench.tmp, upstream=host_port, port=port))
    # -e: nginx opens its compiled-in error log before reading the config unless told otherwise.
    cmd = [nginx_binary(), "-p", str(bench.tmp), "-c", str(conf), "-e", str(bench.tmp / "nginx-error.log")]
    process = bench.spawn("nginx", cmd)
    bench.wait_ready("nginx", process, f"http://127.0.0.1:{port}/")
    return Endpoint(f"http://127.0.0.1:{port}/")


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"  # Debian puts it in sbin, off a user's PATH


@dataclass(frozen=True)
class Target:
    name: str
    start: Callable[[Bench, str], Endpoint]


# Later rows ("gateway (cookie session)", "gateway (Redis)") go here.
TARGETS = [
    Target("direct", direct),
    Target("bare aiohttp proxy", bare_proxy),
    Target("gateway (plain proxy)", gateway_plain),
    Target("nginx", nginx),
]
# The req/s ratio columns: the upstream alone, aiohttp's floor (the gateway's own cost is the gap to
# it), and a C proxy.
BASELINES = ("direct", "bare aiohttp proxy", "nginx")


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


def run_wrk(endpoint: Endpoint, settings: Settings, duration: int) -> str:
    threads = min(settings.threads, settings.connections)  # wrk needs connections >= threads
    headers = [flag for header in endpoint.headers for flag in ("-H", header)]
    cmd = ["wrk", f"-t{threads}", f"-c{settings.connections}", f"-d{duration}s", "--latency", *headers, endpoint.url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True)
    return result.stdout


def measure(bench: Bench, target: Target, upstream: str) -> Result:
    with bench.scope():
        endpoint = target.start(bench, upstream)
        if bench.settings.warmup:
            run_wrk(endpoint, bench.settings, bench.settings.warmup)  # connection pools and caches filled first
        result = parse_wrk(target.name, run_wrk(endpoint, bench.settings, bench.settings.duration))
    print(f"  {target.name:<28} {result.requests_per_s:>10.0f} req/s", flush=True)
    return result


def ratio(results: list[Result], row: Result, baseline: str) -> str:
    base = next((r for r in results if r.target == baseline), None)
    return f"{row.requests_per_s / base.requests_per_s:.2f}x" if base and base.requests_per_s else "-"


def table(results: list[Result]) -> str:
    """Markdown table; one req/s ratio column per row of BASELINES."""
    lines = [
        "| target | req/s | p50 ms | p99 ms | " + " | ".join(f"vs {b}" for b in BASELINES) + " | errors |",
        "|---|---:|---:|---:|" + "---:|" * len(BASELINES) + "---:|",
    ]
    for r in results:
        ratios = " | ".join(ratio(results, r, b) for b in BASELINES)
        lines.append(f"| {r.target} | {r.requests_per_s:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratios} | {r.errors} |")
    return "\n".join(lines)


def environment(settings: Settings) -> dict[str, object]:
    load = f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration}s --latency"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load": load,
        "workers": settings.workers,
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "machine": platform.platform(),
    }


def write_results(results: list[Result], settings: Settings) -> None:
    settings.out.mkdir(parents=True, exist_ok=True)
    env = environment(settings)
    data = {"environment": env, "results": [asdict(r) for r in results]}
    (settings.out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    header = f"# Benchmark {env['date']}\n\n`{env['load']}`, {env['workers']} worker(s), {env['cpus']} CPUs, {env['machine']}\n\n"
    (settings.out / "results.md").write_text(header + table(results) + "\n")
    print(f"\nwrote {settings.out / 'results.json'} and {settings.out / 'results.md'}")
    plot(results, settings.out / "results.png", env)


def plot(results: list[Result], path: Path, env: dict[str, object]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib to get results.png)")
        return
    names = [r.target for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(names, [r.requests_per_s for r in results], color="#4c72b0")
    left.set_xlabel("requests/s (higher is better)")
    left.invert_yaxis()
    positions = range(len(results))
    right.barh([p - 0.2 for p in positions], [r.p50_ms for r in results], height=0.4, label="p50")
    right.barh([p + 0.2 for p in positions], [r.p99_ms for r in results], height=0.4, label="p99")
    right.set_yticks(list(positions), names)
    right.set_xlabel("latency ms (lower is better)")
    right.invert_yaxis()
    right.legend()
    fig.suptitle(f"{env['load']}, {env['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def parse_args(argv: list[str] | None) -> tuple[Settings, list[Target]]:
    parser = argparse.ArgumentParser(description="wrk against direct upstream, gateway and nginx, side by side")
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per target (10)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections (50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first (2; 0 = none)")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes and nginx workers (1)")
    parser.add_argument("--targets", help="comma-separated target names to run (default: all)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where results go (bench/results)")
    args = parser.parse_args(argv)
    targets = TARGETS
    if args.targets:
        wanted = {name.strip() for name in args.targets.split(",")}
        targets = [t for t in TARGETS if t.name in wanted]
    settings = Settings(args.duration, args.connections, args.threads, args.warmup, args.workers, args.out)
    return settings, targets


def check_tools() -> None:
    missing = [tool for tool in ("wrk",) if shutil.which(tool) is None]
    if not Path(nginx_binary()).exists():
        missing.append("nginx")
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install wrk nginx)")


def main(argv: list[str] | None = None) -> int:
    settings, targets = parse_args(argv)
    check_tools()
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops every process either way; SIGINT is reset
    # because a parent (a shell's background job, CI) may have started us with it ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = []
    with ExitStack() as stack:
        bench = Bench(stack, settings)
        upstream = start_upstream(bench)
        print(f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration}s, upstream {upstream}")
        for target in targets:
            results.append(measure(bench, target, upstream))
    print("\n" + table(results))
    write_results(results, settings)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
