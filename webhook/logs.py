"""Structured logs: one JSON object per line on stderr.

Log collectors (Loki, Cloud Logging, `kubectl logs | jq`) index JSON fields, so a decision is
logged as `{"event": "mutated", "namespace": ..., "pod": ..., "mode": ...}` rather than as prose.
Fields come from `extra={"fields": {...}}`; uvicorn's own loggers go through the same formatter.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final

_FIELDS_ATTR: Final = "fields"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields, "exc"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, _FIELDS_ATTR, None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a structured log call: `log.info("mutated", extra=fields(pod=name))`."""
    return {_FIELDS_ATTR: values}


def configure(level: str = "info") -> None:
    """Route the root logger and uvicorn's loggers to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
