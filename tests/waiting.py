"""Waiting for the cluster to converge, with a message that says what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Polls `check` until it is true; fails naming `what` after `timeout` seconds.

    Tests of a real control plane must wait for controllers; a named wait keeps failures readable.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def wait_value(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Polls `probe` until it returns something truthy, and returns that; fails like
    `eventually`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
