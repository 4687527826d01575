"""Timestamps in the two formats the API uses (metav1.Time, metav1.MicroTime) and CRI logs use."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime | None = None) -> str:
    """metav1.Time: whole seconds, `Z` suffix."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: dt.datetime | None = None) -> str:
    """metav1.MicroTime (Lease renewTime): microseconds."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(moment: dt.datetime | None = None) -> str:
    """The CRI log line timestamp (RFC3339Nano; Python has microseconds, padded)."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def parse_rfc3339(text: str) -> dt.datetime:
    """Parses any of the formats above (and offsets other than Z)."""
    cleaned = text.replace("Z", "+00:00")
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        zone = tail[len(digits) :]
        cleaned = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return dt.datetime.fromisoformat(cleaned)
