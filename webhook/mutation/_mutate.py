"""`mutate_pod`: an ordinary vLLM Pod in, the JSON Patch that makes it a requester out.

The order of the checks is the order of their cost and of their likelihood: scope (namespace,
marker, opt-in) before reading containers, and every check that can leave the Pod untouched
before anything is built. Whatever goes wrong ends as a `Skip` with a reason: with
`failurePolicy: Ignore` an exception would also leave the Pod unchanged, but silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract import keys, objects
from contract.requester import SPI_PORT
from webhook.mutation._isc_match import choose_isc
from webhook.mutation._model import (
    MAX_ANNOTATIONS_BYTES,
    MUTATED_VALUE,
    SYSTEM_NAMESPACES,
    MutationContext,
    MutationResult,
    Skip,
    quote,
)
from webhook.mutation._pod_access import as_map, get_list, get_map, get_str, get_str_list
from webhook.mutation._pod_access import get_str_map as _str_map
from webhook.mutation._ports import RequesterPorts, plan_ports
from webhook.mutation._provider_labels import provider_label_changes
from webhook.mutation._requester_stub import build_requester_container, gpu_resources
from webhook.mutation._server_patch import build_server_patch
from webhook.vllm_cmdline import UnparseableCommandError, VllmServeCommand, parse_command_line


@dataclass(frozen=True, slots=True)
class _VllmContainer:
    index: int
    container: dict[str, Any]
    command: VllmServeCommand

    @property
    def path(self) -> str:
        return f"spec.containers[{self.index}]"


def mutate_pod(pod: Mapping[str, Any], ctx: MutationContext) -> MutationResult:
    """Decide whether and how to rewrite a Pod being created; never raises.

    Returns the RFC 6902 operations that turn `pod` into a requester, the mode chosen, and
    warnings; or no operations and the reason the Pod is left as it is.
    """
    warnings: list[str] = []
    try:
        return _mutate(pod, ctx, warnings)
    except Skip as skip:
        if skip.warn:
            warnings.append(f"fma: Pod left unchanged: {skip.reason}")
        return MutationResult(warnings=warnings, skipped=skip.reason, skip_code=skip.code)
    except Exception as error:  # a bug must not fail the Pod's creation
        reason = f"internal error ({type(error).__name__}: {quote(str(error))}); please report it"
        warnings.append(f"fma: Pod left unchanged: {reason}")
        return MutationResult(warnings=warnings, skipped=reason, skip_code="internal_error")


def _check_scope(metadata: Mapping[str, Any], ctx: MutationContext) -> None:
    if ctx.namespace in SYSTEM_NAMESPACES:
        raise Skip(
            f"namespace {ctx.namespace} is a system namespace", code="system_namespace", warn=False
        )
    if ctx.namespace == ctx.settings.webhook_namespace:
        raise Skip(
            f"namespace {ctx.namespace} is the webhook's own namespace",
            code="own_namespace",
            warn=False,
        )
    annotations = _str_map(metadata, "annotations", "metadata.annotations")
    labels = _str_map(metadata, "labels", "metadata.labels")
    if keys.MUTATED_ANNOTATION in annotations:
        raise Skip(
            f"already mutated (annotation {keys.MUTATED_ANNOTATION})",
            code="already_mutated",
            warn=False,
        )
    choice = labels.get(keys.INJECT_LABEL)
    if choice == "false":
        raise Skip(
            f"opted out by Pod label {keys.INJECT_LABEL}=false", code="opted_out", warn=False
        )
    if choice not in (None, "true"):
        raise Skip(f'Pod label {keys.INJECT_LABEL} is {quote(choice)}; use "true" or "false"')
    if choice is None and ctx.namespace_labels.get(keys.INJECT_LABEL) != "enabled":
        raise Skip(
            f"not opted in: label the namespace {keys.INJECT_LABEL}=enabled or the Pod "
            f"{keys.INJECT_LABEL}=true",
            code="not_opted_in",
            warn=False,
        )
    if keys.REQUESTER in annotations or keys.LC_NAME in labels:
        raise Skip("a provider Pod of the fma controllers", code="provider", warn=False)
    if annotations.get(keys.SERVER_PATCH):
        raise Skip(
            f"already a requester (annotation {keys.SERVER_PATCH})",
            code="already_requester",
            warn=False,
        )


def _find_vllm(containers: list[Any]) -> _VllmContainer:
    found: list[_VllmContainer] = []
    names: list[str] = []
    for index, raw in enumerate(containers):
        path = f"spec.containers[{index}]"
        container = as_map(raw, path)
        try:
            command = parse_command_line(
                get_str_list(container, "command", f"{path}.command"),
                get_str_list(container, "args", f"{path}.args"),
                get_str(container, "image", f"{path}.image"),
            )
        except UnparseableCommandError as error:
            raise Skip(f"{path} runs vLLM, but {error}", code="unparseable") from None
        if command is not None:
            found.append(_VllmContainer(index, container, command))
            names.append(quote(container.get("name")))
    if not found:
        raise Skip(
            "no container runs `vllm serve` or python -m vllm.entrypoints.openai.api_server",
            code="not_vllm",
            warn=False,
        )
    if len(found) > 1:
        raise Skip(
            f"containers {', '.join(names[:3])}{', ...' if len(names) > 3 else ''} all run "
            "vLLM; fma rewrites one vLLM container per Pod (opt the Pod out, or split it)",
            code="several_vllm",
        )
    return found[0]


def _check_neighbours(spec: Mapping[str, Any], containers: list[Any], vllm: _VllmContainer) -> None:
    """The stub must fit beside the other containers: a free name and a network of its own.

    Ports taken by other containers are no reason to skip: the stub's listeners move
    (`_ports`). With `hostNetwork` they would be the node's, shared by every requester there.
    """
    if spec.get("hostNetwork") is True:
        raise Skip(
            "spec.hostNetwork is true: the requester stubs on a node would all listen on the "
            "node's ports; remove hostNetwork or opt the Pod out",
            code="conflict",
        )
    for index, raw in enumerate(containers):
        if index == vllm.index:
            continue
        path = f"spec.containers[{index}]"
        if as_map(raw, path).get("name") == objects.INFERENCE_SERVER:
            raise Skip(
                f"{path} is already named {objects.INFERENCE_SERVER}; rename it", code="conflict"
            )


def _requester_ports(
    spec: Mapping[str, Any], vllm: _VllmContainer, annotations: Mapping[str, str]
) -> RequesterPorts:
    return plan_ports(
        spec=spec,
        vllm_index=vllm.index,
        vllm_container=vllm.container,
        vllm_port=vllm.command.port,
        admin_port=annotations.get(keys.ADMIN_PORT),
    )


def _admin_port_annotation(ports: RequesterPorts, annotations: Mapping[str, str]) -> dict[str, str]:
    """`admin-port` when the SPI left its default and the Pod does not name it already: the
    controller reads the SPI port there and nowhere else."""
    if ports.spi.port == SPI_PORT or keys.ADMIN_PORT in annotations:
        return {}
    return {keys.ADMIN_PORT: str(ports.spi.port)}


def _utf8_len(text: str) -> int:
    return len(text.encode(errors="surrogatepass"))


def _pointer(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): `~` and `/` escaped."""
    return token.replace("~", "~0").replace("/", "~1")


def _annotation_ops(pod: Mapping[str, Any], new: dict[str, str]) -> list[dict[str, Any]]:
    metadata = pod.get("metadata")
    if metadata is None:
        return [{"op": "add", "path": "/metadata", "value": {"annotations": new}}]
    if metadata.get("annotations") is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": new}]
    return [
        {"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value}
        for key, value in new.items()
    ]


def _mutate(pod: Mapping[str, Any], ctx: MutationContext, warnings: list[str]) -> MutationResult:
    pod = as_map(pod, "the Pod")
    metadata = get_map(pod, "metadata", "metadata") or {}
    _check_scope(metadata, ctx)
    annotations = _str_map(metadata, "annotations", "metadata.annotations")
    spec = get_map(pod, "spec", "spec") or {}
    containers = get_list(spec, "containers", "spec.containers") or []
    vllm = _find_vllm(containers)
    gpu_limit, gpu_request = gpu_resources(vllm.container, vllm.path)
    _check_neighbours(spec, containers, vllm)
    ports = _requester_ports(spec, vllm, annotations)

    stub = build_requester_container(gpu_limit, gpu_request, ports, ctx.settings)
    isc = choose_isc(
        annotations=annotations,
        command=vllm.command,
        container=vllm.container,
        path=vllm.path,
        iscs=ctx.iscs,
        namespace=ctx.namespace,
        warnings=warnings,
    )
    if isc is not None:
        mode_annotation = (keys.ISC_ANNOTATION, isc)
    else:
        label_changes = provider_label_changes(
            metadata=metadata,
            labels=_str_map(metadata, "labels", "metadata.labels"),
            owner_selector=ctx.owner_selector,
            warnings=warnings,
        )
        server_patch = build_server_patch(
            original=vllm.container,
            command=vllm.command,
            stub=stub,
            label_changes=label_changes,
            path=vllm.path,
            warnings=warnings,
        )
        mode_annotation = (keys.SERVER_PATCH, server_patch)

    new = {
        keys.MUTATED_ANNOTATION: MUTATED_VALUE,
        keys.ORIGINAL_CONTAINER_ANNOTATION: json.dumps(vllm.container, separators=(",", ":")),
        mode_annotation[0]: mode_annotation[1],
        **_admin_port_annotation(ports, annotations),
    }
    size = sum(_utf8_len(k) + _utf8_len(v) for k, v in (annotations | new).items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise Skip(
            f"the requester's annotations would take {size} bytes, over Kubernetes' 256 KiB; "
            "shorten the vLLM container (env, args) or opt the Pod out",
            code="too_large",
        )
    patch = [
        *_annotation_ops(pod, new),
        {"op": "replace", "path": f"/spec/containers/{vllm.index}", "value": stub},
    ]
    return MutationResult(
        patch=patch,
        warnings=warnings,
        mode="launcher" if isc is not None else "direct",
    )
