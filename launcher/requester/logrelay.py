"""`POST /v1/set-log?startPos=N`: relay an instance's log to this stub's stdout, exactly once.

Whoever calls (the controller, reading the launcher's log endpoint) sends chunks of the instance
log with the byte offset each starts at. Chunks may overlap, repeat or come again after a retry;
the stub appends only the bytes beyond what it already accepted, so `kubectl logs` of the user's
Pod shows vLLM's log with no byte lost or doubled. A chunk that starts past the accepted length
would leave a hole, so it is refused (400) and the caller must resend from the accepted length.

`judge_chunk` decides (pure); `LogRelay` does, serialising chunks so that concurrent calls cannot
interleave, and advancing the accepted length only after the bytes were written.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Final, Protocol

_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class ChunkVerdict:
    """What to answer, and which bytes to append (empty when nothing is new or on error)."""

    status: int
    message: str
    new_bytes: bytes = b""
    accepted_after: int = 0


def judge_chunk(accepted: int, start_pos: str | None, body: bytes) -> ChunkVerdict:
    """The verdict for a chunk at `start_pos` when `accepted` bytes were taken so far."""
    if start_pos is None:
        return ChunkVerdict(400, "missing query parameter startPos\n", accepted_after=accepted)
    if not _INTEGER.fullmatch(start_pos):
        return ChunkVerdict(
            400, f"startPos {start_pos!r} is not an integer\n", accepted_after=accepted
        )
    start = int(start_pos)
    if start < 0:
        return ChunkVerdict(400, f"startPos {start} is negative\n", accepted_after=accepted)
    if start > accepted:
        return ChunkVerdict(
            400,
            f"startPos {start} is beyond the {accepted} bytes accepted so far; "
            f"resend from {accepted}\n",
            accepted_after=accepted,
        )
    end = start + len(body)
    if end <= accepted:
        return ChunkVerdict(200, "nothing new\n", accepted_after=accepted)
    return ChunkVerdict(200, "OK\n", new_bytes=body[accepted - start :], accepted_after=end)


class LogRelay:
    """The accepted length and the sink; one chunk at a time."""

    def __init__(self, sink: ByteSink, *, threaded: bool = True) -> None:
        """`threaded` writes from a worker thread, so a slow stdout reader cannot stall the
        event loop (and with it the probes); in-memory sinks need no thread."""
        self._sink = sink
        self._threaded = threaded
        self._lock = asyncio.Lock()
        self.accepted = 0

    async def offer(self, start_pos: str | None, body: bytes) -> ChunkVerdict:
        async with self._lock:
            verdict = judge_chunk(self.accepted, start_pos, body)
            if verdict.new_bytes:
                await self._write_through(verdict)
            return verdict

    async def _write_through(self, verdict: ChunkVerdict) -> None:
        """Write, then advance; if the caller is cancelled mid-write (server shutdown), the
        thread still finishes the write, so wait for it and count the bytes anyway."""
        if not self._threaded:
            self._write(verdict.new_bytes)
            self.accepted = verdict.accepted_after
            return
        write = asyncio.ensure_future(asyncio.to_thread(self._write, verdict.new_bytes))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait([write])
            if not write.cancelled() and write.exception() is None:
                self.accepted = verdict.accepted_after
            raise
        self.accepted = verdict.accepted_after

    def _write(self, data: bytes) -> None:
        self._sink.write(data)
        self._sink.flush()
