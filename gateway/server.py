"""Running the gateway: one process, or N supervised worker processes sharing one port (SO_REUSEPORT).

Stopping is a drain: on SIGTERM `/readyz` answers 503 at once while requests are still served for
`drain_delay`, so a load balancer polling readiness stops sending traffic before the listener
closes; then the listener closes and in-flight requests get `shutdown_grace`. SIGINT (Ctrl-C) skips
the delay: it comes from a terminal, where nobody polls readiness and a wait only annoys;
orchestrators (Docker, Kubernetes, systemd) send SIGTERM. A second signal ends the delay early.

Workers die with their parent, whatever killed it (PR_SET_PDEATHSIG, and a watchdog on getppid() for
the race at start and for systems without prctl); an orphaned worker skips the delay, as nothing
routes to it by way of a parent any more. The parent restarts a worker that exits unexpectedly, with
a back-off, and gives up (drains the others, exits 1) when workers keep crashing: see CrashPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from typing import Any, Awaitable, Callable, Coroutine, Iterator

from aiohttp import web
from aiohttp.log import access_logger
from aiohttp.web_log import AccessLogger

from .app import create_app, parser_limits
from .config import Config
from .connections import GatewayRunner
from .errors import cannot_listen
from .ops import access_log, logs, metrics
from .ops.observe import observer_class
from .ops.health import begin_draining

log = logging.getLogger("gateway")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
ORPHAN_POLL = 0.5  # seconds between the watchdog's looks at getppid()


def run_until_signalled(
    start: Callable[[], Awaitable[list[web.AppRunner]]],
    drain_delay: float = 0.0,
    orphaned: Callable[[], bool] | None = None,
) -> None:
    """Run `start()` (which returns started runners) until SIGTERM/SIGINT, then drain and clean up in order.

    `orphaned` (workers) says whether the supervisor is gone: then the process stops, without a delay.
    """

    async def main() -> None:
        runners = await start()
        signals: asyncio.Queue[int] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, signals.put_nowait, sig)
        watchdog = asyncio.create_task(_watch_parent(orphaned, signals)) if orphaned is not None else None
        first = await signals.get()
        delay = 0.0 if first == signal.SIGINT or (orphaned is not None and orphaned()) else drain_delay
        await _drain(runners, delay, signals)
        if watchdog is not None:
            watchdog.cancel()
        for runner in runners:
            await runner.cleanup()
        access_log.flush()

    _event_loop_run(main())


async def _drain(runners: list[web.AppRunner], delay: float, signals: asyncio.Queue[int]) -> None:
    for runner in runners:
        begin_draining(runner.app)
    if delay > 0:
        log.info("draining: /readyz answers 503, requests are served for %gs more", delay)
        try:
            await asyncio.wait_for(signals.get(), delay)  # another signal: stop waiting
        except asyncio.TimeoutError:
            pass
    log.info("draining: listener closed, finishing in-flight requests")


async def _watch_parent(orphaned: Callable[[], bool], signals: asyncio.Queue[int]) -> None:
    while not orphaned():
        await asyncio.sleep(ORPHAN_POLL)
    log.warning("the supervisor is gone: stopping")
    signals.put_nowait(signal.SIGTERM)


def _event_loop_run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def _start(config: Config, reuse_port: bool = False, ends_dir: str | None = None) -> list[web.AppRunner]:
    runners = [await _listening("listen", config.listen_host, config.listen_port, start_gateway(config, reuse_port, ends_dir))]
    if config.metrics_listen is not None and not reuse_port:  # workers' metrics are served by their parent
        try:
            runners.append(await _listening("metrics_listen", *config.metrics_listen, metrics.exporter(*config.metrics_listen)))
        except SystemExit:
            await runners[0].cleanup()
            raise
    return runners


async def _listening(key: str, host: str, port: int, starting: Awaitable[web.AppRunner]) -> web.AppRunner:
    """A port taken or not ours to bind is one line naming the key, not a traceback."""
    try:
        return await starting
    except OSError as exc:
        raise cannot_listen(key, host, port, exc) from None


async def start_gateway(config: Config, reuse_port: bool = False, ends_dir: str | None = None) -> web.AppRunner:
    observer = observer_class(config)
    runner = GatewayRunner(
        create_app(config, ends_dir),
        handle_signals=False,
        shutdown_timeout=config.shutdown_grace,
        # Ours writes the access log and counts metrics; with neither, aiohttp gets no logger at all.
        access_log_class=observer or AccessLogger,
        access_log=access_logger if observer is not None else None,
        header_timeout=config.limits.header_timeout,
        keepalive_timeout=config.limits.keepalive_timeout,
        **parser_limits(config),
    )
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, reuse_port=reuse_port, backlog=1024)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # the app's sessions and tasks, opened by setup
        raise
    log.info("gateway listening on http://%s:%s", config.listen_host, config.listen_port)
    return runner


def serve(config: Config, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT; drain for `drain_delay`, then in-flight requests get `shutdown_grace`."""
    if workers <= 1:
        run_until_signalled(lambda: _start(config), config.drain_delay)
        return
    with metrics.shared_across_workers(config.metrics_listen), _worker_ends(config) as ends_dir:
        if Supervisor(config, workers, ends_dir=ends_dir).run() != 0:
            sys.exit(1)


@contextlib.contextmanager
def _worker_ends(config: Config) -> Iterator[str | None]:
    """Where workers share ended sessions (session/worker_ends.py), unless Redis does it for the fleet."""
    if config.provider is None or config.session.uses_redis:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="gateway-ends-")  # mode 0700
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _worker(config: Config, parent_pid: int, ends_dir: str | None = None) -> None:
    """A worker process's entry point (spawned: it starts from a fresh interpreter)."""
    _die_with_parent(parent_pid)
    logs.configure(config.logging)

    def orphaned() -> bool:
        return os.getppid() != parent_pid  # re-parented: to init, or to a subreaper

    run_until_signalled(lambda: _start(config, reuse_port=True, ends_dir=ends_dir), config.drain_delay, orphaned)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM when the parent dies, even by SIGKILL (Linux; elsewhere the watchdog)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent_pid:  # it died before prctl took effect: no signal will come
        sys.exit(0)


@dataclass
class CrashPolicy:
    """When to restart a worker that exited unexpectedly, and when to stop trying.

    The n-th unexpected exit within `window` seconds is restarted after `delays[n-1]` (the last one
    repeats), so a worker that fails at start does not spin. At `limit` exits within the window the
    fault is not transient (a port taken, a broken install): the gateway gives up, drains the other
    workers and exits 1, so that its own supervisor (systemd, Kubernetes) sees it and reports it.
    """

    window: float = 60.0
    limit: int = 5
    delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    exits: deque[float] = field(default_factory=deque)

    def restart_delay(self, now: float) -> float | None:
        """Record an unexpected exit at `now` (monotonic); the delay before the restart, or None: give up."""
        self.exits.append(now)
        while self.exits and self.exits[0] <= now - self.window:
            self.exits.popleft()
        if len(self.exits) >= self.limit:
            return None
        return self.delays[min(len(self.exits), len(self.delays)) - 1]


class Supervisor:
    """N workers sharing the port: forwards SIGTERM/SIGINT to them, restarts one that exits unexpectedly."""

    def __init__(self, config: Config, count: int, policy: CrashPolicy | None = None, ends_dir: str | None = None) -> None:
        self.config = config
        self.ends_dir = ends_dir
        self.count = count
        self.policy = policy or CrashPolicy()
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[int, SpawnProcess] = {}  # slot -> worker
        self.restart_at: dict[int, float] = {}  # slot -> monotonic time of its restart
        self.stop_signal: int | None = None
        self.gave_up = False

    def run(self) -> int:
        """Until every worker has stopped after a signal; 0, or 1 when workers kept crashing."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)  # a signal interrupts the wait below at once
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        try:
            for slot in range(self.count):
                self._spawn(slot)
            log.info("started %d workers on %s:%s", self.count, self.config.listen_host, self.config.listen_port)
            while self.running or (self.restart_at and self.stop_signal is None):
                self._wait(wake_read)
                self._restart_due()
        except BaseException:
            # The supervisor itself failed: the workers must not outlive it unsupervised (multiprocessing
            # waits for them at exit, so their parent-death signal would never come).
            self._stop(signal.SIGTERM)
            raise
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_read)
            os.close(wake_write)
        return 1 if self.gave_up else 0

    def _spawn(self, slot: int) -> None:
        """The one place a worker process starts."""
        process = self.context.Process(target=_worker, args=(self.config, os.getpid(), self.ends_dir), name=f"gateway-worker-{slot}")
        try:
            process.start()
        except OSError as exc:  # out of processes or memory: a crash like any other, under the same policy
            self._failed(slot, f"worker {slot} could not start ({exc})")
            return
        self.running[slot] = process
        if self.stop_signal is not None and process.pid:  # a signal came while it started
            os.kill(process.pid, self.stop_signal)

    def _wait(self, wake_read: int) -> None:
        timeout = max(0.0, min(self.restart_at.values()) - time.monotonic()) if self.restart_at else None
        by_sentinel = {process.sentinel: slot for slot, process in self.running.items()}
        for ready in wait([*by_sentinel, wake_read], timeout):
            if ready == wake_read:
                os.read(wake_read, 512)  # the signal's handler has run already
            elif isinstance(ready, int):  # sentinels are file descriptors
                slot = by_sentinel[ready]
                self._exited(slot, self.running.pop(slot))

    def _exited(self, slot: int, process: SpawnProcess) -> None:
        """The one place a worker's exit is seen."""
        process.join()
        if process.pid is not None:
            metrics.worker_exited(process.pid)
        if self.stop_signal is None:
            self._failed(slot, f"worker {slot} (pid {process.pid}) exited with {process.exitcode}")

    def _failed(self, slot: int, what: str) -> None:
        delay = self.policy.restart_delay(time.monotonic())
        if delay is None:
            log.error("%s; workers keep exiting, giving up", what)
            self.gave_up = True
            self._stop(signal.SIGTERM)
            return
        log.error("%s; restarting it in %gs", what, delay)
        self.restart_at[slot] = time.monotonic() + delay

    def _restart_due(self) -> None:
        if self.stop_signal is not None:
            self.restart_at.clear()
            return
        now = time.monotonic()
        for slot in [slot for slot, due in self.restart_at.items() if due <= now]:
            del self.restart_at[slot]
            self._spawn(slot)
            log.info("worker %s restarted (pid %s)", slot, self.running[slot].pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        """Forward the signal: each worker drains on its own (a second one ends their delay early)."""
        self.stop_signal = signum
        for process in self.running.values():
            if process.pid and process.exitcode is None:
                os.kill(process.pid, signum)
