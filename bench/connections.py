"""Memory and idle connections: the gateway's RSS with many open keep-alive connections, and many
idle WebSockets held through one gateway process.

    .venv/bin/python bench/connections.py [--keepalive 1000] [--websockets 5000] [--hold 5]
                                          [--gateway-ref REF] [--out bench/results]

One gateway process (signed in, cookie store) in front of bench/upstream.py (a WebSocket echo on
`/ws`), with the local Cognito; all on 127.0.0.1. Then, one after the other:

1. `--keepalive` connections, each makes one signed-in request and stays open (HTTP/1.1 keep-alive);
   after `--hold` seconds every one makes a second request on the same connection (still open?);
   the gateway's RSS (VmRSS) is read with all of them open. Target: at most `--rss-limit` MB (80).
2. `--websockets` signed-in WebSockets through the gateway to the upstream, held idle for `--hold`
   seconds, then each echoes one message (still open?); RSS read with all of them open.

The gateway's config raises `limits.max_websockets` and `limits.max_websockets_per_session` above
`--websockets` (all come from one user) and `keepalive_timeout` above the run. The fd soft limit is
raised for this process and its children. Writes connections.json and connections.md to `--out`.
Exit status 1 if any connection failed (a target missed is reported, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402
from stack import BENCH, Processes, free_port, rss_mib  # noqa: E402

APP_PATH = "/app/bench"


@dataclass
class Report:
    keepalive: int
    keepalive_open: int  # answered a second request after the hold
    websockets: int
    websockets_open: int  # echoed a message after the hold
    rss_start_mb: float  # after sign-in and a few requests
    rss_keepalive_mb: float  # with every keep-alive connection open
    rss_websockets_mb: float  # with every WebSocket open
    rss_limit_mb: float
    open_keepalive_s: float
    open_websockets_s: float
    hold_s: float
    fd_soft_limit: int
    failures: list[str]

    @property
    def keepalive_target_met(self) -> bool:
        return self.keepalive_open == self.keepalive and self.rss_keepalive_mb <= self.rss_limit_mb

    @property
    def websockets_target_met(self) -> bool:
        return self.websockets_open == self.websockets

    def table(self) -> str:
        def met(ok: bool) -> str:
            return "met" if ok else "**not met**"

        return "\n".join([
            "| what | open | gateway RSS (MB) | target | |",
            "|---|---:|---:|---|---|",
            f"| idle (signed in, a few requests) | - | {self.rss_start_mb:.1f} | - | |",
            f"| keep-alive connections | {self.keepalive_open} / {self.keepalive} | {self.rss_keepalive_mb:.1f} "
            f"| RSS ≤ {self.rss_limit_mb:.0f} MB | {met(self.keepalive_target_met)} |",
            f"| idle WebSockets (one process) | {self.websockets_open} / {self.websockets} | "
            f"{self.rss_websockets_mb:.1f} | all {self.websockets} held | {met(self.websockets_target_met)} |",
        ])  # fmt: skip


def _mb(pid: int) -> float:
    return round(rss_mib(pid) * 1.048576, 1)  # MiB -> MB (10^6 bytes), as the target is stated


async def _http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length is None:
        raise RuntimeError(f"no Content-Length in {head[:200]!r}")
    await reader.readexactly(int(length.group(1)))
    return status


async def keepalive_phase(
    host: str, port: int, cookie: str, count: int, hold: float, pid: int, failures: list[str]
) -> tuple[int, float, float]:
    """Open `count` keep-alive connections (one request each), hold, read RSS, reuse each once more."""
    request = f"GET {APP_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n\r\n".encode()
    gate = asyncio.Semaphore(100)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                streams.append((reader, writer))
                status = await _http_get(reader, writer, request)
                if status != 200:
                    failures.append(f"keep-alive: first request answered {status}")
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                failures.append(f"keep-alive: {type(exc).__name__} {exc}")

    began = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(count))), 60 + count * 0.05)
    opened = time.monotonic() - began
    await asyncio.sleep(hold)
    rss = _mb(pid)
    still_open = 0

    async def reuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal still_open
        async with gate:
            try:
                if await _http_get(reader, writer, request) == 200:
                    still_open += 1
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                failures.append(f"keep-alive reuse: {type(exc).__name__} {exc}")

    try:
        await asyncio.wait_for(asyncio.gather(*(reuse(r, w) for r, w in streams)), 60 + count * 0.05)
    finally:
        for _, writer in streams:
            writer.close()
    return still_open, rss, opened


async def websocket_phase(url: str, cookie: str, count: int, hold: float, pid: int, failures: list[str]) -> tuple[int, float, float]:
    """Open `count` WebSockets through the gateway, hold them idle, read RSS, then echo once on each."""
    gate = asyncio.Semaphore(200)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def open_one() -> None:
            async with gate:
                try:
                    ws = await session.ws_connect(url, headers={"Cookie": cookie}, autoping=True, heartbeat=None,
                                                  timeout=aiohttp.ClientWSTimeout(ws_close=5))  # fmt: skip
                    sockets.append(ws)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    if len(failures) < 50:
                        failures.append(f"websocket: {type(exc).__name__} {exc}")

        began = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(count))), 120 + count * 0.05)
        opened = time.monotonic() - began
        await asyncio.sleep(hold)
        rss = _mb(pid)
        echoed = 0

        async def echo(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal echoed
            async with gate:
                try:
                    await ws.send_str(f"ping {index}")
                    message = await ws.receive(timeout=10)
                    if message.type == aiohttp.WSMsgType.TEXT and message.data == f"ping {index}":
                        echoed += 1
                    elif len(failures) < 50:
                        failures.append(f"websocket {index}: answered {message.type} {message.data!r}")
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    if len(failures) < 50:
                        failures.append(f"websocket {index} echo: {type(exc).__name__} {exc}")

        try:
            await asyncio.wait_for(asyncio.gather(*(echo(i, ws) for i, ws in enumerate(sockets))), 60 + count * 0.05)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return echoed, rss, opened


async def run(args: argparse.Namespace, workdir: Path, processes: Processes) -> Report:
    fd_limit = stack.raise_fd_limit(max(4 * args.websockets + 2 * args.keepalive + 1024, 4096))
    cwd = stack.gateway_source(args.gateway_ref, workdir)
    upstream_port, gateway_port = free_port(), free_port()
    upstream = processes.start("upstream", [sys.executable, str(BENCH / "upstream.py"), "--port", str(upstream_port)])
    processes.wait_ready("upstream", upstream, f"http://127.0.0.1:{upstream_port}/")
    issuer = stack.start_idp(processes, workdir, [gateway_port], cwd=cwd)
    limits = {"max_websockets": args.websockets + 100, "max_websockets_per_session": args.websockets + 100,
              "keepalive_timeout": "10m"}  # fmt: skip
    config = workdir / "gateway.yaml"
    config.write_text(stack.gateway_config(gateway_port, f"http://127.0.0.1:{upstream_port}", issuer=issuer, limits=limits))
    gateway = processes.start("gateway", [sys.executable, "-m", "gateway", "run", "--config", str(config)], cwd=cwd)
    base = f"http://127.0.0.1:{gateway_port}"
    processes.wait_ready("gateway", gateway, f"{base}/readyz")
    cookie = await asyncio.to_thread(stack.session_cookie, f"{base}{APP_PATH}")
    async with aiohttp.ClientSession() as warm:
        for _ in range(20):
            async with warm.get(f"{base}{APP_PATH}", headers={"Cookie": cookie}) as response:
                await response.read()
    rss_start = _mb(gateway.pid)
    failures: list[str] = []
    print(f"gateway pid {gateway.pid}: {rss_start:.1f} MB signed in and warm; fd soft limit {fd_limit}", flush=True)

    kept, rss_keepalive, open_keepalive = await keepalive_phase(
        "127.0.0.1", gateway_port, cookie, args.keepalive, args.hold, gateway.pid, failures
    )
    print(f"  {kept}/{args.keepalive} keep-alive connections held: gateway RSS {rss_keepalive:.1f} MB", flush=True)
    await asyncio.sleep(1)  # the gateway notices the closed connections
    ws_url = f"ws://127.0.0.1:{gateway_port}/ws"
    echoed, rss_ws, open_ws = await websocket_phase(ws_url, cookie, args.websockets, args.hold, gateway.pid, failures)
    print(f"  {echoed}/{args.websockets} WebSockets held: gateway RSS {rss_ws:.1f} MB", flush=True)
    processes.check_alive()
    return Report(
        keepalive=args.keepalive, keepalive_open=kept, websockets=args.websockets, websockets_open=echoed,
        rss_start_mb=rss_start, rss_keepalive_mb=rss_keepalive, rss_websockets_mb=rss_ws,
        rss_limit_mb=args.rss_limit, open_keepalive_s=round(open_keepalive, 2), open_websockets_s=round(open_ws, 2),
        hold_s=args.hold, fd_soft_limit=fd_limit, failures=failures,
    )  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keepalive", type=int, default=1000, help="open keep-alive connections (1000)")
    parser.add_argument("--websockets", type=int, default=5000, help="idle WebSockets through one process (5000)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each phase holds its connections (5)")
    parser.add_argument("--rss-limit", type=float, default=80.0, help="MB the keep-alive phase may use (80)")
    parser.add_argument("--gateway-ref", metavar="REF", help="bench the gateway/ of this git ref, not the work tree's")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where results go (bench/results)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up on SIGTERM as on Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="gw-bench-conn-") as tmp:
        processes = Processes(Path(tmp))
        try:
            report = asyncio.run(asyncio.wait_for(run(args, Path(tmp), processes), 300 + args.websockets * 0.05))
        except KeyboardInterrupt:
            print("interrupted; every process started has been stopped", file=sys.stderr)
            return 130
        finally:
            processes.stop_all()
    args.out.mkdir(parents=True, exist_ok=True)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = {"date": date, **asdict(report), "keepalive_target_met": report.keepalive_target_met,
            "websockets_target_met": report.websockets_target_met,
            "gateway": f"git ref {args.gateway_ref}" if args.gateway_ref else "work tree"}  # fmt: skip
    (args.out / "connections.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    (args.out / "connections.md").write_text(f"# Connections {date}\n\n{report.table()}\n")
    print("\n" + report.table())
    if report.failures:
        print(f"\n{len(report.failures)} failures, e.g.:\n  " + "\n  ".join(report.failures[:10]))
    print(f"\nwrote {args.out / 'connections.json'} and {args.out / 'connections.md'}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
