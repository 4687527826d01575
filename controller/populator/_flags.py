"""The populator's tuning flags, shared by `fma-controller` and `python -m controller.populator`.

One definition, so the two entry points cannot drift apart in names, defaults or help.
"""

from __future__ import annotations

import argparse

from controller.populator._settings import Settings, parse_duration


def add_flags(parser: argparse.ArgumentParser) -> None:
    """`--expectation-timeout`, the two stuck thresholds and `--keep-sleepers` (Go durations)."""
    defaults = Settings(namespace="-")
    add = parser.add_argument
    add("--expectation-timeout", type=parse_duration, default=defaults.expectation_timeout_s,
        help="populator: wait this long for its own writes, then LIST "
        "(default %(default)gs)")  # fmt: skip
    add("--stuck-scheduling-threshold", type=parse_duration,
        default=defaults.stuck_scheduling_threshold_s,
        help="an unscheduled launcher is stuck this long after creation "
        "(default %(default)gs)")  # fmt: skip
    add("--stuck-starting-threshold", type=parse_duration,
        default=defaults.stuck_starting_threshold_s,
        help="a scheduled, unready launcher is stuck this long after scheduling "
        "(default %(default)gs)")  # fmt: skip
    add("--keep-sleepers", type=parse_duration, default=defaults.keep_sleepers_s,
        help="keep uncovered launchers with sleepers this long (default %(default)gs; "
        "0: never)")  # fmt: skip


def settings_from(
    args: argparse.Namespace, *, namespace: str, workers: int = Settings(namespace="-").workers
) -> Settings:
    """The `Settings` the flags of `add_flags` ask for."""
    return Settings(
        namespace=namespace,
        expectation_timeout_s=args.expectation_timeout,
        stuck_scheduling_threshold_s=args.stuck_scheduling_threshold,
        stuck_starting_threshold_s=args.stuck_starting_threshold,
        keep_sleepers_s=args.keep_sleepers,
        workers=workers,
    )
