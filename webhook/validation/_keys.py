"""Metadata keys of the dual-pods contract (contracts §2) that the validating webhook guards."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "dual-pods.llm-d.ai/"

ANNOTATION_REQUESTER: Final = PREFIX + "requester"
ANNOTATION_STATUS: Final = PREFIX + "status"
ANNOTATION_INSTANCE_ID: Final = PREFIX + "instance-id"
ANNOTATION_SERVER_PORT: Final = PREFIX + "server-port"
ANNOTATION_VLLM_CONFIG: Final = PREFIX + "vllm-config"
ANNOTATION_ISC_ROUTING_METADATA: Final = PREFIX + "isc-routing-metadata"
ANNOTATION_INFERENCE_SERVER_CONFIG: Final = PREFIX + "inference-server-config"
ANNOTATION_SERVER_PATCH: Final = PREFIX + "server-patch"
ANNOTATION_ADMIN_PORT: Final = PREFIX + "admin-port"
LABEL_DUAL: Final = PREFIX + "dual"
LABEL_LAUNCHER_CONFIG_NAME: Final = PREFIX + "launcher-config-name"

# contracts §11 rule 1: only the controllers may set or change these, on any Pod.
PROTECTED_ANNOTATIONS: Final = frozenset(
    {
        ANNOTATION_REQUESTER,
        ANNOTATION_STATUS,
        ANNOTATION_INSTANCE_ID,
        ANNOTATION_SERVER_PORT,
        ANNOTATION_VLLM_CONFIG,
        ANNOTATION_ISC_ROUTING_METADATA,
    }
)
PROTECTED_LABELS: Final = frozenset({LABEL_DUAL, LABEL_LAUNCHER_CONFIG_NAME})

# contracts §11 rule 2, widened to direct mode and the SPI port (known-gaps D2): what defines a
# bound requester's server. Changing it under a running binding would desynchronise requester
# and provider.
BOUND_REQUESTER_ANNOTATIONS: Final = frozenset(
    {ANNOTATION_INFERENCE_SERVER_CONFIG, ANNOTATION_SERVER_PATCH, ANNOTATION_ADMIN_PORT}
)
BOUND_REQUESTER_LABELS: Final = frozenset({LABEL_DUAL})
