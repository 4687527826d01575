"""Structured logs: one `key=value` line per record on stderr (logfmt).

Fields passed as `extra={...}` become keys, so a line reads
`ts=2024-01-01T00:00:00.123Z level=info logger=...podworker msg="pod deleted" pod=ns/p uid=...`
and stays greppable in a test's kubelet log.
"""

from __future__ import annotations

import logging
import sys
from typing import ClassVar

from localcluster.kubelet.clock import rfc3339_micro

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _quote(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-_./:@,[]" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    LEVELS: ClassVar[dict[int, str]] = {
        10: "debug",
        20: "info",
        30: "warning",
        40: "error",
        50: "critical",
    }

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": rfc3339_micro(),
            "level": self.LEVELS.get(record.levelno, str(record.levelno)),
            "logger": record.name.removeprefix("localcluster.kubelet."),
            "msg": record.getMessage(),
        }
        fields.update(
            {
                k: v
                for k, v in record.__dict__.items()
                if k not in _STANDARD and not k.startswith("_")
            }
        )
        line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "kubernetes", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
