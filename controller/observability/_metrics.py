"""The controllers' Prometheus metrics, with the reference's names and labels (contracts §12).

Dashboards and alerts written for the reference keep working because every name, label and
bucket below is the reference's. All live on a registry per controller process (never the
global default one), so tests and benchmarks can run several controllers in one process.

| Metric | Labels |
|---|---|
| `fma_dpc_innerqueue_{adds_total,depth,retries_total}` | `node` |
| `fma_dpc_innerqueue_{queue,work}_duration_seconds` | `node` |
| `fma_requester_count` | `isc_name` |
| `fma_isc_count` | `launcher_config_name` |
| `fma_duality` | `exported_namespace`, `requester_name`, `exported_pod`, |
|  | `exported_container`, `instance_id`, `UUID`, `node` |
| `fma_actuation_seconds` | `exported_namespace`, `path`, `instancesDeleted`, `isc_name` |
| `fma_http_latency_seconds` | `purpose`, `method`, `exported_namespace`, `isc_name`, |
|  | `status_code` |
| `fma_launcher_create_seconds` | `exported_namespace`, `lcfg_name`, `success` |
| `fma_launcher_pod_count` | `lcfg_name`, `phase` |

Ours, beyond the reference: `leader_election_master_status{name}` (client-go's name: 1 while
this replica leads), `fma_informer_synced{resource}` and `fma_informer_lists_total{resource}`
(a growing list count means repeated 410s), `fma_gpu_prefetch_total{outcome}` (GPU queries
asked ahead of the passes, `controller/reconciler/_prefetch.py`), plus the standard process
and Python metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

QUEUE_BUCKETS: Final = (0.015625, 0.0625, 0.25, 1.0, 4.0, 16.0, 64.0)
"""`ExponentialBuckets(1/64, 4, 7)`."""
ACTUATION_BUCKETS: Final = (0, 1, 3, 5, 7.5, 10, 15, 30, 60, 120, 240, 480, 960, 1920)
HTTP_BUCKETS: Final = (0.001, 0.01, 0.1, 1, 2, 3, 5, 10, 30, 90, 270, 810)
LAUNCHER_CREATE_BUCKETS: Final = (0.001, 0.01, 0.1, 1, 2, 3, 4, 5)
DPC_QUEUE_PREFIX: Final = "fma_dpc_innerqueue"


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and GC collectors (what the default one has)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class QueuePrometheusMetrics:
    """`kube.QueueMetrics` as Prometheus series `<prefix>_*{<label_name>}`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        prefix: str = DPC_QUEUE_PREFIX,
        label_name: str = "node",
    ) -> None:
        labels = (label_name,)
        self.adds = Counter(
            f"{prefix}_adds", "Unique adds to the work queue", labels, registry=registry
        )
        self.depth = Gauge(
            f"{prefix}_depth", "Ready keys in the work queue", labels, registry=registry
        )
        self.queue_duration = self._seconds(
            registry,
            f"{prefix}_queue_duration_seconds",
            "Seconds from the first unique add of a key to its dequeue",
            labels,
        )
        self.retries = Counter(
            f"{prefix}_retries", "Rate-limited re-adds", labels, registry=registry
        )
        self.work_duration = self._seconds(
            registry, f"{prefix}_work_duration_seconds", "Seconds a worker spent on one key", labels
        )

    @staticmethod
    def _seconds(
        registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...]
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=QUEUE_BUCKETS, registry=registry)

    def added(self, label: str) -> None:
        self.adds.labels(label).inc()

    def depth_changed(self, label: str, delta: int) -> None:
        self.depth.labels(label).inc(delta)

    def queued(self, label: str, seconds: float) -> None:
        self.queue_duration.labels(label).observe(seconds)

    def worked(self, label: str, seconds: float) -> None:
        self.work_duration.labels(label).observe(seconds)

    def retried(self, label: str) -> None:
        self.retries.labels(label).inc()


class ControllerMetrics:
    """Every metric of contracts §12 (the queue's included), on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.queue = QueuePrometheusMetrics(r)
        self.requester_count = Gauge(
            "fma_requester_count", "Requesters naming each ISC", ("isc_name",), registry=r
        )
        self.isc_count = Gauge(
            "fma_isc_count", "ISCs per LauncherConfig", ("launcher_config_name",), registry=r
        )
        self.duality = Gauge(
            "fma_duality",
            "1 while a requester is bound to a launcher instance (one series per GPU)",
            (
                "exported_namespace",
                "requester_name",
                "exported_pod",
                "exported_container",
                "instance_id",
                "UUID",
                "node",
            ),
            registry=r,
        )
        self.actuation_seconds = Histogram(
            "fma_actuation_seconds",
            "Requester container start to the reply to the first positive readiness relay",
            ("exported_namespace", "path", "instancesDeleted", "isc_name"),
            buckets=ACTUATION_BUCKETS,
            registry=r,
        )
        self.http_latency_seconds = Histogram(
            "fma_http_latency_seconds",
            "Latency of the controller's HTTP calls to launchers, instances and requesters",
            ("purpose", "method", "exported_namespace", "isc_name", "status_code"),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.launcher_create_seconds = Histogram(
            "fma_launcher_create_seconds",
            "apiserver Create latency of launcher Pods",
            ("exported_namespace", "lcfg_name", "success"),
            buckets=LAUNCHER_CREATE_BUCKETS,
            registry=r,
        )
        self.launcher_pod_count = Gauge(
            "fma_launcher_pod_count", "Launcher Pods by phase", ("lcfg_name", "phase"), registry=r
        )
        self.gpu_prefetch = Counter(
            "fma_gpu_prefetch_total",
            "GPU queries asked ahead of a requester's pass, by what the pass found: the answer "
            "(hit), a call under way (joined), or nothing it could use (missed)",
            ("outcome",),
            registry=r,
        )
        self.leader = Gauge(
            "leader_election_master_status",
            "1 while this replica holds the lease",
            ("name",),
            registry=r,
        )


class InformerState(Protocol):
    """What the informer collector reads (`kube.Informer` has it)."""

    @property
    def has_synced(self) -> bool: ...

    @property
    def lists(self) -> int: ...


class InformerCollector(Collector):
    """`fma_informer_synced` and `fma_informer_lists_total`, read at scrape time."""

    def __init__(self, informers: Callable[[], Mapping[str, InformerState]]) -> None:
        self._informers = informers

    def collect(self) -> Iterator[Metric]:
        synced = GaugeMetricFamily(
            "fma_informer_synced", "1 once the informer has listed", labels=("resource",)
        )
        lists = CounterMetricFamily(
            "fma_informer_lists", "Full lists made by the informer", labels=("resource",)
        )
        for name, informer in sorted(self._informers().items()):
            synced.add_metric((name,), 1.0 if informer.has_synced else 0.0)
            lists.add_metric((name,), float(informer.lists))
        yield synced
        yield lists

    def describe(self) -> Iterator[Metric]:
        return iter(())
