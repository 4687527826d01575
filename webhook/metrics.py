"""The webhook's Prometheus metrics, all named `fma_webhook_*`.

One `WebhookMetrics` per app, on a registry of its own, so tests (and a benchmark running two
servers in one process) never share counters through the global default registry.

| Metric | Labels | Meaning |
|---|---|---|
| `fma_webhook_requests_total` | `webhook`, `operation` | AdmissionReviews received |
| `fma_webhook_mutations_total` | `mode` | Pods rewritten into requesters (`launcher`/`direct`) |
| `fma_webhook_skips_total` | `reason` | Pods left unchanged, by reason category |
| `fma_webhook_denials_total` | `webhook`, `resource` | requests refused |
| `fma_webhook_errors_total` | `webhook`, `stage` | bad reviews (`decode`), bugs (`handler`) |
| `fma_webhook_request_duration_seconds` | `webhook` | handler time, decode to encode |
| `fma_webhook_cache_synced` | | 1 once every watch cache has listed |
| `fma_webhook_cache_objects` | `kind` | objects held per cache |
| `fma_webhook_certificate_reloads_total` | `result` | serving-certificate reloads (`ok`/`failed`) |
| `fma_webhook_certificate_expiry_timestamp_seconds` | | notAfter of the served certificate |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX: Final = "fma_webhook_"
"""The common start of every metric name here."""

# Admission calls are expected to take well under 5 ms; the apiserver's timeout is seconds.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class _CacheCollector(Collector):
    """Reads the cache's state at scrape time, so the admission path pays nothing for it."""

    def __init__(self, synced: Callable[[], bool], sizes: Callable[[], Mapping[str, int]]):
        self._synced = synced
        self._sizes = sizes

    def collect(self) -> Iterator[Metric]:
        synced = GaugeMetricFamily(
            f"{PREFIX}cache_synced", "1 once every watch cache has completed its first list"
        )
        synced.add_metric([], 1.0 if self._synced() else 0.0)
        yield synced
        objects = GaugeMetricFamily(
            f"{PREFIX}cache_objects", "Objects held by each watch cache", labels=["kind"]
        )
        for kind, size in sorted(self._sizes().items()):
            objects.add_metric([kind], float(size))
        yield objects


class WebhookMetrics:
    """The metric objects; handlers call `.labels(...).inc()` / `.observe()` on them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = self._counter(
            "requests", "AdmissionReviews received", "webhook", "operation"
        )
        self.mutations = self._counter("mutations", "Pods rewritten into requester stubs", "mode")
        self.skips = self._counter("skips", "Pods left unchanged, by reason category", "reason")
        self.denials = self._counter("denials", "Requests refused", "webhook", "resource")
        self.errors = self._counter(
            "errors", "Requests that failed to decode or to run", "webhook", "stage"
        )
        self.latency = Histogram(
            f"{PREFIX}request_duration_seconds",
            "Time from receiving an AdmissionReview to having its answer encoded",
            ["webhook"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.certificate_reloads = self._counter(
            "certificate_reloads", "Serving certificate reloads", "result"
        )
        self.certificate_expiry = Gauge(
            f"{PREFIX}certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix timestamp",
            registry=self.registry,
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        """The counter `fma_webhook_<name>_total` on this app's registry."""
        return Counter(PREFIX + name, doc, labels, registry=self.registry)

    def watch_cache(
        self, synced: Callable[[], bool], sizes: Callable[[], Mapping[str, int]]
    ) -> None:
        """Export the cache's sync state and sizes (read at scrape time)."""
        self.registry.register(_CacheCollector(synced, sizes))
