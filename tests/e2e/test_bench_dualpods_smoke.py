"""The dual-pods benchmarks run end to end at a tiny size and print their JSON (no timing
assertions: the numbers of a tiny run on a shared CI machine mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _run(repo_root: Path, script: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(repo_root / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["launcher", "direct"])
def test_hot_path_bench_runs(repo_root: Path, mode: str) -> None:
    report = _run(
        repo_root, "hot_path.py", "--mode", mode, "--requesters", "2", "--rounds", "1",
        "--timeout", "120",
    )  # fmt: skip
    assert "error" not in report, report
    assert report["hot_overhead"]["count"] == 2
    for key in ("p50_ms", "p99_ms"):
        assert isinstance(report["hot_overhead"][key], float), key
    assert report["breakdown"]["controller_ms"]["count"] == 2  # the stubs' logs were found
    paths = report["paths_observed"]
    assert paths["hot"] == 2 and paths["cold"] == 2
    assert paths["warm"] == (2 if mode == "launcher" else 0)
    assert report["controller_peak_rss_mb"] > 0


@pytest.mark.timeout(300)
def test_scale_bench_runs(repo_root: Path) -> None:
    report = _run(repo_root, "scale.py", "--requesters", "4", "--nodes", "2", "--timeout", "120")
    assert report["ready_at_the_end"] == 4
    assert isinstance(report["all_ready_s"], float)
    assert report["providers"] == 4
    assert report["controller_peak_rss_mb"] > 0 and report["controller_rss_samples"] > 0
    assert report["setup"]["requester_stub"] == "in-process"
    # The hot round: all released, as many again, each bound hot, writes counted per half.
    hot = report["hot_round"]
    assert hot["ready_at_the_end"] == 4
    assert report["paths"] == {"cold": 4, "hot": 4}
    assert hot["apiserver_writes_hot"]["per_actuation"] > 0
    assert hot["apiserver_writes_unbind"]["by_kind"]["DELETE pods"] >= 1
