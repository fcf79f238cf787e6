"""bench/run.py and bench/connections.py end to end with a tiny load, so that `make bench` cannot rot:
every row measured without errors, results written (about 30 s together)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every kind of row, one of them with --workers 2; the other 2-worker rows start the same way.
ROWS = {
    "direct": "direct",
    "bare": "bare aiohttp proxy",
    "nginx": "nginx",
    "plain": "gateway (plain proxy)",
    "cookie": "gateway signed in (cookie)",
    "redis": "gateway signed in (redis)",
    "bearer": "gateway bearer",
    "auth-direct": "gateway /oauth2/auth direct",
    "auth-nginx": "nginx auth_request → /oauth2/auth",
    "cookie-w2": "gateway signed in (cookie), 2 workers",
}


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if not missing:
        return
    reason = f"missing system tools: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must apt-get install them)")  # design §11: no silent skips in CI
    pytest.skip(reason)


@pytest.mark.timeout(120)
def test_bench_runs_every_row(tmp_path: Path) -> None:
    _require("wrk", "nginx", "redis-server")
    cmd = [sys.executable, "bench/run.py", "--duration", "1", "--rounds", "1", "--connections", "4", "--warmup", "0",
           "--rows", ",".join(ROWS), "--out", str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    table_rows = {line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ")}
    assert set(ROWS.values()) <= table_rows, output
    data = json.loads((tmp_path / "results.json").read_text())
    measured = {r["key"]: r for r in data["results"]}
    assert set(measured) == set(ROWS)
    for key, name in ROWS.items():
        row = measured[key]
        assert row["target"] == name
        assert len(row["rounds"]) == 1
        assert row["requests_per_s"] > 0, row
        assert row["errors"] == 0, (row, output)
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert {c["key"] for c in data["targets"]} == {"plain", "cookie", "redis", "bearer", "auth-direct"}
    machine = data["environment"]["machine"]
    assert machine["cpus_usable"] >= 1 and machine["python"] and machine["aiohttp"]
    assert "| gateway signed in (redis) |" in (tmp_path / "results.md").read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plot" in output
    else:
        assert (tmp_path / "results.png").stat().st_size > 0


@pytest.mark.timeout(90)
def test_connections_bench_holds_keepalive_and_websockets(tmp_path: Path) -> None:
    cmd = [sys.executable, "bench/connections.py", "--keepalive", "40", "--websockets", "40", "--hold", "0.5",
           "--out", str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "connections.json").read_text())
    assert data["keepalive_open"] == 40 and data["websockets_open"] == 40, data
    assert data["rss_keepalive_mb"] > 0 and data["rss_websockets_mb"] > 0
    assert not data["failures"]
