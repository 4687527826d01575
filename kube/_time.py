"""Kubernetes time stamps: `Time` (whole seconds, on Events) and `MicroTime` (on Leases).

Both are RFC 3339 in UTC with a `Z`; they differ only in precision, so they are written by one
function. The recorders that stamp objects take their wall clock as a parameter, `utc_now` by
default, so a test can fix the time.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The wall-clock time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def kube_time(moment: dt.datetime, *, micro: bool = False) -> str:
    """Kubernetes `Time`, or `MicroTime` (with microseconds) when `micro`."""
    return moment.astimezone(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    )
