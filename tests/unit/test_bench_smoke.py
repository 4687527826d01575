"""The latency benchmark runs end to end (tiny duration, no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_webhook_latency_bench_runs(repo_root: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(repo_root / "bench" / "webhook_latency.py"),
            "--rate=50",
            "--duration=0.4",
            "--warmup=0",
            "--connections=2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["errors"] == 0
    assert report["requests"] == 20
    for key in ("p50_ms", "p99_ms", "rate", "achieved_rate"):
        assert isinstance(report[key], float), key
    assert report["server"]["p99_ms"] >= report["server"]["p50_ms"]
