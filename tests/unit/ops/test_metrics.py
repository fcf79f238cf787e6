"""Metrics under --workers: each worker counts in its own files, the parent serves the sum."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

from aiohttp import ClientSession

from gateway.ops import metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_counting(sign_outs: int, websockets: int) -> subprocess.Popen[bytes]:
    """A process that, like a worker, imports the metrics after the parent set the directory, and counts."""
    code = (
        "from gateway.ops import metrics\n"
        f"for _ in range({sign_outs}): metrics.SIGN_OUTS.inc()\n"
        f"for _ in range({websockets}): metrics.WEBSOCKETS_OPEN.inc()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def test_the_parent_serves_the_sum_of_its_workers() -> None:
    port = free_port()
    with metrics.shared_across_workers(("127.0.0.1", port)):
        directory = os.environ[metrics.MULTIPROC_DIR]
        workers = [worker_counting(2, 1), worker_counting(3, 0)]
        for worker in workers:
            assert worker.wait(timeout=30) == 0
        values = scrape(port)
        assert values["gateway_sign_outs_total"] == 5
        assert values["gateway_websockets_open"] == 1  # the first worker's socket, still counted
        metrics.worker_exited(workers[0].pid)
        assert scrape(port)["gateway_websockets_open"] == 0  # a dead worker's sockets are gone
        assert scrape(port)["gateway_sign_outs_total"] == 5  # its counts are not
    assert not os.path.exists(directory) and metrics.MULTIPROC_DIR not in os.environ


async def test_one_process_serves_its_own() -> None:
    port = free_port()
    runner = await metrics.exporter("127.0.0.1", port)
    try:
        metrics.SIGN_OUTS.inc()
        async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            assert "gateway_sign_outs_total " in await response.text()
    finally:
        await runner.cleanup()


def test_request_metrics_keep_their_labelled_children() -> None:
    seen = metrics.RequestMetrics()
    seen.request("allow", 200, 0.001)
    seen.request("allow", 200, 0.001)
    assert len(seen._counted) == 1 and len(seen._timed) == 1


def test_a_multiprocess_directory_set_by_someone_else_is_ignored() -> None:
    """Only the parent of --workers sets it; anything else would have values written where nobody reads them."""
    code = "from gateway.ops import metrics; metrics.SIGN_OUTS.inc(); import os; print(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics"}
    env.pop("GATEWAY_METRICS_DIR", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "None", result.stderr
