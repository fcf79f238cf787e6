"""Running the gateway: one process, or N worker processes sharing one port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
from typing import Awaitable, Callable, Coroutine, Any

from aiohttp import web
from aiohttp.log import access_logger

from .app import create_app, parser_limits
from .config import Config
from .connections import GatewayRunner
from .ops import access_log, logs
from .ops.access_log import AccessLogger

log = logging.getLogger("gateway")


def run_until_signalled(start: Callable[[], Awaitable[list[web.AppRunner]]]) -> None:
    """Run `start()` (which returns started runners), wait for SIGTERM/SIGINT, then clean up in order."""

    async def main() -> None:
        runners = await start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("draining: finishing in-flight requests")
        for runner in runners:
            await runner.cleanup()
        access_log.flush()

    _event_loop_run(main())


def _event_loop_run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _start(config: Config, reuse_port: bool = False) -> list[web.AppRunner]:
    return [await start_gateway(config, reuse_port)]


async def start_gateway(config: Config, reuse_port: bool = False) -> web.AppRunner:
    runner = GatewayRunner(
        create_app(config),
        handle_signals=False,
        shutdown_timeout=config.shutdown_grace,
        access_log_class=AccessLogger,
        access_log=access_logger if config.logging.access_log else None,
        header_timeout=config.limits.header_timeout,
        keepalive_timeout=config.limits.keepalive_timeout,
        **parser_limits(config),
    )
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    log.info("gateway listening on http://%s:%s", config.listen_host, config.listen_port)
    return runner


def _worker(config: Config) -> None:
    logs.configure(config.logging)
    run_until_signalled(lambda: _start(config, reuse_port=True))


def serve(config: Config, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get `shutdown_grace` to finish."""
    if workers <= 1:
        run_until_signalled(lambda: _start(config))
        return
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(config,), name=f"gateway-worker-{i}") for i in range(workers)]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid:
                process.terminate()  # SIGTERM: each worker drains on its own

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.start()
    log.info("started %d workers on %s:%s", workers, config.listen_host, config.listen_port)
    for process in processes:
        process.join()
    failed = [p for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        sys.exit(1)
