"""The launcher's wire (contracts §5): its port, API paths, request body, instance state, events.

The launcher serves this API and the controller calls it; both use the models below, so the
shape of a `VllmConfig` and an `InstanceState` is declared once. fma's additive fields (`phase`,
`log_size`, `pid`, `exit_code`, `reason`, the `UPDATED` event) are ones a reference client
ignores; docs/contracts.md ("Launcher additions") lists them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

LAUNCHER_PORT: Final = 8001
"""The launcher API's port in every launcher Pod (`LauncherServicePort`, a fixed contract)."""

HEALTH_PATH: Final = "/health"
INSTANCES_PATH: Final = "/v2/vllm/instances"
WATCH_PATH: Final = INSTANCES_PATH + "/watch"

MAX_BODY_BYTES: Final = 1 << 20
"""The largest request body the launcher reads (1 MiB); a larger one is refused with 413.

Only `VllmConfig` bodies are read, and the controller's are a few KiB (an ISC's options, its
environment and annotations); the cap keeps a hostile or broken client from making the
launcher buffer an unbounded body in memory."""


def instance_path(instance_id: str) -> str:
    """`/v2/vllm/instances/<id>`: PUT creates, GET reads, DELETE stops and removes."""
    return f"{INSTANCES_PATH}/{instance_id}"


def log_path(instance_id: str) -> str:
    """`/v2/vllm/instances/<id>/log`: the instance's log, `Range: bytes=N-` honoured."""
    return f"{instance_path(instance_id)}/log"


RESERVED_IDS: Final[frozenset[str]] = frozenset({"watch"})
"""IDs that `GET /v2/vllm/instances/<id>` could never reach (the watch route shadows them)."""

# --- Instance annotations (the controller's notes in the VllmConfig it sends, §4.4) -------------

ISC_NAME_ANNOTATION: Final = "isc-name"
"""The ISC an instance was created for."""
INFERENCE_PORT_ANNOTATION: Final = "inference-port"
"""The instance's vLLM port, decimal."""

# --- Instance state and events ------------------------------------------------------------------

Status = Literal["running", "stopped"]
"""The reference's `status`: is the child process alive?"""
Phase = Literal["starting", "ready", "sleeping", "failed"]
"""fma's `phase`: starting → ready ⇄ sleeping; failed is terminal (launcher/phases.py)."""
PHASES: Final[tuple[Phase, ...]] = ("starting", "ready", "sleeping", "failed")

EventType = Literal["CREATED", "STOPPED", "DELETED", "UPDATED"]
REFERENCE_EVENT_TYPES: Final[frozenset[str]] = frozenset({"CREATED", "STOPPED", "DELETED"})
"""The reference's event types; `UPDATED` (fma's) goes only to watchers that ask for it."""
UPDATED: Final = "UPDATED"


class VllmConfig(BaseModel):
    """The body of `POST /v2/vllm/instances` and `PUT /v2/vllm/instances/<id>` (§5.1).

    Unknown fields are ignored, as FastAPI does by default in the reference.
    """

    model_config = ConfigDict(extra="ignore")

    options: str
    gpu_uuids: list[str] | None = None
    env_vars: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire object, absent fields left out, in the reference's field order."""
        return self.model_dump(exclude_none=True)


_IDENTITY: Final = ("status", "instance_id", "revision")


class InstanceState(VllmConfig):
    """One instance as the launcher reports it: list, GET, DELETE and watch events (§5.1).

    The VllmConfig it was created with (with `CUDA_VISIBLE_DEVICES` added to `env_vars` when
    GPUs were named), then fma's additions. Every field has a default so that a reader can take
    what a launcher sent even when some field is missing or odd (`from_wire`).
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    options: str = ""
    status: Status = "stopped"
    instance_id: str = ""
    revision: int = -1
    phase: Phase | None = None
    """fma launchers only; None from a reference launcher."""
    log_size: int | None = None
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def isc_name(self) -> str | None:
        """The `isc-name` annotation, None when absent or empty."""
        return (self.annotations or {}).get(ISC_NAME_ANNOTATION) or None

    @property
    def port(self) -> int | None:
        """The `inference-port` annotation, None when absent or not a number."""
        text = (self.annotations or {}).get(INFERENCE_PORT_ANNOTATION) or ""
        return int(text) if text.isdigit() else None

    def to_json(self) -> dict[str, Any]:
        """The wire object: the reference's fields in its order, then fma's; absent ones left
        out."""
        data = self.model_dump(exclude_none=True)
        ordered = {name: data.pop(name) for name in _IDENTITY}
        return ordered | data

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> InstanceState:
        """Read what a launcher sent; a field that does not validate counts as absent.

        A controller must not lose sight of an instance over one odd field (a newer launcher's
        phase, say), so this never raises.
        """
        data = dict(raw)
        while True:
            try:
                return cls.model_validate(data)
            except ValidationError as error:
                bad = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
                if not bad & data.keys():
                    return cls()
                data = {k: v for k, v in data.items() if k not in bad}


# --- Swap: new weights into a sleeping instance (issue 16; fma's addition) ----------------------

SWAP_SUFFIX: Final = "/swap"


def swap_path(instance_id: str) -> str:
    """`/v2/vllm/instances/<sleeping id>/swap`: `POST` a `SwapRequest` to turn that sleeping
    instance into `new_instance_id` serving the request's weights (contracts §5.9).

    A path of its own rather than a field of `PUT`: a reference launcher ignores unknown body
    fields, so a `PUT` with a `swap_from` field would start a second engine on the sleeper's
    port; this path is a 404 there, and fma's controller then takes the warm path."""
    return f"{instance_path(instance_id)}{SWAP_SUFFIX}"


class SwapRequest(VllmConfig):
    """The body of `POST .../<sleeping id>/swap`: the new instance's ID and its VllmConfig.

    The config is what a `PUT` of the new ID would carry; the launcher accepts the swap only
    when its signature equals the sleeper's (launcher/signature.py) and answers, like a `PUT`,
    with the new instance's InstanceState (201)."""

    new_instance_id: str


_MODEL_FLAG: Final = "--model"
_SERVED_NAME_FLAG: Final = "--served-model-name"
_SWITCHES: Final = frozenset(
    {
        "--enforce-eager",
        "--enable-sleep-mode",
        "--trust-remote-code",
        "--enable-prefix-caching",
        "--enable-chunked-prefill",
        "--disable-log-requests",
        "--disable-log-stats",
        "--enable-log-requests",
        "--enable-lora",
        "--enable-auto-tool-choice",
        "--disable-frontend-multiprocessing",
        "--skip-tokenizer-init",
        "--headless",
    }
)
"""vLLM flags that take no value, so the word after one may be the positional model. A flag
not listed is taken to consume the next word: a model path missed means no swap, never a
wrong one."""


def _split(options: str) -> list[str] | None:
    import shlex

    try:
        return shlex.split(options, comments=False, posix=True)
    except ValueError:
        return None


def swap_model(argv: list[str]) -> tuple[str, int, int] | None:
    """The model an instance's options name and where: (path, first index, words taken).

    `--model X`/`--model=X` wins (the last one, as vLLM's parser); else the first positional
    word (the launcher's options carry no `serve` subcommand)."""
    found: tuple[str, int, int] | None = None
    for index, word in enumerate(argv):
        if word == _MODEL_FLAG and index + 1 < len(argv):
            found = (argv[index + 1], index, 2)
        elif word.startswith(_MODEL_FLAG + "="):
            found = (word[len(_MODEL_FLAG) + 1 :], index, 1)
    if found is not None:
        return found
    skip = False
    for index, word in enumerate(argv):
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = "=" not in word and word not in _SWITCHES and not word.startswith("--no-")
        else:
            return (word, index, 1)
    return None


def swap_options(config: VllmConfig) -> tuple[str, dict[str, Any]] | None:
    """The model path and everything else that fixes an engine at start-up, or None when the
    options name no model (or cannot be split).

    Everything else: the command line without the model (the served name made explicit:
    without `--served-model-name` vLLM serves the path as the name, so then two paths never
    match), the environment without `CUDA_VISIBLE_DEVICES` (the launcher derives it from the
    GPUs), and the GPUs. Two instances whose models are swap-compatible and whose
    `swap_options` are equal can trade weights; the launcher and the controller both compare
    them with this one function."""
    argv = _split(config.options)
    if argv is None:
        return None
    located = swap_model(argv)
    if located is None:
        return None
    model, index, taken = located
    rest = argv[:index] + argv[index + taken :]
    if not any(w == _SERVED_NAME_FLAG or w.startswith(_SERVED_NAME_FLAG + "=") for w in rest):
        rest += [_SERVED_NAME_FLAG, model]
    env = {k: v for k, v in sorted((config.env_vars or {}).items()) if k != "CUDA_VISIBLE_DEVICES"}
    return model, {"argv": rest, "env": env, "gpus": list(config.gpu_uuids or ())}


def swap_key(config: VllmConfig) -> str | None:
    """A hex digest of `swap_options` without the model path (None: never swappable).

    The controller asks it of every instance in each pass; it is computed once per distinct
    configuration (a shell split and a hash are most of a pass's decision time otherwise)."""
    env = tuple(sorted((config.env_vars or {}).items()))
    return _swap_key(config.options, env, tuple(config.gpu_uuids or ()))


@functools.lru_cache(maxsize=4096)
def _swap_key(options: str, env: tuple[tuple[str, str], ...], gpus: tuple[str, ...]) -> str | None:
    config = VllmConfig(options=options, env_vars=dict(env), gpu_uuids=list(gpus))
    found = swap_options(config)
    if found is None:
        return None
    text = json.dumps(found[1], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
