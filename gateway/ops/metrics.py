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

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
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


async def _scrape(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def exporter(host: str, port: int) -> web.AppRunner:
    """`/metrics` of this process, on a listener of its own (one process: no workers)."""
    app = web.Application()
    app.router.add_get("/metrics", _scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@contextmanager
def shared_across_workers(listen: tuple[str, int] | None) -> Iterator[None]:
    """In the parent of `--workers N`, around starting and watching them: the workers' values, summed.

    The directory is new and the variable set before any worker starts, so workers count from zero
    in files of their own. The parent serves them from a thread: it runs no event loop.
    """
    if listen is None:
        yield
        return
    directory = tempfile.mkdtemp(prefix="gateway-metrics-")
    previous = os.environ.get(MULTIPROC_DIR)
    os.environ[MULTIPROC_DIR] = directory
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server, thread = start_http_server(listen[1], listen[0], registry=registry)
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)
        if previous is None:
            os.environ.pop(MULTIPROC_DIR, None)
        else:
            os.environ[MULTIPROC_DIR] = previous
        shutil.rmtree(directory, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """A worker is gone: its live gauges (open WebSockets) stop counting; its counters stay."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
