"""Metrics (contracts §12 names), health checks and the `/metrics` `/healthz` `/readyz` server."""

from controller.observability._health import Check, HealthChecks, all_synced
from controller.observability._metrics import (
    ACTUATION_BUCKETS,
    DPC_QUEUE_PREFIX,
    HTTP_BUCKETS,
    LAUNCHER_CREATE_BUCKETS,
    QUEUE_BUCKETS,
    ControllerMetrics,
    InformerCollector,
    InformerState,
    QueuePrometheusMetrics,
    new_registry,
)
from controller.observability._server import (
    ObservabilityServer,
    ServerSettings,
    informer_server,
)
from jsonlog import JsonFormatter, fields
from jsonlog import configure as configure_logging

__all__ = [
    "ACTUATION_BUCKETS",
    "DPC_QUEUE_PREFIX",
    "HTTP_BUCKETS",
    "LAUNCHER_CREATE_BUCKETS",
    "QUEUE_BUCKETS",
    "Check",
    "ControllerMetrics",
    "HealthChecks",
    "InformerCollector",
    "InformerState",
    "JsonFormatter",
    "ObservabilityServer",
    "QueuePrometheusMetrics",
    "ServerSettings",
    "all_synced",
    "configure_logging",
    "fields",
    "informer_server",
    "new_registry",
]
