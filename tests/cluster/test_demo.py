"""The README's demo command runs to the end and leaves no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil


def test_demo_runs_and_cleans_up(repo_root: Path, tmp_path: Path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    result = subprocess.run(
        [sys.executable, str(repo_root / "hack" / "demo.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gpu-node-1   True    2" in result.stdout
    assert "inferenceserverconfig.fma.llm-d.ai/tiny" in result.stdout
    assert "done; nothing left running" in result.stdout
    survivors = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.pid not in before and str(tmp_path) in " ".join(p.info["cmdline"] or ())
    ]
    assert survivors == []
