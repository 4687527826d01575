"""`/metrics`, `/healthz`, `/readyz` over a real socket, the metric names, the public surface."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import controller.launcherapi
import controller.observability
import kube
from controller.observability import (
    ControllerMetrics,
    HealthChecks,
    InformerCollector,
    ObservabilityServer,
    ServerSettings,
    all_synced,
)


async def _get(server: ObservabilityServer, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.request(method, f"http://127.0.0.1:{server.port}{path}")


def test_endpoints_report_metrics_and_checks() -> None:
    async def main() -> dict[str, Any]:
        metrics = ControllerMetrics()
        metrics.queue.added("node-1")
        synced = {"pods": False, "nodes": True}
        readiness = HealthChecks()
        readiness.add("informers", all_synced(lambda: synced))
        server = ObservabilityServer(
            metrics.registry,
            readiness=readiness,
            settings=ServerSettings(host="127.0.0.1", port=0),
        )
        await server.start()
        try:
            out: dict[str, Any] = {
                "metrics": await _get(server, "/metrics"),
                "healthz": await _get(server, "/healthz"),
                "not_ready": await _get(server, "/readyz?verbose"),
                "missing": await _get(server, "/nope"),
                "post": await _get(server, "/healthz", "POST"),
            }
            synced["pods"] = True
            out["ready"] = await _get(server, "/readyz")
            out["ready_verbose"] = await _get(server, "/readyz?verbose")
        finally:
            await server.close()
        return out

    got = asyncio.run(main())
    assert got["metrics"].status_code == 200
    assert got["metrics"].headers["content-type"].startswith("text/plain; version=")
    assert 'fma_dpc_innerqueue_adds_total{node="node-1"} 1.0' in got["metrics"].text
    assert "process_resident_memory_bytes" in got["metrics"].text
    assert (got["healthz"].status_code, got["healthz"].text) == (200, "ok\n")
    assert got["not_ready"].status_code == 503
    assert got["not_ready"].text == "[-]informers failed: not synced: pods\ncheck failed\n"
    assert (got["ready"].status_code, got["ready"].text) == (200, "ok\n")
    assert got["ready_verbose"].text == "[+]informers ok\ncheck ok\n"
    assert got["missing"].status_code == 404
    assert got["post"].status_code == 405


def test_a_raising_check_fails_instead_of_breaking_the_endpoint() -> None:
    checks = HealthChecks()

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    checks.add("broken", broken)
    assert checks.report() == (False, "[-]broken failed: RuntimeError: boom\ncheck failed\n")
    with pytest.raises(ValueError, match="already registered"):
        checks.add("broken", broken)


def test_every_reference_metric_is_defined_with_its_labels() -> None:
    metrics = ControllerMetrics()
    names = {
        metric.name: metric
        for collector in (
            metrics.requester_count,
            metrics.isc_count,
            metrics.duality,
            metrics.actuation_seconds,
            metrics.http_latency_seconds,
            metrics.launcher_create_seconds,
            metrics.launcher_pod_count,
        )
        for metric in collector.describe()
    }
    assert sorted(names) == [
        "fma_actuation_seconds",
        "fma_duality",
        "fma_http_latency_seconds",
        "fma_isc_count",
        "fma_launcher_create_seconds",
        "fma_launcher_pod_count",
        "fma_requester_count",
    ]
    metrics.actuation_seconds.labels("ns", "hot", "0", "isc").observe(0.5)
    sample = metrics.registry.get_sample_value
    labels = {"exported_namespace": "ns", "path": "hot", "instancesDeleted": "0", "isc_name": "isc"}
    assert sample("fma_actuation_seconds_bucket", {**labels, "le": "1.0"}) == 1
    assert sample("fma_actuation_seconds_bucket", {**labels, "le": "0.0"}) == 0


@dataclass
class _FakeInformer:
    has_synced: bool
    lists: int


def test_informer_collector_reads_state_at_scrape_time() -> None:
    metrics = ControllerMetrics()
    informers = {"pods": _FakeInformer(False, 0)}
    metrics.registry.register(InformerCollector(lambda: informers))
    sample = metrics.registry.get_sample_value
    assert sample("fma_informer_synced", {"resource": "pods"}) == 0
    informers["pods"] = _FakeInformer(True, 2)
    assert sample("fma_informer_synced", {"resource": "pods"}) == 1
    assert sample("fma_informer_lists_total", {"resource": "pods"}) == 2


@pytest.mark.parametrize("module", [kube, controller.observability, controller.launcherapi])
def test_public_names_are_sorted_and_exist(module: Any) -> None:
    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for name in exported:
        assert hasattr(module, name), name
