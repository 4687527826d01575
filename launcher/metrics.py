"""Prometheus metrics of the launcher, on its own registry (one per app, so tests stay isolated).

- `fma_launcher_instances{phase}`: instances by phase, read from the manager at scrape time;
- `fma_launcher_instance_creates_total`: instances created (POST and PUT);
- `fma_launcher_instance_failures_total{cause}`: `exited`, `start_timeout` or `forkserver_lost`;
- `fma_launcher_instance_start_seconds`: create request → first `/health` 200;
- `fma_launcher_swaps_total{outcome}`: swaps (issue 16) `swapped`, `refused` (not compatible:
  nothing touched) or `failed` (vLLM failed a step or the check: the instance was deleted);
- `fma_launcher_swap_seconds`: the swap's vLLM calls and check, for those that swapped;
- `fma_launcher_canaries_total{at, outcome}`: the swap's check completion, taken `at` an
  engine's first start or a `swap`: `recorded` (the first answer for those files), `matched`,
  `differed` (the swap fails), `failed` (no answer; at a start, nothing is recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contract.launcher import PHASES

START_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600)
SWAP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class _PhaseCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fma_launcher_instances", "Instances of this launcher by phase.", labels=["phase"]
        )
        counts = self._counts()
        for phase in PHASES:
            family.add_metric([phase], counts.get(phase, 0))
        yield family


class LauncherMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.creates = Counter(
            "fma_launcher_instance_creates",
            "Instances created (POST and PUT).",
            registry=self.registry,
        )
        self.failures = Counter(
            "fma_launcher_instance_failures",
            "Instances that failed, by cause.",
            ["cause"],
            registry=self.registry,
        )
        self.start_seconds = Histogram(
            "fma_launcher_instance_start_seconds",
            "Seconds from the create request to the instance's first /health 200.",
            buckets=START_BUCKETS,
            registry=self.registry,
        )

        self.swaps = Counter(
            "fma_launcher_swaps",
            "Swaps of new weights into a sleeping instance, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.swap_seconds = Histogram(
            "fma_launcher_swap_seconds",
            "Seconds of a successful swap: its vLLM calls and its check.",
            buckets=SWAP_BUCKETS,
            registry=self.registry,
        )
        self.canaries = Counter(
            "fma_launcher_canaries",
            "Check completions of the swap, by when they were taken and how they compared.",
            ["at", "outcome"],
            registry=self.registry,
        )

    def watch_phases(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(_PhaseCollector(counts))
