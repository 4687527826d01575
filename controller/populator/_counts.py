"""`fma_launcher_pod_count{lcfg_name, phase}`: launcher Pods per LC and phase (contracts §12).

Each key's pass reports the phase counts of its Pods; the gauge has no node label, so the
counts are summed over the LC's keys. Every phase of an LC is exported (0 included) while the
LC exists or any of its launchers remains; once the LC is gone and its last launcher too, the
LC's series are removed, so a deleted LC does not linger on dashboards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, get_args

from prometheus_client import Gauge

from controller.core import LauncherPhase as Phase
from controller.populator._keys import LauncherKey

PHASES: Final[tuple[Phase, ...]] = get_args(Phase)


class PodCounts:
    """Per-key phase counts, summed into the gauge per LC."""

    def __init__(self, gauge: Gauge, lc_exists: Callable[[str], bool]) -> None:
        self._gauge = gauge
        self._lc_exists = lc_exists
        self._by_key: dict[LauncherKey, dict[Phase, int]] = {}
        self._exported: set[str] = set()

    def report(self, key: LauncherKey, counts: Mapping[Phase, int]) -> None:
        """The phase counts of `key`'s Pods as of its latest pass."""
        if any(counts.values()):
            self._by_key[key] = dict(counts)
        else:
            self._by_key.pop(key, None)
        self.refresh(key.lc)

    def refresh(self, lc: str) -> None:
        """Re-export `lc`'s series (after a report, or when the LC appeared or went away)."""
        totals = dict.fromkeys(PHASES, 0)
        for key, counts in self._by_key.items():
            if key.lc == lc:
                for phase, count in counts.items():
                    totals[phase] += count
        if not self._lc_exists(lc) and not any(totals.values()):
            if lc in self._exported:
                for phase in PHASES:
                    self._gauge.remove(lc, phase)
                self._exported.discard(lc)
            return
        for phase, count in totals.items():
            self._gauge.labels(lc, phase).set(count)
        self._exported.add(lc)

    def total(self, lc: str, phase: Phase) -> int:
        return sum(c.get(phase, 0) for k, c in self._by_key.items() if k.lc == lc)
