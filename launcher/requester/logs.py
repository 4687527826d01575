"""Structured logs of the stub: one JSON object per line on **stderr**.

stdout is not ours: it carries the relayed vLLM log (`set-log`), which is what a user reads with
`kubectl logs` of the requester Pod. The line format is the one fma's other processes use
(`{"ts", "level", "logger", "msg", ...fields}`), so one log query reads all of them.
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
    """`extra=` for a structured call: `log.info("ready", extra=fields(ready=True))`."""
    return {_FIELDS_ATTR: values}


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
