"""The launcher-populator's settings: contracts §10 flags, with the reference's defaults."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from contract.objects import POPULATOR_NAME
from controller.core import PopulatorSettings

COMPONENT: Final = POPULATOR_NAME
"""Event source and field manager (contracts §2.4)."""
_CORE: Final = PopulatorSettings()
"""The thresholds' defaults live with the decision core that applies them."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How the populator runs; seconds throughout."""

    namespace: str
    """The focus namespace (`--namespace`): LPPs, LCs and launcher Pods live here."""
    expectation_timeout_s: float = 5.0
    """`--expectation-timeout`: how long a key waits for the cache to show its own writes
    before it LISTs its Pods from the apiserver."""
    stuck_scheduling_threshold_s: float = _CORE.stuck_scheduling_threshold_s
    """`--stuck-scheduling-threshold` (see `controller.core.PopulatorSettings`)."""
    stuck_starting_threshold_s: float = _CORE.stuck_starting_threshold_s
    """`--stuck-starting-threshold` (see `controller.core.PopulatorSettings`)."""
    keep_sleepers_s: float = _CORE.keep_sleepers_s
    """`--keep-sleepers` (see `controller.core.PopulatorSettings`)."""
    workers: int = 4
    """Keys handled at once (one key is never handled by two workers)."""
    with_reflector: bool = False
    """Add the reference's `state-change-reflector` sidecar to launchers (reference-differences
    C1)."""

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ValueError("the populator needs a namespace")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")

    @property
    def thresholds(self) -> PopulatorSettings:
        """The stuck thresholds, as the decision core takes them."""
        return PopulatorSettings(
            stuck_scheduling_threshold_s=self.stuck_scheduling_threshold_s,
            stuck_starting_threshold_s=self.stuck_starting_threshold_s,
            keep_sleepers_s=self.keep_sleepers_s,
        )


_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds of a Go duration (`5s`, `2m`, `7m30s`, `1.5h`, `250ms`); a bare number is seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = _go_duration(value)
    if not 0 <= seconds < math.inf:
        raise ValueError(f"invalid duration {text!r}: must be a non-negative number of seconds")
    return seconds


def _go_duration(value: str) -> float:
    total, position = 0.0, 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise ValueError(f"invalid duration {value!r} (examples: 5s, 2m, 7m30s)")
    return total
