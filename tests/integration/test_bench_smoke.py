"""bench/run.py end to end with a tiny load: every row measured, results written (a few seconds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("direct", "bare aiohttp proxy", "gateway (plain proxy)", "nginx")


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if not missing:
        return
    reason = f"missing system tools: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must apt-get install them)")  # design §11: no silent skips in CI
    pytest.skip(reason)


@pytest.mark.timeout(60)
def test_bench_runs_every_target(tmp_path: Path) -> None:
    _require("wrk", "nginx")
    cmd = [sys.executable, "bench/run.py", "--duration", "1", "--connections", "4", "--warmup", "0", "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stdout + result.stderr
    table_rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    for row in ROWS:
        assert row in table_rows, result.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    measured = {r["target"]: r for r in data["results"]}
    assert set(ROWS) <= set(measured)
    for row in ROWS:
        assert measured[row]["requests_per_s"] > 0
        assert measured[row]["errors"] == 0
        assert 0 < measured[row]["p50_ms"] <= measured[row]["p99_ms"]
    assert "| gateway (plain proxy) |" in (tmp_path / "results.md").read_text()
