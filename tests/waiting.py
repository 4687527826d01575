"""Waiting for the cluster to converge, with a message that says what never happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from localcluster.fma.controller_process import wait_for

T = TypeVar("T")


def eventually(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Polls `check` until it is true; fails naming `what` after `timeout` seconds.

    Tests of a real control plane must wait for controllers; a named wait keeps failures readable.
    """
    wait_for(what, check, timeout, interval=0.2)


def wait_value(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Polls `probe` until it returns something truthy, and returns that; fails like
    `eventually`."""
    value: T = wait_for(what, probe, timeout, interval=0.2)
    return value
