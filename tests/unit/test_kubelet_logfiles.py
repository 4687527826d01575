"""Container log files (CRI format) and the kubectl-logs-like reader."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from localcluster.kubelet.logfiles import (
    LogNotFoundError,
    LogOptions,
    LogWriter,
    find_container_dir,
    iter_log,
    pod_log_dir,
    select_instance,
)


def _read(path: Path, **options: object) -> bytes:
    return b"".join(c for c in iter_log(path, LogOptions(**options)) if c is not None)  # type: ignore[arg-type]


def _write(path: Path, lines: list[str]) -> LogWriter:
    writer = LogWriter(path)
    for line in lines:
        writer.record("stdout", line.encode())
    return writer


def test_records_and_reader_options(tmp_path: Path) -> None:
    path = tmp_path / "c" / "0.log"
    writer = _write(path, ["one", "two", "three"])
    writer.record("stderr", b"par", partial=True)
    writer.record("stderr", b"tial")
    writer.finish(0, "2024-01-01T00:00:00Z")
    assert _read(path) == b"one\ntwo\nthree\npartial\n"
    assert _read(path, tail_lines=2) == b"partial\n"  # two records: "par" (P) and "tial"
    assert _read(path, tail_lines=3) == b"three\npartial\n"
    assert _read(path, tail_lines=0) == b""
    assert _read(path, limit_bytes=5) == b"one\nt"
    stamped = _read(path, timestamps=True).splitlines()[0]
    assert stamped.endswith(b"Z one") and stamped[:4].isdigit()
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert _read(path, since_time=future) == b""
    assert path.with_suffix(".exit").exists()


def test_pump_splits_lines_and_keeps_partials(tmp_path: Path) -> None:
    path = tmp_path / "0.log"

    async def pump() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"a\nb")
        reader.feed_data(b"c\n" + b"x" * 20000 + b"\nend")
        reader.feed_eof()
        writer = LogWriter(path)
        await writer.pump(reader, "stdout")
        writer.close()

    asyncio.run(pump())
    assert _read(path) == b"a\nbc\n" + b"x" * 20000 + b"\nend"
    assert b" stdout P " in path.read_bytes()


def test_follow_yields_idle_markers_until_the_instance_ends(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    writer = _write(path, ["first"])
    reader = iter_log(path, LogOptions(follow=True))
    assert next(reader) == b"first\n"
    assert next(reader) is None
    writer.record("stdout", b"second")
    assert next(reader) == b"second\n"
    writer.record("stdout", b"last")
    writer.finish(1, "2024-01-01T00:00:00Z")
    assert list(reader) == [b"last\n"]


def test_locating_instances(tmp_path: Path) -> None:
    pod_dir = pod_log_dir(tmp_path, "ns", "web", "uid-1")
    for n in (0, 1, 2):
        _write(pod_dir / "app" / f"{n}.log", [f"run {n}"]).close()
    container_dir = find_container_dir(tmp_path, "ns", "web", None)
    assert container_dir == pod_dir / "app"
    assert select_instance(container_dir, "app", "web", previous=False).name == "2.log"
    assert select_instance(container_dir, "app", "web", previous=True).name == "1.log"
    (pod_dir / "sidecar").mkdir()
    with pytest.raises(LogNotFoundError, match=r"choose one of: \[app sidecar\]"):
        find_container_dir(tmp_path, "ns", "web", None)
    with pytest.raises(LogNotFoundError, match="previous terminated container"):
        select_instance(pod_dir / "sidecar", "sidecar", "web", previous=True)
    with pytest.raises(LogNotFoundError, match='pods "other" not found'):
        find_container_dir(tmp_path, "ns", "other", "app")
    with pytest.raises(LogNotFoundError, match="not valid"):
        find_container_dir(tmp_path, "ns", "web", "nope")
