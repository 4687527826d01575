"""The requester stub container that replaces the vLLM container (contracts.md §1.2).

The stub holds the Pod's GPUs and runs no vLLM: it serves `GET /ready` on the probes port (the
controller flips it through the SPI port when the provider serves), reports its GPUs, and
proxies inference traffic on the vLLM container's serving ports to the bound server, so the
requester serves like the Pod it replaced (`_ports` places every port; the stub reads them from
its environment). It keeps the original GPU request exactly, so the scheduler places the
requester where the vLLM Pod would have gone; everything else it asks for is small (settings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from contract import auth, objects
from contract.requester import READY_PATH
from webhook.mutation._model import MutationSettings, Skip, quote
from webhook.mutation._pod_access import get_map
from webhook.mutation._ports import RequesterPorts

_WHOLE_NUMBER = re.compile(r"\+?[0-9]{1,9}")
_MISSING: Final = object()


def _gpu_count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Skip(f"{path} is {quote(value)}; use a whole number of GPUs")
    if isinstance(value, str):
        if not _WHOLE_NUMBER.fullmatch(value):
            raise Skip(f"{path} is {quote(value)}; use a whole number of GPUs")
        return int(value)
    return value


def gpu_resources(container: Mapping[str, Any], path: str) -> tuple[Any, Any]:
    """The container's `nvidia.com/gpu` (limit, request), as written, each defaulting to the
    other (Kubernetes requires them equal for an extended resource).

    Raises `Skip` when the container asks for no GPU: only device-plugin GPUs can be held by a
    requester (contracts.md §1.1).
    """
    resources = get_map(container, "resources", f"{path}.resources") or {}
    limits = get_map(resources, "limits", f"{path}.resources.limits") or {}
    requests = get_map(resources, "requests", f"{path}.resources.requests") or {}
    limit = limits.get(objects.GPU_RESOURCE, _MISSING)
    request = requests.get(objects.GPU_RESOURCE, _MISSING)
    if limit is _MISSING:
        limit = request
    if request is _MISSING:
        request = limit
    counts = [
        _gpu_count(value, f"{path}.resources.{kind}[{objects.GPU_RESOURCE!r}]")
        for kind, value in (("limits", limit), ("requests", request))
        if value is not _MISSING
    ]
    if not counts or max(counts) <= 0:
        raise Skip(
            f"{path} asks for no {objects.GPU_RESOURCE}; set "
            f"resources.limits[{objects.GPU_RESOURCE!r}] to use fma, or opt the Pod out",
            code="no_gpu",
        )
    return limit, request


def build_requester_container(
    gpu_limit: Any, gpu_request: Any, ports: RequesterPorts, settings: MutationSettings
) -> dict[str, Any]:
    """The `inference-server` container of the requester, with the original GPU amounts and
    the ports `ports` places. The readiness probe names the probes port by number, as its name
    may have yielded to one of the user's."""
    container: dict[str, Any] = {
        "name": objects.INFERENCE_SERVER,
        "image": settings.requester_image,
    }
    if settings.requester_image_pull_policy is not None:
        container["imagePullPolicy"] = settings.requester_image_pull_policy
    container |= {
        "command": list(settings.requester_command),
        "env": [*ports.env(), *auth.verifier_env(settings.control_trust)],
        "ports": ports.container_ports(),
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": ports.probes.port},
            "periodSeconds": settings.readiness_period_seconds,
            "failureThreshold": 2,
        },
        "resources": {
            "limits": {**settings.requester_limits, objects.GPU_RESOURCE: gpu_limit},
            "requests": {**settings.requester_requests, objects.GPU_RESOURCE: gpu_request},
        },
    }
    if settings.requester_security_context is not None:
        container["securityContext"] = _plain(settings.requester_security_context)
    return container


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only (settings may hold read-only mappings)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
