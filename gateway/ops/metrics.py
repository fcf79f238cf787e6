"""Prometheus metrics: every name the gateway exports, and how they are served.

Served only on `metrics_listen`, never on the public listener. With `run --workers N` each worker
writes its values to files in a directory the parent made (prometheus-client's multiprocess mode,
chosen by PROMETHEUS_MULTIPROC_DIR being set before a worker starts), and the parent serves their
sum; with one process the values live in memory and that process serves them.

Names follow Prometheus conventions: `gateway_` prefix, `_total` counters, `_seconds` histograms,
labels with a small fixed set of values (never a user, a path or a token). docs/operations.md
lists them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from ..connections import GatewayRunner
from ..errors import cannot_listen

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
OURS = "GATEWAY_METRICS_DIR"  # set with MULTIPROC_DIR, to the same directory, by the parent of --workers
# prometheus-client chooses where values live when it is imported: in files under MULTIPROC_DIR when
# that is set. Only the parent of `--workers N` sets it, for its workers; one set by anything else
# would make this process write files that nobody reads or removes (or fail at import).
if os.environ.get(MULTIPROC_DIR) and os.environ.get(MULTIPROC_DIR) != os.environ.get(OURS):
    del os.environ[MULTIPROC_DIR]

from prometheus_client import (  # noqa: E402 - after the environment is settled
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector  # noqa: E402
# From a cached decision (~0.1 ms) to a slow upstream page; a 101 (WebSocket) is not timed.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "gateway_requests", "Requests answered, by the gate's decision and the response status.", ["decision", "status"]
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time from the request's arrival to its last response byte, by decision.",
    ["decision"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_duration_seconds",
    "Time from sending a request upstream to the upstream's response head, by upstream URL.",
    ["upstream"],
    buckets=LATENCY_BUCKETS,
)
SIGN_IN_STARTS = Counter("gateway_sign_in_starts", "Browsers sent to the provider to sign in, by outcome.", ["outcome"])
CALLBACKS = Counter("gateway_callbacks", "Sign-in callbacks from the provider, by outcome.", ["outcome"])
SIGN_OUTS = Counter("gateway_sign_outs", "Sign-outs that ended a session here.")
REFRESHES = Counter(
    "gateway_refreshes",
    "Token refreshes, by outcome: refreshed, invalid, unavailable (a provider call or a published result), "
    "reused, joined, backing_off (no provider call).",
    ["outcome"],
)
JWKS_FETCHES = Counter("gateway_jwks_fetches", "Fetches of the provider's signing keys, by outcome.", ["outcome"])
SESSION_STORE_ERRORS = Counter("gateway_session_store_errors", "Requests answered 503 because the session store failed.")
WEBSOCKETS_OPEN = Gauge(
    "gateway_websockets_open", "WebSockets bridged to an upstream right now.", multiprocess_mode="livesum"
)


class RequestMetrics:
    """The per-request series, with their labelled children kept: `.labels()` is the costly part."""

    def __init__(self) -> None:
        self._counted: dict[tuple[str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}
        self._upstream: dict[str, Histogram] = {}

    def request(self, decision: str, status: int, seconds: float) -> None:
        counter = self._counted.get((decision, status))
        if counter is None:
            counter = self._counted[(decision, status)] = REQUESTS.labels(decision, str(status))
        counter.inc()
        if status != 101:  # a WebSocket's time is its whole life, not a latency
            timer = self._timed.get(decision)
            if timer is None:
                timer = self._timed[decision] = REQUEST_SECONDS.labels(decision)
            timer.observe(seconds)

    def upstream(self, url: str, seconds: float) -> None:
        timer = self._upstream.get(url)
        if timer is None:
            timer = self._upstream[url] = UPSTREAM_SECONDS.labels(url)
        timer.observe(seconds)


async def exporter(host: str, port: int, registry: Collector = REGISTRY) -> web.AppRunner:
    """`/metrics` on a listener of its own. Connections get the public listener's kind of deadlines
    (a head within 10 s, idle keep-alives closed after 15 s), so idle or trickling connections
    cannot pile up on it."""

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = GatewayRunner(app, access_log=None, handle_signals=False, header_timeout=10, keepalive_timeout=15, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


class _ExporterThread:
    """The parent of `--workers N` runs no event loop of its own: the exporter gets one, in a thread."""

    def __init__(self, listen: tuple[str, int], registry: Collector) -> None:
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(listen, registry), name="metrics", daemon=True)
        self.thread.start()
        self.started.wait()
        if isinstance(self.failed, OSError):  # the port is taken, say: no gateway without its metrics
            raise cannot_listen("metrics_listen", *listen, self.failed)
        if self.failed is not None:
            raise self.failed

    def _run(self, listen: tuple[str, int], registry: Collector) -> None:
        try:
            runner = self.loop.run_until_complete(exporter(*listen, registry))
        except BaseException as exc:
            self.failed = exc
            self.started.set()
            return
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@contextmanager
def shared_across_workers(listen: tuple[str, int] | None) -> Iterator[None]:
    """In the parent of `--workers N`, around starting and watching them: the workers' values, summed.

    The directory is new and the variables set before any worker starts, so workers count from zero
    in files of their own.
    """
    if listen is None:
        yield
        return
    directory = tempfile.mkdtemp(prefix="gateway-metrics-")  # mode 0700
    previous = {name: os.environ.get(name) for name in (MULTIPROC_DIR, OURS)}
    os.environ[MULTIPROC_DIR] = os.environ[OURS] = directory
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    try:
        served = _ExporterThread(listen, registry)
        try:
            yield
        finally:
            served.stop()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """A worker is gone: its live gauges (open WebSockets) stop counting; its counters stay."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
