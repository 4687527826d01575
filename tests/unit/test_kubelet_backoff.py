"""Restart decisions and the kubelet's crash-loop back-off, on a virtual clock."""

from __future__ import annotations

import pytest

from localcluster.kubelet.backoff import (
    Backoff,
    crash_loop_message,
    format_duration,
    should_restart,
)


@pytest.mark.parametrize(
    ("policy", "code", "init", "expected"),
    [
        ("Always", 0, False, True),
        ("Always", 1, False, True),
        ("OnFailure", 0, False, False),
        ("OnFailure", 2, False, True),
        ("Never", 1, False, False),
        ("Always", 0, True, False),  # init containers treat Always as OnFailure
        ("Always", 1, True, True),
        ("Never", 1, True, False),
    ],
)
def test_should_restart(policy: str, code: int, init: bool, expected: bool) -> None:
    assert should_restart(policy, code, init=init) is expected  # type: ignore[arg-type]


def _crash_loop(backoff: Backoff, runs: list[float]) -> list[float]:
    """Delays before each restart when the container lives `runs[i]` seconds each time."""
    now, delays = 0.0, []
    for lifetime in runs:
        now += lifetime
        delay = backoff.delay("k", now, now)
        delays.append(delay)
        now += delay
        backoff.record_restart("k", now - delay, now)
    return delays


def test_first_restart_is_immediate_then_doubling_to_the_cap() -> None:
    delays = _crash_loop(Backoff(10, 300), [1.0] * 8)
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_resets_after_running_longer_than_the_cap() -> None:
    backoff = Backoff(10, 300)
    assert _crash_loop(backoff, [1, 1, 1]) == [0, 10, 20]
    assert backoff.delay("k", 1000, 1000) == 0
    backoff.record_restart("k", 1000, 1000)
    assert backoff.current("k") == 10


def test_the_wait_counts_from_when_the_container_finished() -> None:
    backoff = Backoff(10, 300)
    backoff.record_restart("k", 0, 0)
    assert backoff.delay("k", 15, 15) == 10
    assert backoff.delay("k", 15, 22) == 3
    assert backoff.delay("k", 301, 301) == 0  # ran longer than the cap: back-off expired


def test_forget_and_messages() -> None:
    backoff = Backoff(1, 4)
    backoff.record_restart("uid/c", 0, 0)
    backoff.forget("uid/")
    assert backoff.current("uid/c") == 0
    assert [format_duration(s) for s in (10, 80, 300, 1.5)] == ["10s", "1m20s", "5m0s", "1.5s"]
    assert crash_loop_message(20, "c", "p", "ns", "u") == (
        "back-off 20s restarting failed container=c pod=p_ns(u)"
    )
