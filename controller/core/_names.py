"""The names of the wire contract (contracts §2): annotation, label and finalizer keys."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "dual-pods.llm-d.ai/"

# Annotations.
SERVER_PATCH: Final = PREFIX + "server-patch"
ISC_ANNOTATION: Final = PREFIX + "inference-server-config"
ADMIN_PORT: Final = PREFIX + "admin-port"
STATUS: Final = PREFIX + "status"
ACCELERATORS: Final = PREFIX + "accelerators"
REQUESTER: Final = PREFIX + "requester"
NOMINAL: Final = PREFIX + "nominal"
INSTANCE_ID: Final = PREFIX + "instance-id"
SERVER_PORT: Final = PREFIX + "server-port"
VLLM_CONFIG: Final = PREFIX + "vllm-config"
ROUTING_METADATA: Final = PREFIX + "isc-routing-metadata"
TEMPLATE_HASH: Final = PREFIX + "launcher-populator-template-hash"
CONFIG_HASH: Final = PREFIX + "launcher-config-hash"
LAST_USED: Final = PREFIX + "last-used"
"""fma's addition (known-gaps B2): when a direct provider was last unbound, RFC 3339."""

BIND_ANNOTATIONS: Final = (INSTANCE_ID, SERVER_PORT, VLLM_CONFIG, ROUTING_METADATA)

# Labels.
DUAL: Final = PREFIX + "dual"
SLEEPING: Final = PREFIX + "sleeping"
INSTANCE_LABEL: Final = PREFIX + "instance"
LC_NAME: Final = PREFIX + "launcher-config-name"
NODE_NAME: Final = PREFIX + "node-name"
STUCK: Final = PREFIX + "launcher-stuck"
COMPONENT: Final = "app.kubernetes.io/component"
HOSTNAME: Final = "kubernetes.io/hostname"

# Finalizers.
REQUESTER_FINALIZER: Final = PREFIX + "requester"
PROVIDER_FINALIZER: Final = PREFIX + "provider"

# Containers, ports, resources.
INFERENCE_SERVER: Final = "inference-server"
REFLECTOR: Final = "state-change-reflector"
GPU_RESOURCE: Final = "nvidia.com/gpu"
LAUNCHER_PORT: Final = 8001
DEFAULT_ADMIN_PORT: Final = 8081
CONTROLLER_MANAGER: Final = "dual-pods-controller"
LC_API_VERSION: Final = "fma.llm-d.ai/v1alpha1"
