"""Structured logs for every fma process: one JSON object per line on stderr.

Log collectors (Loki, Cloud Logging, `kubectl logs | jq`) index JSON fields, so a decision is
logged as `{"msg": "bound", "requester": ..., "launcher": ...}` rather than as prose, and one
query reads the webhook, the controller, the launcher and the requester stub alike. stderr,
because the requester stub's stdout carries the relayed vLLM log.

Fields come from `extra=fields(...)`. This package is the bottom layer: stdlib only, so the
requester stub, which runs in every requester Pod, pays nothing for it. `jsonlog.cli` holds the
entry points' other shared step, settings from parsed flags.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["JsonFormatter", "configure", "fields"]

_FIELDS_ATTR: Final = "fields"
_QUIET_BY_DEFAULT: Final = ("httpx", "httpcore")
"""Clients that log one line per request: probes and watches would drown everything else."""


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields, "exc"?}` on one line, UTC timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, _FIELDS_ATTR, None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a structured log call: `log.info("bound", extra=fields(pod=name))`."""
    return {_FIELDS_ATTR: values}


def configure(
    level: str = "info",
    *,
    quiet: Iterable[str] = _QUIET_BY_DEFAULT,
    adopt: Iterable[str] = (),
) -> None:
    """Routes the root logger to JSON lines on stderr.

    `quiet` loggers are raised to WARNING; `adopt` loggers (uvicorn's, which install handlers of
    their own) lose their handlers and propagate to the root, so they are formatted the same.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in adopt:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
