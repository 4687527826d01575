"""Container logs on disk, in the kubelet's layout and the CRI format, and a reader for them.

Layout (like /var/log/pods): `<state>/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`, one file
per container instance, `n` being the instance's restartCount, so `--previous` is file n-1. Each
line is `<RFC3339Nano> <stdout|stderr> <F|P> <content>` (P: a partial line continued by the next
record). When an instance ends the kubelet writes `<n>.exit`, which tells followers to stop.

The reader is shared by the kubelet's HTTPS API (what `kubectl logs` reaches through the
apiserver) and the `fma-hollow-kubelet logs` command, which works without an apiserver.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from localcluster.kubelet.clock import parse_rfc3339, rfc3339_nano

Stream = Literal["stdout", "stderr"]
_MAX_LINE = 16 * 1024
_READ_CHUNK = 64 * 1024


class LogNotFoundError(Exception):
    """No such pod, container or instance; the message is what `kubectl logs` would say."""


def pod_log_dir(state_dir: Path, namespace: str, pod: str, uid: str) -> Path:
    return state_dir / "pods" / f"{namespace}_{pod}_{uid}"


class LogWriter:
    """Writes one container instance's stdout and stderr as CRI records."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = path.open("ab", buffering=0)

    def record(self, stream: Stream, content: bytes, *, partial: bool = False) -> None:
        tag = b"P" if partial else b"F"
        head = f"{rfc3339_nano()} {stream} ".encode()
        self._file.write(head + tag + b" " + content + b"\n")

    async def pump(self, reader: asyncio.StreamReader, stream: Stream) -> None:
        """Copies a pipe into records until EOF; lines longer than 16 KiB are split (P)."""
        lines = LineRecorder(self, stream)
        while chunk := await reader.read(_READ_CHUNK):
            lines.feed(chunk)
        lines.end()

    def finish(self, exit_code: int, finished_at: str) -> None:
        """Closes the file and marks the instance ended (followers stop at the end of it)."""
        self._file.close()
        marker = self.path.with_suffix(".exit")
        marker.write_text(json.dumps({"exitCode": exit_code, "finishedAt": finished_at}))

    def close(self) -> None:
        self._file.close()


class LineRecorder:
    """Cuts one stream's bytes into records: a record per line, lines longer than 16 KiB split
    (P), and what is left at the end written as a partial record."""

    def __init__(self, writer: LogWriter, stream: Stream) -> None:
        self._writer = writer
        self._stream = stream
        self._pending = b""

    def feed(self, data: bytes) -> None:
        pending = self._pending + data
        while (newline := pending.find(b"\n")) != -1 or len(pending) >= _MAX_LINE:
            if newline == -1 or newline >= _MAX_LINE:
                self._writer.record(self._stream, pending[:_MAX_LINE], partial=True)
                pending = pending[_MAX_LINE:]
            else:
                self._writer.record(self._stream, pending[:newline])
                pending = pending[newline + 1 :]
        self._pending = pending

    def end(self) -> None:
        if self._pending:
            self._writer.record(self._stream, self._pending, partial=True)
            self._pending = b""


@dataclass(frozen=True)
class LogOptions:
    """The query of GET /containerLogs and of `kubectl logs`."""

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    since_time: dt.datetime | None = None


def instances(container_dir: Path) -> list[Path]:
    """The container's log files, oldest instance first."""
    files = [p for p in container_dir.glob("*.log") if p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def select_instance(container_dir: Path, container: str, pod: str, previous: bool) -> Path:
    files = instances(container_dir)
    if previous:
        if len(files) < 2:
            raise LogNotFoundError(
                f'previous terminated container "{container}" in pod "{pod}" not found'
            )
        return files[-2]
    if not files:
        raise LogNotFoundError(
            f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
        )
    return files[-1]


def find_container_dir(
    state_dir: Path, namespace: str, pod: str, container: str | None, uid: str | None = None
) -> Path:
    """The log directory of a container; the newest Pod of that name when uid is not given."""
    pattern = f"{namespace}_{pod}_{uid or '*'}"
    pods = sorted((state_dir / "pods").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not pods:
        raise LogNotFoundError(f'pods "{pod}" not found (namespace {namespace})')
    pod_dir = pods[-1]
    containers = sorted(p.name for p in pod_dir.iterdir() if p.is_dir())
    if container is None:
        if len(containers) != 1:
            raise LogNotFoundError(
                f"a container name must be specified for pod {pod}, choose one of: "
                f"[{' '.join(containers)}]"
            )
        container = containers[0]
    if container not in containers:
        raise LogNotFoundError(f"container {container} is not valid for pod {pod}")
    return pod_dir / container


def iter_log(path: Path, options: LogOptions) -> Iterator[bytes | None]:
    """The log's content as `kubectl logs` prints it; yields None while following and idle.

    The caller sleeps (synchronously or not) on None and asks again: one generator serves both
    the CLI and the asyncio HTTPS server.
    """
    budget = options.limit_bytes
    with path.open("rb") as handle:
        handle.seek(_tail_offset(path, options.tail_lines))
        buffer = b""
        ended = False
        while True:
            chunk = handle.read(_READ_CHUNK)
            if chunk:
                buffer += chunk
                lines = buffer.split(b"\n")
                buffer = lines.pop()
                out = b"".join(_render(line, options) for line in lines)
                if budget is not None:
                    out, budget = out[:budget], budget - len(out[:budget])
                if out:
                    yield out
                if budget == 0:
                    return
                continue
            if not options.follow or ended:
                return
            # The writer closes the file before it writes the marker: once the marker exists,
            # one more read sees everything.
            ended = path.with_suffix(".exit").exists()
            if not ended:
                yield None


def _render(line: bytes, options: LogOptions) -> bytes:
    parts = line.split(b" ", 3)
    if len(parts) < 4:
        return b""
    stamp, _stream, tag, content = parts
    if options.since_time is not None and parse_rfc3339(stamp.decode()) < options.since_time:
        return b""
    text = content + (b"\n" if tag == b"F" else b"")
    return stamp + b" " + text if options.timestamps else text


def _tail_offset(path: Path, tail_lines: int | None) -> int:
    """The file offset where the last `tail_lines` records begin (0: from the start)."""
    if tail_lines is None or tail_lines < 0:
        return 0
    size = path.stat().st_size
    with path.open("rb") as handle:
        position, newlines = size, 0
        while position > 0:
            step = min(_READ_CHUNK, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            for index in range(len(block) - 1, -1, -1):
                if block[index] == 0x0A:
                    newlines += 1
                    if newlines > tail_lines:
                        return position + index + 1
    return 0
