"""Launcher mode: which InferenceServerConfig (ISC) serves the same vLLM server as the Pod.

Launcher mode is only chosen when it runs what the user wrote. Two model-server configs are
taken as equivalent when they have the same port, the same model (`--model X` is the same as a
positional `X`), the same options and the same environment. Options are compared as flag groups
in any order (argparse does not care), keeping the order of repeated flags (where the last one
wins); flags are compared in vLLM's spelling (`_` as `-`, `-tp` as `--tensor-parallel-size`).
`--enable-sleep-mode` and `VLLM_SERVER_DEV_MODE` are ignored: fma adds them in both modes.

A Pod whose environment the ISC cannot express (`valueFrom`, `envFrom`) or whose command line
uses the kubelet's `$(VAR)` expansion, which a launcher does not do, matches no ISC.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract import keys
from contract.vllm import DEV_MODE_ENV, NO_SLEEP_MODE_FLAG, SLEEP_MODE_FLAG
from crds.models import InferenceServerConfig
from webhook.mutation._model import Skip, quote
from webhook.mutation._pod_access import as_map, get_list, get_str
from webhook.vllm_cmdline import (
    CommandForm,
    OptionGroup,
    UnparseableCommandError,
    VllmServeCommand,
    canonical_flag,
    option_groups,
    parse_server_args,
)

_IGNORED_FLAGS = frozenset({SLEEP_MODE_FLAG, NO_SLEEP_MODE_FLAG, "--model", "--port"})
_IGNORED_ENV = DEV_MODE_ENV


@dataclass(frozen=True, slots=True)
class ServerKey:
    """The parts of a model-server config that decide equivalence, in canonical form.

    `env` is None when the environment is not literal (`valueFrom`, `envFrom`), and `expands`
    is True when the command line or env uses the kubelet's `$(VAR)` expansion: such a Pod can
    be compared for a warning, but it matches no ISC.
    """

    port: int
    model: str
    options: tuple[OptionGroup, ...]
    env: tuple[tuple[str, str], ...] | None
    expands: bool = False

    @property
    def matchable(self) -> bool:
        return self.env is not None and not self.expands


def _canonical_options(command: VllmServeCommand) -> tuple[OptionGroup, ...]:
    _, groups = option_groups(command.options)
    canonical = [(canonical_flag(flag), values) for flag, values in groups]
    kept = [group for group in canonical if group[0] not in _IGNORED_FLAGS]
    return tuple(sorted(kept, key=lambda group: group[0]))  # stable: repeats keep their order


def _env_key(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, value) for name, value in env.items() if name != _IGNORED_ENV))


def _literal_env(container: Mapping[str, Any], path: str) -> dict[str, str] | None:
    if get_list(container, "envFrom", f"{path}.envFrom"):
        return None
    env: dict[str, str] = {}
    for index, raw in enumerate(get_list(container, "env", f"{path}.env") or ()):
        entry = as_map(raw, f"{path}.env[{index}]")
        name = get_str(entry, "name", f"{path}.env[{index}].name") or ""
        if entry.get("valueFrom") is not None:
            return None
        env[name] = get_str(entry, "value", f"{path}.env[{index}].value") or ""  # last wins
    return env


def pod_server_key(command: VllmServeCommand, container: Mapping[str, Any], path: str) -> ServerKey:
    """The key of the vLLM server the container (at `path` in the Pod) runs."""
    env = _literal_env(container, path)
    texts = (command.model, *command.options, *(env or {}).values())
    return ServerKey(
        port=command.port,
        model=command.model,
        options=_canonical_options(command),
        env=None if env is None else _env_key(env),
        expands=any("$(" in text for text in texts),
    )


def isc_server_key(isc: InferenceServerConfig) -> ServerKey | None:
    """The ISC's key, or None when its options do not parse (then it matches nothing).

    The launcher splits `options` on whitespace and appends `--port <port>`; the last `--port`
    wins, so a `--port` inside `options` is ignored here as it is there.
    """
    config = isc.spec.model_server_config
    return _config_key(config.port, config.options or "", _env_key(config.env_vars or {}))


@functools.lru_cache(maxsize=4096)
def _config_key(port: int, options: str, env: tuple[tuple[str, str], ...]) -> ServerKey | None:
    """Memoised: every admission compares the Pod with all of the namespace's ISCs, which
    rarely change, so each is parsed once instead of once per Pod."""
    try:
        command = parse_server_args(options.split(), CommandForm.VLLM_SERVE)
    except UnparseableCommandError:
        return None
    return ServerKey(port, command.model, _canonical_options(command), env)


def _differing_flags(pod: ServerKey, isc: ServerKey) -> list[str]:
    flags = sorted({flag for flag, _ in (*pod.options, *isc.options)})
    differing = [
        flag
        for flag in flags
        if [v for f, v in pod.options if f == flag] != [v for f, v in isc.options if f == flag]
    ]
    return [quote(flag, 40) for flag in differing[:3]] + (["..."] if len(differing) > 3 else [])


def _differences(pod: ServerKey, isc: ServerKey | None) -> list[str]:
    if isc is None:
        return ["its options do not parse"]
    aspects = [
        (f"port {isc.port} vs the Pod's {pod.port}", pod.port != isc.port),
        (f"model {quote(isc.model)} vs the Pod's {quote(pod.model)}", pod.model != isc.model),
        (f"options {' '.join(_differing_flags(pod, isc))}", pod.options != isc.options),
        ("env", pod.env is not None and pod.env != isc.env),
        ("env from valueFrom/envFrom (set it in the LauncherConfig)", pod.env is None),
    ]
    return [text for text, differs in aspects if differs]


def _candidates(
    iscs: Sequence[InferenceServerConfig], namespace: str
) -> list[InferenceServerConfig]:
    return sorted(
        (isc for isc in iscs if isc.metadata.name and isc.metadata.namespace in (None, namespace)),
        key=lambda isc: isc.metadata.name or "",
    )


def _explicit_choice(annotations: Mapping[str, str]) -> str | None:
    names = (keys.ISC_CHOICE_ANNOTATION, keys.ISC_ANNOTATION)
    choices = {key: annotations[key] for key in names if key in annotations}
    for key, value in choices.items():
        if not value:
            raise Skip(
                f"annotation {key} is empty; set an InferenceServerConfig name or drop it",
                code="conflict",
            )
    if len(set(choices.values())) > 1:
        raise Skip(
            f"annotations {keys.ISC_CHOICE_ANNOTATION} and {keys.ISC_ANNOTATION} name different "
            "InferenceServerConfigs; keep one",
            code="conflict",
        )
    return next(iter(choices.values()), None)


def choose_isc(
    *,
    annotations: Mapping[str, str],
    command: VllmServeCommand,
    container: Mapping[str, Any],
    path: str,
    iscs: Sequence[InferenceServerConfig],
    namespace: str,
    warnings: list[str],
) -> str | None:
    """The ISC name for launcher mode, or None for direct mode.

    An explicit choice is honoured even when the ISC is unknown (it may be created later; the
    controller reports it on the requester) or differs from the container (the user asked for
    it); both cases warn. Among equivalent ISCs the first by name wins, with a warning.
    """
    candidates = _candidates(iscs, namespace)
    pod_key = pod_server_key(command, container, path)
    explicit = _explicit_choice(annotations)
    if explicit is not None:
        named = [isc for isc in candidates if isc.metadata.name == explicit]
        if not named:
            warnings.append(
                f"fma: InferenceServerConfig {quote(explicit)} does not exist (yet); the "
                "requester waits for it"
            )
        elif differs := _differences(pod_key, isc_server_key(named[0])):
            warnings.append(
                f"fma: InferenceServerConfig {quote(explicit)} differs from the vLLM container "
                f"({'; '.join(differs)}); the launcher runs the InferenceServerConfig"
            )
        return explicit
    if not pod_key.matchable:
        return None
    matches = [
        name for isc in candidates if (name := isc.metadata.name) and isc_server_key(isc) == pod_key
    ]
    if len(matches) > 1:
        shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        warnings.append(
            f"fma: InferenceServerConfigs {shown} all match the vLLM container; "
            f"chose {matches[0]} (first by name); "
            f"name one in annotation {keys.ISC_CHOICE_ANNOTATION}"
        )
    return matches[0] if matches else None
