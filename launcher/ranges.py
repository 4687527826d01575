"""HTTP `Range` handling for instance logs (contracts §5.5), as a pure function of header and size.

The log endpoint is how the controller tails an instance's output (`Range: bytes=<next>-`), so the
status codes are part of the wire contract: 200 without `Range`, 206 for one satisfiable range,
400 for anything we do not serve (suffix ranges, multiple ranges, garbage, end before start) and
416 when the start lies at or past the end of the file. One deliberate improvement
(reference-differences C4): an empty log read without `Range` is a 200 with an empty body, not a
416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_CHUNK: Final = 1 << 20
"""At most this many bytes (1 MiB) are returned for a request without an explicit end."""

_RANGE: Final = re.compile(r"^bytes=([0-9]+)-([0-9]+)?$")
_MAX_DIGITS: Final = 18
"""Longer positions are read as "beyond any log": `int` refuses more than 4,300 digits, and no
file is 10**18 bytes."""


def _position(digits: str) -> int:
    """A byte position from its decimal digits, capped above any real file size."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= _MAX_DIGITS else 10**_MAX_DIGITS


@dataclass(frozen=True, slots=True)
class Slice:
    """Serve bytes `start` .. `end` inclusive (`length` may be 0 only for an empty log)."""

    status: int
    start: int
    end: int
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def headers(self) -> dict[str, str]:
        headers = {"Accept-Ranges": "bytes"}
        if self.length > 0:
            headers["Content-Range"] = f"bytes {self.start}-{self.end}/{self.total}"
        return headers


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer: 400 (bad header) or 416 (start not below the size)."""

    status: int
    detail: str
    total: int

    def headers(self) -> dict[str, str]:
        if self.status == 416:
            return {"Content-Range": f"bytes */{self.total}"}
        return {}


def plan(range_header: str | None, total: int) -> Slice | Refusal:
    """Decides what a log request returns, given its `Range` header and the current log size."""
    if range_header is None:
        if total == 0:
            return Slice(status=200, start=0, end=-1, total=0)
        return Slice(status=200, start=0, end=min(total, MAX_CHUNK) - 1, total=total)
    match = _RANGE.match(range_header.strip())
    if match is None:
        return Refusal(
            status=400,
            detail=f"Invalid Range header {range_header!r}: expected 'bytes=START-' or "
            "'bytes=START-END' (one range; suffix ranges are not supported)",
            total=total,
        )
    start = _position(match.group(1))
    end_text = match.group(2)
    if end_text is not None and _position(end_text) < start:
        return Refusal(
            status=400,
            detail=f"Invalid Range header {range_header!r}: end {end_text} is before start {start}",
            total=total,
        )
    if start >= total:
        return Refusal(
            status=416,
            detail=f"Requested range start {start} is not below the log size {total}",
            total=total,
        )
    end = total - 1 if end_text is None else min(_position(end_text), total - 1)
    if end_text is None:
        end = min(end, start + MAX_CHUNK - 1)
    return Slice(status=206, start=start, end=end, total=total)
