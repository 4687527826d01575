"""Warm start benchmark: a launcher-forked vLLM instance against a cold vLLM process.

Both paths start the same tiny model with the same options and environment and are timed from
the request (the launcher's PUT, or the `Popen` of `python -m vllm.entrypoints.openai.api_server`)
to the first `GET /health` 200. Runs alternate (and swap order every round) so that load from
other processes on the machine hits both alike. One untimed round first fills the on-disk caches
(vLLM's model-info cache) for both. The launcher's own start (importing vLLM once, in its fork
server) is not timed: paying it once per Pod instead of once per instance is the point.

    .venv/bin/python bench/warm_start.py [--runs 3] [--model DIR]

prints one JSON object with both medians, the ratio cold/forked (target: at least 8) and what
the fork server did once so that forks need not: its import time, the heap it froze
(`gc.freeze`), and the modules the first, untimed instance taught it (`launcher.preload`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localcluster.processes import ManagedProcess, free_port, wait_until  # noqa: E402
from localcluster.testing import tiny_model  # noqa: E402 - after making the repo importable

TARGET_RATIO = 8.0
OPTIONS = (
    "--enforce-eager --dtype float32 --max-model-len 512 --served-model-name tiny "
    "--distributed-executor-backend uni"
)


def _env(work: Path) -> dict[str, str]:
    """Identical for both paths (the launcher would add these two defaults anyway)."""
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_SERVER_DEV_MODE": "1",
        "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
        "TMPDIR": str(work / "tmp"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _time_until_healthy(port: int, started: float, alive: Callable[[], bool]) -> float:
    while not _healthy(port):
        if not alive():
            raise RuntimeError(f"the vLLM server on port {port} exited before /health answered")
        if time.perf_counter() - started > 600:
            raise TimeoutError(f"no /health 200 on port {port} within 600 s")
        time.sleep(0.05)
    return time.perf_counter() - started


_TOOK = re.compile(
    r"\] (?P<what>[A-Za-z][^\]\n]*?) (?:took|takes) (?:[0-9.]+ GiB memory and )?"
    r"(?P<seconds>[0-9.]+) ?s"
)
"""vLLM's own timings in its log: `Loading weights took 0.01 seconds`, `Model loading took 0.00
GiB memory and 0.12 seconds`, `init engine (profile, create kv cache, warmup model) took 0.26
seconds`, `Memory profiling takes ...`."""


def phases(log: str) -> dict[str, float]:
    """The phases vLLM timed itself in `log` (what → seconds; the last of each)."""
    found: dict[str, float] = {}
    for match in _TOOK.finditer(log):
        found[match["what"].strip()] = float(match["seconds"])
    return found


def cold_start(model: Path, env: dict[str, str], work: Path) -> float:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--port",
        str(port),
        *OPTIONS.split(),
    ]
    path = work / f"cold-{port}.log"
    with path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=work
        )
        try:
            return _time_until_healthy(port, started, lambda: process.poll() is None)
        finally:
            _stop_group(process)
            LAST_PHASES["cold"] = phases(path.read_text(errors="replace"))


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # stragglers (EngineCore) after the leader
        os.killpg(process.pid, signal.SIGKILL)


def forked_start(launcher: str, model: Path, index: int) -> float:
    port = free_port()
    instance = f"bench-{index}"
    body = {"options": f"--model {model} --port {port} {OPTIONS}"}
    started = time.perf_counter()
    response = httpx.put(f"{launcher}/v2/vllm/instances/{instance}", json=body, timeout=60)
    response.raise_for_status()

    def alive() -> bool:
        state = httpx.get(f"{launcher}/v2/vllm/instances/{instance}", timeout=10).json()
        return bool(state["status"] == "running")

    try:
        return _time_until_healthy(port, started, alive)
    finally:
        log = httpx.get(f"{launcher}/v2/vllm/instances/{instance}/log", timeout=10)
        LAST_PHASES["forked"] = phases(log.text) if log.status_code < 300 else {}
        httpx.delete(f"{launcher}/v2/vllm/instances/{instance}", timeout=60)


def _launcher(work: Path, env: dict[str, str]) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "launcher",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--mock-gpus",
        "--log-dir",
        str(work),
    ]
    # Start times only; bench/control_auth.py measures what authentication adds to a call.
    open_env = {**env, "FMA_CONTROL_AUTH": "off"}
    process = ManagedProcess(
        "launcher", argv, log_path=work / "launcher.log", env=open_env, cwd=REPO
    )
    process.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until("launcher /readyz", ready, timeout=300, interval=0.2, process=process)
    return process, url


LAST_PHASES: dict[str, dict[str, float]] = {}
"""The phases of the last start of each path (`cold`, `forked`), as vLLM logged them."""


def run(runs: int, model: Path, work: Path) -> dict[str, Any]:
    env = _env(work)
    process, url = _launcher(work, env)
    forked: list[float] = []
    cold: list[float] = []
    try:
        cold_start(model, env, work)  # untimed: fills vLLM's on-disk caches for both paths
        forked_start(url, model, 0)
        for index in range(1, runs + 1):
            order = [("cold", cold), ("forked", forked)]
            for name, results in order if index % 2 else reversed(order):
                seconds = (
                    cold_start(model, env, work)
                    if name == "cold"
                    else forked_start(url, model, index)
                )
                results.append(round(seconds, 3))
                print(f"run {index} {name}: {seconds:.2f}s", file=sys.stderr, flush=True)
        readyz = httpx.get(url + "/readyz", timeout=10).json()
    finally:
        process.stop(grace_seconds=30)
    cold_median, forked_median = statistics.median(cold), statistics.median(forked)
    return {
        "model": str(model),
        "runs": runs,
        "cold_seconds": cold,
        "forked_seconds": forked,
        "cold_median_seconds": cold_median,
        "forked_median_seconds": forked_median,
        "ratio": round(cold_median / forked_median, 2),
        "target_ratio": TARGET_RATIO,
        # What the fork server did once, so that forks need not: its imports, the heap it froze,
        # and the modules the first (untimed) instance taught it, imported while it was idle.
        "forkserver": readyz.get("forkserver"),
        "preloaded_after_first_instance": readyz.get("preloaded"),
        # Where a start's time goes, by vLLM's own log lines, for the last start of each path
        # (the rest of a start is Python start-up and imports, which a fork skips).
        "phases_seconds": LAST_PHASES,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or tiny_model.build(tiny_model.default_model_dir())
    with tempfile.TemporaryDirectory(prefix="fma-warm-start-") as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args.runs, model, work), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
