"""The phase machine and failure reasons (reference-differences A1, C3)."""

from __future__ import annotations

import pytest

from contract.launcher import Phase
from launcher.phases import (
    Exited,
    Healthy,
    Observation,
    SleepState,
    StartTimedOut,
    advance,
    failure_reason,
    tail_lines,
)


@pytest.mark.parametrize(
    ("current", "seen", "expected"),
    [
        ("starting", Healthy(), "ready"),
        ("starting", SleepState(sleeping=False), "ready"),
        ("starting", SleepState(sleeping=True), "sleeping"),
        ("ready", Healthy(), "ready"),
        ("ready", SleepState(sleeping=True), "sleeping"),
        ("sleeping", SleepState(sleeping=False), "ready"),
        ("sleeping", Healthy(), "sleeping"),
        ("starting", Exited(1), "failed"),
        ("ready", Exited(0), "failed"),
        ("starting", StartTimedOut(5), "failed"),
        ("failed", Healthy(), "failed"),
        ("failed", SleepState(sleeping=False), "failed"),
    ],
)
def test_transitions(current: Phase, seen: Observation, expected: Phase) -> None:
    assert advance(current, seen) == expected


def test_exit_reasons_carry_code_or_signal_and_the_log_tail() -> None:
    assert failure_reason(Exited(2), "a\nb\n") == "vLLM exited with code 2; last log lines:\na\nb"
    assert failure_reason(Exited(-9), "").startswith("vLLM killed by SIGKILL; the log is empty")


def test_timeout_reason_names_the_timeout() -> None:
    reason = failure_reason(StartTimedOut(1.5), "loading")
    assert "within the start timeout of 1.5s" in reason
    assert reason.endswith("loading")


def test_tail_keeps_the_last_non_empty_lines_within_bounds() -> None:
    data = b"".join(f"line {i}\n\n".encode() for i in range(20))
    assert tail_lines(data, lines=3) == "line 17\nline 18\nline 19"
    assert len(tail_lines(b"x" * 5000, chars=100)) == 100
    assert tail_lines(b"\xff\xfe bad bytes\n") == "\ufffd\ufffd bad bytes"
