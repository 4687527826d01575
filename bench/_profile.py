"""Sampling profiles of running processes with py-spy (`pip install py-spy`), for the reports.

    with profiling(py_spy, {"controller": pid}, out_dir) as profiles:
        ...  # the phase to look at
    profiles.summary()  # per process: samples, top frames by own time and by total time

py-spy writes collapsed stacks (`--format raw`: `frame;frame;... count` per line); the summary
reads them back. Idle time (a thread waiting in `select`/`epoll`) is left out with `--idle` off,
so the numbers are where CPU went.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Profiles:
    """The recordings of each process; several blocks of one process add up (`extend`)."""

    files: dict[str, list[Path]] = field(default_factory=dict)

    def extend(self, other: Profiles) -> None:
        for name, paths in other.files.items():
            self.files.setdefault(name, []).extend(paths)

    def summary(self, top: int = 12) -> dict[str, Any]:
        return {name: _summarize(paths, top) for name, paths in self.files.items()}


def _summarize(paths: list[Path], top: int) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    try:
        lines = [line for path in paths for line in path.read_text().splitlines()]
    except FileNotFoundError as exc:
        return {"error": f"no profile written to {exc.filename}"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count

    def share(counter: collections.Counter[str]) -> dict[str, float]:
        return {f: round(100 * c / samples, 1) for f, c in counter.most_common(top)}

    return {
        "samples": samples,
        "own_percent": share(own) if samples else {},
        "total_percent": share(total) if samples else {},
        "files": [str(path) for path in paths],
    }


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` → `func (module.py)`."""
    name, _, where = frame.partition(" (")
    module = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({module})" if module else name


@contextlib.contextmanager
def profiling(
    py_spy: Path | None, pids: Mapping[str, int], out_dir: Path, *, tag: str = ""
) -> Iterator[Profiles]:
    """Records each process while the block runs (nothing when `py_spy` is None).

    `tag` names the block's files (`<process><tag>.collapsed`), for several blocks in one
    directory."""
    profiles = Profiles()
    if py_spy is None:
        yield profiles
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = []
    for name, pid in pids.items():
        path = out_dir / f"{name}{tag}.collapsed"
        argv = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                "--nonblocking", "--output", str(path)]  # fmt: skip
        recorders.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        profiles.files[name] = [path]
    time.sleep(0.5)  # attached
    try:
        yield profiles
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
