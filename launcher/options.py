"""Turning an instance's `options` string into vLLM's argv, and the launcher's defaults (pure).

The reference splits `options` with `str.split()`, so a quoted value such as
`--additional-config '{"k": 1}'` is torn apart (reference-differences C4). We split like a POSIX
shell (`shlex`), which gives the same result for unquoted input, and reject unbalanced quotes with a
message that names the option whose value is broken.

The launcher also adapts the command line to where it runs:
- Without CUDA, vLLM rejects `--enable-sleep-mode`; we drop it (the caller logs that) and rely on
  `VLLM_SERVER_DEV_MODE=1`, with which `/sleep`, `/wake_up` and `/is_sleeping` still work as a
  state machine (requests wait while asleep; no memory is freed).
- For a single-process instance (no tensor or pipeline parallelism) we add
  `--distributed-executor-backend uni` and `VLLM_ENABLE_V1_MULTIPROCESSING=0` unless the caller
  chose otherwise. On CPU this keeps the model worker inside vLLM's EngineCore instead of spawning
  one more interpreter that re-imports vLLM (measured: 24.7 s → 17.4 s cold, and it is what lets a
  forked instance reach `/health` in about 10 s). With parallelism vLLM needs its multiprocessing
  executor, so we leave those alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from contract.requester import DEFAULT_VLLM_PORT
from contract.vllm import DEV_MODE_ENV, SLEEP_MODE_FLAG

DEFAULT_ENV: Final[Mapping[str, str]] = {
    # Exposes /sleep, /wake_up, /is_sleeping; the launcher container sets it too (contracts §4.2).
    DEV_MODE_ENV: "1",
}
SINGLE_PROCESS_ENV: Final[Mapping[str, str]] = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
_PARALLEL_FLAGS: Final = frozenset(
    {"--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp", "--data-parallel-size"}
)


class OptionsError(ValueError):
    """`options` cannot be turned into an argv; the message is shown to the API client."""


def split_options(options: str) -> list[str]:
    """Splits like a POSIX shell; unbalanced quotes raise `OptionsError` naming the option."""
    try:
        return shlex.split(options, comments=False, posix=True)
    except ValueError as err:
        raise OptionsError(_describe_unbalanced(options, str(err))) from None


def _describe_unbalanced(options: str, reason: str) -> str:
    position = _unclosed_quote_at(options)
    if position is None:  # e.g. a trailing backslash
        return f"options: cannot split {options!r}: {reason}"
    before = shlex.split(options[:position]) if position else []
    flags = [word for word in before if word.startswith("-")]
    fragment = options[position : position + 40]
    subject = f"the value of option {flags[-1]}" if flags else "options"
    return (
        f"options: {subject} has an unbalanced quote at character {position} ({fragment!r}); "
        "close the quote or escape it"
    )


def _unclosed_quote_at(text: str) -> int | None:
    """Index of the quote that never closes, following POSIX shell quoting rules."""
    quote: str | None = None
    opened_at = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char in "'\"":
            quote, opened_at = char, index
        elif char == quote:
            quote = None
    return opened_at if quote is not None else None


def flag_value(argv: Sequence[str], *names: str) -> str | None:
    """The last value given for any of `names`, in `--flag value` or `--flag=value` form."""
    value: str | None = None
    for index, word in enumerate(argv):
        for name in names:
            if word == name and index + 1 < len(argv):
                value = argv[index + 1]
            elif word.startswith(name + "="):
                value = word[len(name) + 1 :]
    return value


def instance_port(argv: Sequence[str]) -> int:
    """The port the instance's vLLM listens on (`--port`, else vLLM's default 8000)."""
    text = flag_value(argv, "--port")
    if text is None:
        return DEFAULT_VLLM_PORT
    try:
        port = int(text)
    except ValueError:
        raise OptionsError(f"options: --port must be an integer, not {text!r}") from None
    if not 0 < port < 65536:
        raise OptionsError(f"options: --port {port} is outside 1-65535")
    return port


def probe_host(argv: Sequence[str], launcher_host: str = "0.0.0.0") -> str:
    """Where the launcher reaches the instance: its `--host`; for a wildcard host, the address
    the launcher itself listens on when that is a specific one (a Pod whose address is not
    loopback-private, e.g. the hollow kubelet's per-Pod 127.x addresses), else loopback."""
    host = flag_value(argv, "--host")
    if host in (None, "", "0.0.0.0", "::"):
        return "127.0.0.1" if launcher_host in ("", "0.0.0.0", "::") else launcher_host
    return host


def _is_parallel(argv: Sequence[str]) -> bool:
    for flag in _PARALLEL_FLAGS:
        value = flag_value(argv, flag)
        if value is not None and value.strip() not in ("", "1"):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Command:
    """What a child process runs: vLLM's argv, its environment overlay and what was changed."""

    argv: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)


def build_command(
    argv: Sequence[str],
    env_vars: Mapping[str, str],
    *,
    sleep_mode_available: bool,
    launcher_host: str = "0.0.0.0",
) -> Command:
    """Applies the launcher's adaptations (see the module docstring) to a split `options`."""
    out = list(argv)
    notes: list[str] = []
    if flag_value(out, "--host") is None and launcher_host not in ("", "0.0.0.0", "::"):
        # A launcher told to listen on one address (its Pod IP where Pods share a network
        # namespace, as on hollow nodes) gives its instances the same address: a wildcard bind
        # would collide with any other Pod's socket on the same port.
        out += ["--host", launcher_host]
        notes.append(f"added --host {launcher_host}: the instance listens where the launcher does")
    if not sleep_mode_available:
        kept = [w for w in out if w != SLEEP_MODE_FLAG and not w.startswith(SLEEP_MODE_FLAG + "=")]
        if len(kept) != len(out):
            notes.append(
                f"removed {SLEEP_MODE_FLAG}: vLLM sleep mode needs CUDA; with "
                "VLLM_SERVER_DEV_MODE=1 /sleep, /wake_up and /is_sleeping still work"
            )
            out = kept
    env = {**DEFAULT_ENV}
    if not _is_parallel(out):
        if flag_value(out, "--distributed-executor-backend") is None:
            out += ["--distributed-executor-backend", "uni"]
        env.update(SINGLE_PROCESS_ENV)
    env.update(env_vars)
    return Command(argv=out, env=env, notes=notes)
