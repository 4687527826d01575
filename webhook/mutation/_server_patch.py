"""Direct mode: the `server-patch` that turns the requester back into the user's vLLM Pod.

The controller builds the provider from the requester's labels and spec (no annotations) and
applies this strategic-merge patch (contracts.md §1.4, §4.1). Containers merge by name, so the
patch names `inference-server` and must undo everything the stub put there: each stub field the
original container lacks is set to null (the merge deletes it). `env` merges by name, so the
stub's env vars stay on the provider, harmlessly, as they do in the reference.

`ports` are replaced (a `$patch: replace` element), not merged: the requester declares the
original's ports plus the stub's own, and a merge keyed by `containerPort` alone would leave the
stub's on the provider and fold a TCP and a UDP entry of one number into a duplicate. The
provider gets the original's ports without `hostPort`/`hostIP`: the requester, on the same node,
holds the host port and proxies it, and a second claim would keep the provider from starting.

On top of the original container the provider gets what sleep and wake need:
`--enable-sleep-mode` (appended, so it wins over an earlier `--no-enable-sleep-mode`),
`VLLM_SERVER_DEV_MODE=1`, and a readiness probe `httpGet` on the vLLM port as an integer (the
controller reads the vLLM port from it and takes any name but `http` for an error).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import yaml

from contract import objects
from contract.vllm import DEV_MODE_ENV, HEALTH_PATH, NO_SLEEP_MODE_FLAG, SLEEP_MODE_FLAG
from webhook.mutation._go_yaml import go_template_yaml
from webhook.mutation._model import Skip, quote
from webhook.mutation._pod_access import as_map, get_list, get_map
from webhook.vllm_cmdline import VllmServeCommand, canonical_flag, option_groups

TOKEN_MOUNT_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
_PROBE_TIMINGS: Final = (
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
)
_MERGE_KEYS: Final = {
    "env": ("name", str),
    "ports": ("containerPort", int),
    "volumeMounts": ("mountPath", str),
    "volumeDevices": ("devicePath", str),
}
"""Lists of a container that a strategic merge merges by a key, which each item must have."""
_REPLACE_KEY: Final = "$patch"
"""The strategic-merge directive key; `{$patch: replace}` in a list replaces the whole list."""
_COMMENTS: Final = (
    "Provider patch written by fma's mutating webhook (direct mode): the user's vLLM container,",
    "plus --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1. The provider gets none of the",
    "requester's annotations; labels set to null here keep it out of the owner's selector.",
)


def _sleep_mode_on(command: VllmServeCommand) -> bool:
    _, groups = option_groups(command.options)
    switches = [
        (name, values)
        for flag, values in groups
        if (name := canonical_flag(flag)) in (SLEEP_MODE_FLAG, NO_SLEEP_MODE_FLAG)
    ]
    return bool(switches) and switches[-1] == (SLEEP_MODE_FLAG, ())


def _check_merge_keys(container: Mapping[str, Any], path: str) -> None:
    """A strategic merge fails on a list item without its merge key; refuse such a container
    here (the apiserver would reject it anyway) rather than emit a patch that cannot apply."""
    for field, (key, kind) in _MERGE_KEYS.items():
        for index, raw in enumerate(get_list(container, field, f"{path}.{field}") or ()):
            item = as_map(raw, f"{path}.{field}[{index}]")
            if not isinstance(item.get(key), kind) or isinstance(item.get(key), bool):
                raise Skip(f"{path}.{field}[{index}].{key} is missing or not a {kind.__name__}")


def _with_sleep_mode(container: dict[str, Any], command: VllmServeCommand) -> None:
    """Append the sleep flag to the last non-empty of `args`/`command` (the kubelet runs
    `command + args`); inside `sh -c` it extends the script, which is that list's last item."""
    if _sleep_mode_on(command):
        return
    key = "args" if container.get("args") else "command"
    argv = list(container[key])
    if command.in_shell:
        argv[-1] = f"{argv[-1]} {SLEEP_MODE_FLAG}"
    else:
        argv.append(SLEEP_MODE_FLAG)
    container[key] = argv


def _without_token_mount(container: dict[str, Any]) -> None:
    """Drop the ServiceAccount token mount that admission added to the user's container.

    The provider is a new Pod: admission mounts a token of its own. Restoring the requester's
    mount would name the requester's token volume, which the controller removes when it
    de-individualizes the spec (`kube-api-access-*`, Kubernetes 1.21 on), leaving a mount
    without its volume, and the provider invalid.
    """
    mounts = container.get("volumeMounts")
    if not isinstance(mounts, list):
        return
    kept = [
        m for m in mounts if not (isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH)
    ]
    if len(kept) != len(mounts):
        if kept:
            container["volumeMounts"] = kept
        else:
            del container["volumeMounts"]


def _with_dev_mode(container: dict[str, Any], path: str, warnings: list[str]) -> None:
    items = get_list(container, "env", f"{path}.env") or []
    env = [as_map(item, f"{path}.env[{index}]") for index, item in enumerate(items)]
    wanted = {"name": DEV_MODE_ENV, "value": "1"}
    found = [index for index, item in enumerate(env) if item.get("name") == DEV_MODE_ENV]
    if any(env[index] != wanted for index in found):
        warnings.append(f"fma: env {DEV_MODE_ENV} is set to 1 on the provider (sleep needs it)")
    for index in found:
        env[index] = dict(wanted)
    if not found:
        env.append(dict(wanted))
    container["env"] = env


def _port_number(container: Mapping[str, Any], port: object, path: str) -> int | None:
    """A probe's port as a number: an integer, or the name of one of the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    for index, raw in enumerate(get_list(container, "ports", f"{path}.ports") or ()):
        entry = as_map(raw, f"{path}.ports[{index}]")
        number = entry.get("containerPort")
        if port is not None and entry.get("name") == port and isinstance(number, int):
            return number
    return None


def _readiness_probe(
    container: Mapping[str, Any], vllm_port: int, path: str, warnings: list[str]
) -> Any:
    default = {"httpGet": {"path": HEALTH_PATH, "port": vllm_port}, "periodSeconds": 2}
    probe = get_map(container, "readinessProbe", f"{path}.readinessProbe")
    if probe is None:
        return default
    http_get = get_map(probe, "httpGet", f"{path}.readinessProbe.httpGet")
    if http_get is None:
        warnings.append(
            "fma: the provider's readinessProbe becomes httpGet /health on port "
            f"{vllm_port} (the controller needs httpGet)"
        )
        return {"httpGet": default["httpGet"]} | {
            key: probe[key] for key in _PROBE_TIMINGS if key in probe
        }
    if _port_number(container, http_get.get("port"), path) != vllm_port:
        warnings.append(
            f"fma: the provider's readinessProbe port {quote(http_get.get('port'))} becomes "
            f"{vllm_port}, the vLLM port (the controller reads the vLLM port from it)"
        )
    return probe | {"httpGet": http_get | {"port": vllm_port}}


def _provider_ports(container: dict[str, Any], warnings: list[str]) -> None:
    """The original's ports for the provider, replacing the requester's (module docstring); no
    entry means none, which `_null_missing` then deletes."""
    ports = container.get("ports")
    if not ports:
        container.pop("ports", None)
        return
    host = ("hostPort", "hostIP")
    if any(key in port for port in ports for key in host):
        warnings.append(
            "fma: the requester keeps the vLLM container's hostPort and proxies it; the "
            "provider gets none"
        )
    kept = [{key: value for key, value in port.items() if key not in host} for port in ports]
    container["ports"] = [{_REPLACE_KEY: "replace"}, *kept]


def _null_missing(stub: Mapping[str, Any], restored: dict[str, Any]) -> dict[str, Any]:
    """Set to null every stub field `restored` lacks, recursively into objects both have."""
    for key, stub_value in stub.items():
        if key not in restored:
            restored[key] = None
        elif isinstance(stub_value, dict) and isinstance(restored[key], dict):
            restored[key] = _null_missing(stub_value, dict(restored[key]))
    return restored


def provider_container(
    original: Mapping[str, Any],
    command: VllmServeCommand,
    stub: Mapping[str, Any],
    path: str,
    warnings: list[str],
) -> dict[str, Any]:
    """The patch's `inference-server` entry: the original container (at `path` in the Pod)
    made sleep-capable."""
    _check_merge_keys(original, path)
    restored = {"name": objects.INFERENCE_SERVER} | {
        key: copy.deepcopy(value) for key, value in original.items() if key != "name"
    }
    _without_token_mount(restored)
    _with_sleep_mode(restored, command)
    _with_dev_mode(restored, path, warnings)
    restored["readinessProbe"] = _readiness_probe(original, command.port, path, warnings)
    _provider_ports(restored, warnings)
    return _null_missing(stub, restored)


def build_server_patch(
    *,
    original: Mapping[str, Any],
    command: VllmServeCommand,
    stub: Mapping[str, Any],
    label_changes: Mapping[str, str | None],
    path: str,
    warnings: list[str],
) -> str:
    """The `dual-pods.llm-d.ai/server-patch` value: a Go template of a YAML strategic-merge
    patch (it uses no template data; any `{{` of the original is escaped)."""
    document: dict[str, Any] = {}
    if label_changes:
        document["metadata"] = {"labels": dict(label_changes)}
    container = provider_container(original, command, stub, path, warnings)
    document["spec"] = {"containers": [container]}
    try:
        return go_template_yaml(document, comments=_COMMENTS)
    except (yaml.YAMLError, UnicodeError, ValueError) as error:
        reason = f"the vLLM container cannot be written as YAML ({type(error).__name__})"
        raise Skip(reason) from None
