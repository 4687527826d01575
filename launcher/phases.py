"""An instance's `phase`: the life cycle the reference's `status` cannot express (pure).

`status` stays exactly the reference's `running`/`stopped` (is the child alive?). `phase` adds
what a controller actually needs (reference-differences A1, C3):

    starting ──/health 200──▶ ready ◀──/is_sleeping──▶ sleeping
        │                       │                        │
        └── exited, or not ready within the start timeout ──▶ failed (terminal)

`failed` carries the exit code (negative: killed by that signal) and a short reason built from
the last log lines, so the cause travels with the instance instead of dying with its log file.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Final

from contract.launcher import Phase

REASON_LINES: Final = 8
REASON_CHARS: Final = 1500


@dataclass(frozen=True, slots=True)
class Healthy:
    """`GET /health` answered 200."""


@dataclass(frozen=True, slots=True)
class SleepState:
    """`GET /is_sleeping` answered; `sleeping` is its value."""

    sleeping: bool


@dataclass(frozen=True, slots=True)
class Exited:
    """The child process ended on its own (not through DELETE)."""

    exit_code: int


@dataclass(frozen=True, slots=True)
class StartTimedOut:
    """No healthy answer within the start timeout."""

    seconds: float


Observation = Healthy | SleepState | Exited | StartTimedOut


def advance(current: Phase, seen: Observation) -> Phase:
    """The phase after observing `seen` in phase `current` (may be `current` itself)."""
    if current == "failed":
        return current
    if isinstance(seen, Exited | StartTimedOut):
        return "failed"
    if isinstance(seen, SleepState):
        return "sleeping" if seen.sleeping else "ready"
    return "ready" if current == "starting" else current


def describe_exit(exit_code: int) -> str:
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"killed by {name}"
    return f"exited with code {exit_code}"


def failure_reason(seen: Exited | StartTimedOut, log_tail: str) -> str:
    """A short, human-readable cause: what happened plus the last log lines."""
    if isinstance(seen, Exited):
        head = f"vLLM {describe_exit(seen.exit_code)}"
    else:
        head = f"vLLM did not answer /health within the start timeout of {seen.seconds:g}s"
    tail = log_tail.strip()
    if not tail:
        return f"{head}; the log is empty"
    return f"{head}; last log lines:\n{tail}"


def tail_lines(data: bytes, lines: int = REASON_LINES, chars: int = REASON_CHARS) -> str:
    """The last `lines` non-empty lines of `data`, at most `chars` characters."""
    text = data.decode("utf-8", errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    joined = "\n".join(kept)
    return joined[-chars:]
